#!/usr/bin/env bash
# One command for the whole test job, on a fresh machine or a developer's:
#   bash scripts/test.sh
# Creates the virtualenvs it needs, installs the provider with its test extras against the latest Airflow and
# the oldest Airflow 3.x this provider declares, then runs ruff, mypy, the docs build and pytest in each.
# Environment knobs: AIRFLOW_LATEST (default 3.3.2), AIRFLOW_OLDEST (default 3.2.0), SKIP_OLDEST=1,
# HUBCOMM_SKIP_UI=1 (do not try to install chromium), PYTEST_ARGS (extra pytest arguments).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
AIRFLOW_LATEST=${AIRFLOW_LATEST:-3.3.2}
AIRFLOW_OLDEST=${AIRFLOW_OLDEST:-3.2.0}

pick_python() {
  for candidate in python3.11 python3.12 python3; do
    if command -v "$candidate" >/dev/null 2>&1 &&
      "$candidate" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null; then
      echo "$candidate"; return 0
    fi
  done
  echo "Python >= 3.11 is required" >&2; return 1
}
PY=$(pick_python)

# make_venv DIR AIRFLOW_VERSION: create DIR with the provider installed editable against that Airflow.
make_venv() {
  local dir=$1 version=$2
  if [ ! -x "$dir/bin/python" ]; then
    "$PY" -m venv "$dir"
    "$dir/bin/python" -m pip install -q --upgrade pip
  fi
  local constraints=()
  if [ -f "scripts/constraints/airflow-$version.txt" ]; then
    constraints=(-c "scripts/constraints/airflow-$version.txt")
  fi
  "$dir/bin/python" -m pip install -q -e ".[test]" "apache-airflow==$version" "${constraints[@]}"
}

# run_pytest VENV LABEL: run the suite; exit code 5 (no tests collected) is a failure, not a pass.
run_pytest() {
  local dir=$1 label=$2 rc=0
  echo "== pytest ($label)"
  # shellcheck disable=SC2086
  "$dir/bin/python" -m pytest ${PYTEST_ARGS:-} || rc=$?
  if [ "$rc" -eq 5 ]; then echo "pytest ($label) collected no tests: failing" >&2; exit 1; fi
  if [ "$rc" -ne 0 ]; then echo "pytest ($label) failed with exit code $rc" >&2; exit "$rc"; fi
}

echo "== venv with apache-airflow==$AIRFLOW_LATEST"
make_venv "$ROOT/.venv" "$AIRFLOW_LATEST"
echo "== ruff"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
echo "== mypy"
.venv/bin/mypy
if [ -f scripts/docs_check.sh ]; then
  echo "== docs"
  bash scripts/docs_check.sh
fi
# The UI test (tests/ui) drives Airflow's connection form in Debian's headless Chromium; it is skipped when
# chromium is absent. Try to install it (root + apt only; failure just means the UI test is skipped).
if [ "${HUBCOMM_SKIP_UI:-0}" != "1" ] && [ ! -x /usr/bin/chromedriver ] && [ "$(id -u)" = "0" ] &&
  command -v apt-get >/dev/null 2>&1; then
  echo "== installing chromium + chromium-driver for the UI test"
  (timeout 300 apt-get update -qq && DEBIAN_FRONTEND=noninteractive timeout 600 apt-get install -y -qq \
    --no-install-recommends chromium chromium-driver >/dev/null) || echo "(could not install chromium: UI test skipped)"
fi
run_pytest "$ROOT/.venv" "Airflow $AIRFLOW_LATEST"

if [ "${SKIP_OLDEST:-0}" != "1" ]; then
  echo "== venv with apache-airflow==$AIRFLOW_OLDEST (oldest declared)"
  make_venv "$ROOT/.venv-airflow-$AIRFLOW_OLDEST" "$AIRFLOW_OLDEST"
  run_pytest "$ROOT/.venv-airflow-$AIRFLOW_OLDEST" "Airflow $AIRFLOW_OLDEST"
fi
echo "== all checks passed"
