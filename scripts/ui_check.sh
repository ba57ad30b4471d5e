#!/usr/bin/env bash
# Browser check of the `hubcomm` connection form in the Airflow 3 UI (headless Chromium + Selenium):
#   bash scripts/ui_check.sh             # refreshes the screenshots in docs/img
#   bash scripts/ui_check.sh --ci        # CI: apt-installs chromium + chromium-driver and pip-installs
#                                        # selenium when missing; screenshots go to a temporary directory
#   bash scripts/ui_check.sh --login     # auth on: log in with SimpleAuthManager's generated password
# Other arguments are passed to tests/ui/ui_check.py (e.g. --keep, --screenshots DIR).
#
# Starts the fake HubSpot and `airflow api-server` on 127.0.0.1 (temporary AIRFLOW_HOME, SQLite), drives the
# system Chromium through the system chromedriver (nothing is downloaded), and stops every process it
# started. Takes 35-70 s (most of it Airflow start-up); exit status 0 when every check passed.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-.venv/bin/python}
CI_MODE=0
ARGS=()
for arg in "$@"; do
  case "$arg" in
    --ci) CI_MODE=1 ;;
    *) ARGS+=("$arg") ;;
  esac
done

if [[ ! -x /usr/bin/chromium || ! -x /usr/bin/chromedriver ]]; then
  if [[ $CI_MODE == 1 ]]; then
    SUDO=""; [[ $(id -u) == 0 ]] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null
  else
    echo "ui_check: /usr/bin/chromium or /usr/bin/chromedriver missing: apt-get install -y chromium chromium-driver" >&2
    echo "          (or run with --ci to install them)" >&2
    exit 2
  fi
fi
if ! "$PYTHON" -c 'import selenium' 2>/dev/null; then
  "$PYTHON" -m pip install -q selenium
fi

HAS_SHOTS=0
for arg in "${ARGS[@]+"${ARGS[@]}"}"; do [[ $arg == --screenshots ]] && HAS_SHOTS=1; done
if [[ $HAS_SHOTS == 0 ]]; then
  if [[ $CI_MODE == 1 ]]; then
    ARGS+=(--screenshots "$(mktemp -d)/img")
  else
    ARGS+=(--screenshots docs/img)
  fi
fi
exec "$PYTHON" tests/ui/ui_check.py "${ARGS[@]}"
