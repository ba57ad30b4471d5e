#!/usr/bin/env bash
# One command for the whole test job, on a fresh machine or a developer's:
#   bash scripts/test.sh
# Creates the virtualenvs it needs, installs the provider with its test extras against the latest Airflow and
# the oldest Airflow 3.x this provider declares, then runs ruff, mypy and the docs build once, and pytest in
# each. Every step runs even when an earlier one failed; a table at the end gives each step's result and wall
# time, and the exit status is non-zero when any step failed (pytest collecting no tests counts as a failure).
#
# Run as root on a machine with apt-get (a CI container), it installs Debian's chromium and chromium-driver
# system-wide for the UI test of the connection form; HUBCOMM_SKIP_UI=1 installs nothing and skips that test.
#
# The oldest-Airflow suite leaves out the long fault-injection and 100k-row runs (markers "faults" and "slow")
# and the tests that never touch Airflow (the fake's own tests, the contract tests, the import-graph test and
# the pure models/retry/rate-limit/exception tests; OLDEST_IGNORE below): they exercise the provider's own code,
# which does not change with the Airflow version, and would push CI past its time budget;
# HUBCOMM_OLDEST_FULL=1 runs them there too.
#
# The latest-Airflow suite runs in HUBCOMM_WORKERS pytest-xdist worker processes (default 2; 0 runs it in one
# process). Each worker has its own Airflow home and SQLite database (tests/conftest.py makes one per process),
# its own pytest base temp and its own fake servers on free ports.
#
# Environment knobs: AIRFLOW_LATEST (default 3.3.2), AIRFLOW_OLDEST (default 3.2.0), SKIP_OLDEST=1,
# HUBCOMM_OLDEST_FULL=1, HUBCOMM_SKIP_UI=1, HUBCOMM_WORKERS (default 2),
# PYTEST_ARGS (extra pytest arguments, e.g. "tests/docs").
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
AIRFLOW_LATEST=${AIRFLOW_LATEST:-3.3.2}
AIRFLOW_OLDEST=${AIRFLOW_OLDEST:-3.2.0}
STARTED=$SECONDS
RESULTS=()
FAILED=0

pick_python() {
  for candidate in python3.11 python3.12 python3; do
    if command -v "$candidate" >/dev/null 2>&1 &&
      "$candidate" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null; then
      echo "$candidate"; return 0
    fi
  done
  echo "Python >= 3.11 is required" >&2; return 1
}
PY=$(pick_python) || exit 1

# record LABEL RC SECONDS: remember one step's outcome for the final table.
record() {
  local label=$1 rc=$2 took=$3 outcome
  case $rc in
    0) outcome="passed" ;;
    5) outcome="FAILED (no tests)"; FAILED=1 ;;
    *) outcome="FAILED (exit $rc)"; FAILED=1 ;;
  esac
  RESULTS+=("$(printf '  %-28s %-18s %dm%02ds' "$label" "$outcome" $((took / 60)) $((took % 60)))")
  echo "== $label: $outcome in $((took / 60))m$((took % 60))s"
}

# make_venv DIR AIRFLOW_VERSION: create DIR with the provider installed editable against that Airflow.
make_venv() {
  local dir=$1 version=$2
  if [ ! -x "$dir/bin/python" ]; then
    "$PY" -m venv "$dir" || return $?
    "$dir/bin/python" -m pip install -q --upgrade pip || return $?
  fi
  local constraints=()
  if [ -f "scripts/constraints/airflow-$version.txt" ]; then
    constraints=(-c "scripts/constraints/airflow-$version.txt")
  fi
  "$dir/bin/python" -m pip install -q -e ".[test]" "apache-airflow==$version" "${constraints[@]}"
}

# static_checks: ruff, mypy and the strict docs build in .venv (they do not depend on the Airflow version).
static_checks() {
  local rc=0
  echo "== ruff"
  .venv/bin/ruff check . || rc=1
  .venv/bin/ruff format --check . || rc=1
  echo "== mypy"
  .venv/bin/mypy || rc=1
  if [ -f scripts/docs_check.sh ]; then
    echo "== docs"
    PYTHON=.venv/bin/python bash scripts/docs_check.sh || rc=1
  fi
  return "$rc"
}

# Tests that import nothing of Airflow's: run with the latest Airflow only (see the header). The fake's server
# tests stay (one reads the fake's connection URI with Airflow's own Connection).
OLDEST_IGNORE=(--ignore=tests/contract --ignore=tests/test_architecture.py
  --ignore=tests/testing/test_fake_api.py --ignore=tests/testing/test_fake_auth.py
  --ignore=tests/testing/test_fake_faults.py --ignore=tests/testing/test_fake_modes.py
  --ignore=tests/testing/test_fake_transports.py --ignore=tests/testing/test_fake_validation.py
  --ignore=tests/test_models.py --ignore=tests/test_retry.py --ignore=tests/test_ratelimit.py
  --ignore=tests/test_exceptions.py)

# suite DIR VERSION [MARKERS [PYTEST ARGS...]]: make the venv and run pytest in it, deselecting the markers'
# expression terms; exit code 5 (no tests collected) is a failure.
suite() {
  local dir=$1 version=$2 leave_out=${3:-} rc=0
  shift 3 2>/dev/null || shift $#
  echo "== venv with apache-airflow==$version"
  make_venv "$dir" "$version" || { echo "could not install Airflow $version" >&2; return 3; }
  echo "== pytest (Airflow $version)"
  if [ "${HUBCOMM_SKIP_UI:-0}" = "1" ]; then leave_out="${leave_out:+$leave_out or }ui"; fi
  local marker_args=()
  if [ -n "$leave_out" ]; then marker_args=(-m "not ($leave_out)"); echo "(leaving out: $leave_out)"; fi
  # --durations: the slowest tests of each suite, to keep the CI time (< 15 min for both suites) in view.
  # shellcheck disable=SC2086
  "$dir/bin/python" -m pytest --durations=8 "${marker_args[@]}" "$@" ${PYTEST_ARGS:-} || rc=$?
  if [ "$rc" -eq 5 ]; then echo "pytest (Airflow $version) collected no tests: counted as a failure" >&2; fi
  return "$rc"
}

# The UI test (tests/ui) drives Airflow's connection form in Debian's headless Chromium; it is skipped when
# chromium is absent. Install it when we can (root + apt-get); failure just means the UI test is skipped.
if [ "${HUBCOMM_SKIP_UI:-0}" != "1" ] && [ ! -x /usr/bin/chromedriver ] && [ "$(id -u)" = "0" ] &&
  command -v apt-get >/dev/null 2>&1; then
  echo "== installing chromium + chromium-driver system-wide with apt-get for the UI test (HUBCOMM_SKIP_UI=1 skips)"
  (timeout 300 apt-get update -qq && DEBIAN_FRONTEND=noninteractive timeout 600 apt-get install -y -qq \
    --no-install-recommends chromium chromium-driver >/dev/null) || echo "(could not install chromium: UI test skipped)"
fi

# The two suites spend most of their time waiting (rate limits, latency, pokes), so they run side by side: the
# oldest-Airflow suite in the background (its output is shown when it ends), the latest in front, in worker
# processes (HUBCOMM_WORKERS). On a slow 2-core machine the latest suite took 11m58s in one process beside the
# oldest suite, and 7m10s in two workers alone.
start=$SECONDS
oldest_pid=""
oldest_log="$ROOT/.pytest-oldest.log"
if [ "${SKIP_OLDEST:-0}" != "1" ]; then
  oldest_leave_out="faults or slow"
  oldest_args=("${OLDEST_IGNORE[@]}")
  if [ "${HUBCOMM_OLDEST_FULL:-0}" = "1" ]; then oldest_leave_out=""; oldest_args=(); fi
  echo "== starting the Airflow $AIRFLOW_OLDEST suite in the background (log: $oldest_log)"
  (
    began=$SECONDS
    suite "$ROOT/.venv-airflow-$AIRFLOW_OLDEST" "$AIRFLOW_OLDEST" "$oldest_leave_out" "${oldest_args[@]}"
    status=$?
    echo "$((SECONDS - began))" >"$oldest_log.took"
    exit "$status"
  ) >"$oldest_log" 2>&1 &
  oldest_pid=$!
fi

# The static checks run in the background beside the latest suite (they are short and mostly one core's work);
# their output is shown when they end. Anything they install goes in first: pip must not change the venv under
# a running test suite.
echo "== venv with apache-airflow==$AIRFLOW_LATEST"
static_pid=""
static_log="$ROOT/.static-checks.log"
if make_venv "$ROOT/.venv" "$AIRFLOW_LATEST"; then
  if [ -f scripts/docs_check.sh ]; then DOCS_INSTALL_ONLY=1 PYTHON=.venv/bin/python bash scripts/docs_check.sh; fi
  (
    began=$SECONDS
    static_checks
    status=$?
    echo "$((SECONDS - began))" >"$static_log.took"
    exit "$status"
  ) >"$static_log" 2>&1 &
  static_pid=$!
else
  record "ruff, mypy, docs" 3 $((SECONDS - start))
fi

start=$SECONDS
latest_rc=0
suite "$ROOT/.venv" "$AIRFLOW_LATEST" "" -n "${HUBCOMM_WORKERS:-2}" || latest_rc=$?
latest_took=$((SECONDS - start))

if [ -n "$static_pid" ]; then
  rc=0
  wait "$static_pid" || rc=$?
  echo
  echo "== output of ruff, mypy and the docs build"
  cat "$static_log"
  record "ruff, mypy, docs" "$rc" "$(cat "$static_log.took" 2>/dev/null || echo 0)"
  rm -f "$static_log" "$static_log.took"
fi
record "pytest, Airflow $AIRFLOW_LATEST" "$latest_rc" "$latest_took"

if [ -n "$oldest_pid" ]; then
  rc=0
  wait "$oldest_pid" || rc=$?
  echo
  echo "== output of the Airflow $AIRFLOW_OLDEST suite"
  grep -v "^WARNING: Location " "$oldest_log"
  record "pytest, Airflow $AIRFLOW_OLDEST" "$rc" "$(cat "$oldest_log.took" 2>/dev/null || echo $((SECONDS - STARTED)))"
  rm -f "$oldest_log" "$oldest_log.took"
else
  RESULTS+=("$(printf '  %-28s %s' "pytest, Airflow $AIRFLOW_OLDEST" "not run (SKIP_OLDEST=1)")")
fi

total=$((SECONDS - STARTED))
echo
echo "== results (total $((total / 60))m$((total % 60))s)"
printf '%s\n' "${RESULTS[@]}"
if [ "$FAILED" -ne 0 ]; then
  echo "== some checks FAILED" >&2
  exit 1
fi
echo "== all checks passed"
