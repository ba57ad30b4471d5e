#!/usr/bin/env bash
# One-command demo of airflow-provider-hubcomm:
#   bash scripts/demo.sh
#
# 1. creates .venv (Python >= 3.11) with the provider and its `examples` extra if it is missing;
# 2. initialises Airflow with SQLite in a temporary AIRFLOW_HOME whose dags folder is dags_examples/;
# 3. seeds a demo warehouse (SQLite file): a few thousand consent rows, some invalid on purpose
#    (bad e-mails, unknown statuses, half a legal basis, an unknown subscription, duplicates);
# 4. starts the bundled fake HubSpot on 127.0.0.1 (100 requests / 10 s, a little latency, 2% of answers 5xx);
# 5. runs `airflow dags test gdpr_unsubscribe_request` for one contact the warehouse lists as SUBSCRIBED (they
#    opted out of all e-mail), then `airflow dags test consent_sync_from_warehouse` (no scheduler or api-server
#    needed), which must not re-subscribe that contact;
# 6. prints the run's report and the fake's final state, then stops the fake (also on error or Ctrl-C).
#
# Knobs (environment):
#   HUBCOMM_DEMO_DIR       where everything goes (default: a new /tmp/hubcomm-demo.XXXXXX, kept afterwards)
#   HUBCOMM_DEMO_CONTACTS  contacts in the demo warehouse (default 2000, about 3,900 rows)
#   HUBCOMM_DEMO_RPS       the fake's budget per 10 s (default 100, HubSpot's Free/Starter private apps)
#   HUBCOMM_DEMO_REAL=1    do not start the fake: run the same DAG against the real HubSpot API. Needs
#                          AIRFLOW_CONN_HUBCOMM_DEFAULT (a private-app token or OAuth app, see
#                          docs) and AIRFLOW_CONN_WAREHOUSE_DEFAULT pointing at YOUR consent table: the demo
#                          data is made up (example.com addresses, subscription ids 101-103) and is never
#                          written to a real portal.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

pick_python() {
  for candidate in python3.11 python3.12 python3; do
    if command -v "$candidate" >/dev/null 2>&1 &&
      "$candidate" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null; then
      echo "$candidate"; return 0
    fi
  done
  echo "Python >= 3.11 is required" >&2; return 1
}

# -- 1. virtualenv ------------------------------------------------------------------------------------------
VENV="$ROOT/.venv"
if ! "$VENV/bin/python" -c 'import airflow, airflow.providers.sqlite, airflow_provider_hubcomm.operators' 2>/dev/null; then
  echo "== creating $VENV (pip install -e .[examples]); this takes a minute or two"
  [ -x "$VENV/bin/python" ] || "$(pick_python)" -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --upgrade pip
  "$VENV/bin/python" -m pip install -q -e ".[examples]"
fi
PY="$VENV/bin/python"
export PATH="$VENV/bin:$PATH"

# -- 2. Airflow home ----------------------------------------------------------------------------------------
DEMO_DIR=${HUBCOMM_DEMO_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/hubcomm-demo.XXXXXX")}
mkdir -p "$DEMO_DIR"
DEMO_DIR=$(cd "$DEMO_DIR" && pwd)
export AIRFLOW_HOME="$DEMO_DIR/airflow_home"
export AIRFLOW__CORE__DAGS_FOLDER="$ROOT/dags_examples"
export AIRFLOW__CORE__LOAD_EXAMPLES=False
export AIRFLOW__DATABASE__SQL_ALCHEMY_CONN="sqlite:///$AIRFLOW_HOME/airflow.db"
export AIRFLOW__LOGGING__BASE_LOG_FOLDER="$AIRFLOW_HOME/logs"
export HUBCOMM_WORK_DIR="$DEMO_DIR/work"
export HUBCOMM_REPORT_DIR="$DEMO_DIR/reports"
mkdir -p "$AIRFLOW_HOME"
echo "== demo directory: $DEMO_DIR"
echo "== airflow db migrate (SQLite, AIRFLOW_HOME=$AIRFLOW_HOME)"
airflow db migrate >"$DEMO_DIR/db_migrate.log" 2>&1 || { tail -20 "$DEMO_DIR/db_migrate.log"; exit 1; }

# -- 3. warehouse -------------------------------------------------------------------------------------------
if [ "${HUBCOMM_DEMO_REAL:-0}" = "1" ]; then
  : "${AIRFLOW_CONN_HUBCOMM_DEFAULT:?HUBCOMM_DEMO_REAL=1 needs AIRFLOW_CONN_HUBCOMM_DEFAULT (your HubSpot connection)}"
  : "${AIRFLOW_CONN_WAREHOUSE_DEFAULT:?HUBCOMM_DEMO_REAL=1 needs AIRFLOW_CONN_WAREHOUSE_DEFAULT (your consent table; the demo data is never sent to a real portal)}"
  echo "== real HubSpot API: using your AIRFLOW_CONN_HUBCOMM_DEFAULT and AIRFLOW_CONN_WAREHOUSE_DEFAULT"
else
  echo "== seeding the demo warehouse"
  "$PY" scripts/seed_warehouse.py --db "$DEMO_DIR/warehouse.db" --contacts "${HUBCOMM_DEMO_CONTACTS:-2000}" \
    | tee "$DEMO_DIR/seed.json"
  export AIRFLOW_CONN_WAREHOUSE_DEFAULT="{\"conn_type\": \"sqlite\", \"host\": \"$DEMO_DIR/warehouse.db\"}"
fi

# -- 4. the fake HubSpot ------------------------------------------------------------------------------------
FAKE_PID=""
stop_fake() {
  if [ -n "$FAKE_PID" ] && kill -0 "$FAKE_PID" 2>/dev/null; then
    kill -TERM "$FAKE_PID" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$FAKE_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$FAKE_PID" 2>/dev/null || true
    wait "$FAKE_PID" 2>/dev/null || true
  fi
  FAKE_PID=""
}
trap stop_fake EXIT
trap 'exit 130' INT TERM

if [ "${HUBCOMM_DEMO_REAL:-0}" != "1" ]; then
  echo "== starting the fake HubSpot (${HUBCOMM_DEMO_RPS:-100} requests / 10 s, 20-50 ms latency, 2% 5xx)"
  rm -f "$DEMO_DIR/fake.url" "$DEMO_DIR/fake_state.json"
  "$PY" -m airflow_provider_hubcomm.testing \
    --requests-per-window "${HUBCOMM_DEMO_RPS:-100}" --latency 0.02 --latency-jitter 0.03 \
    --error-rate-5xx 0.02 --seed 7 \
    --ready-file "$DEMO_DIR/fake.url" --state-file "$DEMO_DIR/fake_state.json" >"$DEMO_DIR/fake.log" 2>&1 &
  FAKE_PID=$!
  for _ in $(seq 1 100); do
    [ -s "$DEMO_DIR/fake.url" ] && break
    kill -0 "$FAKE_PID" 2>/dev/null || { cat "$DEMO_DIR/fake.log"; echo "the fake HubSpot did not start" >&2; exit 1; }
    sleep 0.1
  done
  [ -s "$DEMO_DIR/fake.url" ] || { echo "the fake HubSpot did not get ready in 10 s" >&2; exit 1; }
  AIRFLOW_CONN_HUBCOMM_DEFAULT=$(sed -n "s/^\(export \)\{0,1\}AIRFLOW_CONN_HUBCOMM_DEFAULT='\(.*\)'\$/\2/p" "$DEMO_DIR/fake.log")
  [ -n "$AIRFLOW_CONN_HUBCOMM_DEFAULT" ] || { cat "$DEMO_DIR/fake.log"; echo "no connection line from the fake" >&2; exit 1; }
  export AIRFLOW_CONN_HUBCOMM_DEFAULT
  echo "   listening on $(cat "$DEMO_DIR/fake.url") (pid $FAKE_PID)"
fi

# -- 5. the DAGs -------------------------------------------------------------------------------------------
run_state() {  # the final state and duration of the run in a `dags test` log
  sed -n 's/.*DagRun Finished: .*run_duration=\([0-9.]*\), state=\([a-z_]*\),.*/state \2 after \1 s/p' "$1" | tail -1
}
if [ "${HUBCOMM_DEMO_REAL:-0}" != "1" ]; then
  # A contact who already opted out of all e-mail in HubSpot (a GDPR request) and whom the warehouse still
  # lists as SUBSCRIBED: the sync must not re-subscribe them (skipped as resubscribe_not_allowed).
  GDPR_CONTACT=$("$PY" -c '
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
print(db.execute("SELECT email FROM contact_consent WHERE consent_status = ? ORDER BY id LIMIT 1", ("SUBSCRIBED",)).fetchone()[0])
' "$DEMO_DIR/warehouse.db")
  echo "== airflow dags test gdpr_unsubscribe_request (subscriber $GDPR_CONTACT; log: $DEMO_DIR/gdpr_test.log)"
  airflow dags test gdpr_unsubscribe_request -c "{\"subscriber\": \"$GDPR_CONTACT\"}" >"$DEMO_DIR/gdpr_test.log" 2>&1 \
    || { tail -40 "$DEMO_DIR/gdpr_test.log"; echo "the GDPR request DAG failed" >&2; exit 1; }
  echo "   $(run_state "$DEMO_DIR/gdpr_test.log"); $(grep -o 'Proven: [^ ]* is opted out of all e-mail' "$DEMO_DIR/gdpr_test.log" | head -1)"
fi

echo "== airflow dags test consent_sync_from_warehouse (log: $DEMO_DIR/dags_test.log)"
rc=0
airflow dags test consent_sync_from_warehouse >"$DEMO_DIR/dags_test.log" 2>&1 || rc=$?
echo "   $(run_state "$DEMO_DIR/dags_test.log")"

# -- 6. results ---------------------------------------------------------------------------------------------
report=$(find "$HUBCOMM_REPORT_DIR" -name report.txt 2>/dev/null | sort | tail -1)
echo
if [ -n "$report" ]; then
  cat "$report"
  echo "   (saved in $(dirname "$report"))"
else
  echo "No report was written; the end of the DAG log:"
  tail -40 "$DEMO_DIR/dags_test.log"
fi

if [ -n "$FAKE_PID" ]; then
  stop_fake
  echo
  "$PY" - "$DEMO_DIR/fake_state.json" <<'PYEOF'
import collections, json, sys
state = json.load(open(sys.argv[1]))
statuses = state.get("statuses", [])
by_status = collections.Counter(s["status"] for s in statuses)
by_sub = collections.Counter(s["subscriptionId"] for s in statuses)
counters = state.get("counters", {})
print("Fake HubSpot, final state:")
print(f"  {len(statuses):,} subscription statuses of {len({s['subscriberIdString'] for s in statuses}):,} contacts: "
      + ", ".join(f"{k} {v:,}" for k, v in sorted(by_status.items())))
print("  per subscription: " + ", ".join(f"{k}: {v:,}" for k, v in sorted(by_sub.items())))
print(f"  opted out of all e-mail: {len(state.get('optedOutOfAll', [])):,}; pending writes: {state.get('pendingWrites', 0)}")
endpoints = {k.split(':', 1)[1]: v for k, v in counters.items() if k.startswith("endpoint:")}
outcomes = {k: v for k, v in counters.items() if not k.startswith("endpoint:") and k not in ("requests", "writes_applied")}
print(f"  HTTP requests the fake received: {counters.get('requests', 0):,}: every task of the run (the write, the")
print("    sensor's read-back), token refreshes and retries, and requests whose answer was dropped; the run")
print("    summary's \"requests\" counts only the answers the write task received")
print("    by endpoint: " + ", ".join(f"{k} {v:,}" for k, v in sorted(endpoints.items())))
print("    by outcome:  " + ", ".join(f"{k} {v:,}" for k, v in sorted(outcomes.items())))
print(f"  rows applied by writes: {counters.get('writes_applied', 0):,} (a row retried after a dropped answer is")
print("    applied twice, so this can exceed the summary's \"written\"; skipped rows were never sent)")
PYEOF
fi
echo
if [ "$rc" -eq 0 ]; then
  echo "== demo finished: the DAG run succeeded (everything is in $DEMO_DIR)"
else
  echo "== demo finished: the DAG run FAILED (exit code $rc); see $DEMO_DIR/dags_test.log" >&2
fi
exit "$rc"
