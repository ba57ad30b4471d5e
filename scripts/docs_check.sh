#!/usr/bin/env bash
# Build the documentation strictly (any MkDocs warning fails the build):
#   bash scripts/docs_check.sh
# Installs mkdocs into the project's virtualenv (.venv, or $PYTHON's environment) if it is missing, then runs
# `mkdocs build --strict` with mkdocs.yml. The site goes to build/site/ (git-ignored).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-.venv/bin/python}
if ! "$PYTHON" -c 'import mkdocs' 2>/dev/null; then
  echo "== installing mkdocs into $("$PYTHON" -c 'import sys; print(sys.prefix)')"
  "$PYTHON" -m pip install -q "mkdocs>=1.6,<2"
fi
# DOCS_INSTALL_ONLY=1: install and stop (scripts/test.sh installs before its test suite starts in that venv).
if [ "${DOCS_INSTALL_ONLY:-0}" = "1" ]; then exit 0; fi
# No --quiet: it hides warnings from --strict too, and the build would pass with broken links.
"$PYTHON" -m mkdocs build --strict --clean
echo "== docs built in build/site/ (mkdocs $("$PYTHON" -c 'import mkdocs; print(mkdocs.__version__)'))"
