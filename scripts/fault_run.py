#!/usr/bin/env python
"""Fault runs at full size (issue 9): the scenarios of ``tests/faults`` with 1,000,000 rows, as a table.

Each scenario runs ``BatchWriteStatusesOperator`` in a real ``dag.test()`` (DAG ``test_faults_batch_write``
from ``tests/dags``) against a fresh :class:`~airflow_provider_hubcomm.testing.FakeHubSpot` with its faults,
then compares what the run reported with what the fake holds (``tests/faults/harness.py``: ``check``).
Scenarios: 5xx before the write, connections dropped after the write, OAuth tokens expiring every 60 s
(plus forced expiries), a 429 storm with and without Retry-After, latency spikes beyond a 0.5 s timeout,
all of them together, a refresh token revoked mid-run, and a run SIGKILLed part-way then rerun.

Usage (from the repository root, in the project's virtualenv)::

    python scripts/fault_run.py                      # everything, 1M rows (about 20-30 minutes on 2 cores)
    python scripts/fault_run.py --rows 50000 --only 5xx,killed_then_rerun
    python scripts/fault_run.py --json figures.jsonl # also write one JSON line per scenario

It sets up its own Airflow home (SQLite, DAGs folder ``tests/dags``) in a temporary directory, talks to
127.0.0.1 only, and exits non-zero if any scenario broke a rule (lost rows, bad accounting, retry storm …).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
EXTRA = ["revoked_refresh_token", "killed_then_rerun"]


def setup_airflow(home: Path) -> None:
    """Point Airflow at a private home before it is imported (same settings as ``tests/conftest.py``)."""
    os.environ["AIRFLOW_HOME"] = str(home)
    os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
    os.environ["AIRFLOW__CORE__UNIT_TEST_MODE"] = "True"
    os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"sqlite:///{home / 'airflow.db'}"
    os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(ROOT / "tests" / "dags")
    os.environ["AIRFLOW__LOGGING__BASE_LOG_FOLDER"] = str(home / "logs")
    os.environ.setdefault("AIRFLOW__CORE__EXECUTOR", "LocalExecutor")
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from airflow.utils import db

    db.resetdb()


def run_scenario(name: str, ds: Any, workdir: Path, time_bound: float) -> dict[str, Any]:
    from airflow_provider_hubcomm.testing import FakeHubSpot
    from tests.faults import harness

    scenarios = {s.name: s for s in harness.scenarios(ci=False)}
    if name == "revoked_refresh_token":
        scenario = harness.Scenario(name, {"token_ttl": 60.0}, auth="oauth")
    elif name == "killed_then_rerun":
        scenario = scenarios["all_together"]
    else:
        scenario = scenarios[name]
    scenario.time_bound = time_bound
    with FakeHubSpot(**scenario.knobs) as fake:
        harness.preload(fake, ds)
        conn = scenario.connection_json(fake)
        os.environ[harness.CONN_ENV] = conn
        extra: dict[str, Any] = {}
        if name == "revoked_refresh_token":
            refresh = fake.oauth_client["refresh_token"]
            seen: dict[str, int] = {}

            def revoke() -> None:
                fake.revoke_refresh_token(refresh)
                fake.expire_all_access_tokens()
                seen["token_requests"] = fake.counters.get("endpoint:token", 0)

            with harness.Chaos(fake, scenario, ds.rows, at_progress=[(0.3, revoke)]) as chaos:
                result = harness.dag_test(ds, workdir)
            figures = harness.check(ds, fake, result, scenario, chaos=chaos, expect_failed_run=True, exact=False)
            after = fake.counters.get("endpoint:token", 0) - seen.get("token_requests", 0)
            extra["token_requests_after_revocation"] = after
            if not seen or not 1 <= after <= 8:
                raise AssertionError(f"{name}: {after} token requests after the revocation (seen={seen})")
        elif name == "killed_then_rerun":

            def part_way() -> bool:
                return fake.counters.get("writes_applied", 0) >= 0.3 * ds.rows

            with harness.Chaos(fake, scenario, ds.rows):
                killed = harness.airflow_dags_test(
                    ds, workdir / "killed", env=harness.subprocess_env({harness.CONN_ENV: conn}), kill_when=part_way
                )
            if killed.state != "killed":
                raise AssertionError(f"{name}: first run not killed part-way: {killed.state}\n{killed.output[-2000:]}")
            extra["killed_after_seconds"] = round(killed.seconds, 1)
            extra["applied_before_kill"] = fake.counters.get("writes_applied", 0)
            fake.reset_counters()
            with harness.Chaos(fake, scenario, ds.rows) as chaos:
                result = harness.dag_test(ds, workdir / "rerun")
            figures = harness.check(ds, fake, result, scenario, chaos=chaos)
        else:
            with harness.Chaos(fake, scenario, ds.rows) as chaos:
                result = harness.dag_test(ds, workdir)
            figures = harness.check(ds, fake, result, scenario, chaos=chaos)
    figures["scenario"] = name
    figures.update(extra)
    return figures


COLUMNS = [
    ("scenario", 22),
    ("rows", 9),
    ("written", 9),
    ("failed", 7),
    ("skipped", 7),
    ("faults", 7),
    ("retries", 7),
    ("requests", 8),
    ("token_requests", 6),
    ("seconds", 8),
    ("lost", 5),
    ("result", 6),
]
HEADINGS = {"token_requests": "tokens", "seconds": "time s"}


def table_line(values: dict[str, Any]) -> str:
    cells = []
    for key, width in COLUMNS:
        value = values.get(key, "")
        cells.append(str(value).ljust(width) if key == "scenario" else str(value).rjust(width))
    return " ".join(cells)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows in the input file (default 1,000,000)")
    parser.add_argument("--only", default="", help="comma-separated scenario names (default: all)")
    parser.add_argument("--workdir", type=Path, default=None, help="keep inputs and outputs here (default: temp)")
    parser.add_argument("--json", type=Path, default=None, help="append one JSON line of figures per scenario")
    parser.add_argument("--seconds-per-1000-rows", type=float, default=1.0, help="time bound per 1,000 rows")
    args = parser.parse_args(argv)

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="hubcomm-fault-run-"))
    workdir.mkdir(parents=True, exist_ok=True)
    log_path = workdir / "task-logs.txt"
    out = os.fdopen(os.dup(1), "w", buffering=1)  # the table goes to the real stdout ...
    log = log_path.open("a", encoding="utf-8")
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(log.fileno(), 1)  # ... Airflow's, the engine's and the task's logs to a file (fd level: structlog too)
    os.dup2(log.fileno(), 2)
    started = time.monotonic()
    setup_airflow(workdir / "airflow-home")
    from tests.faults import harness

    names = [s.name for s in harness.scenarios(ci=False)] + EXTRA
    if args.only:
        wanted = [n.strip() for n in args.only.split(",") if n.strip()]
        unknown = set(wanted) - set(names)
        if unknown:
            print(f"unknown scenario(s) {sorted(unknown)}; known: {', '.join(names)}", file=out)
            return 2
        names = wanted
    ds = harness.make_dataset(workdir / "consent.csv", args.rows)
    print(
        f"Input: {ds.rows:,} rows ({ds.superseded:,} superseded duplicates, {len(ds.unknown_rows):,} for an unknown "
        f"subscription, {len(ds.guarded):,} guarded re-subscribes); work dir {workdir}; task logs {log_path}\n",
        file=out,
    )
    bound = 60.0 + args.rows / 1000 * args.seconds_per_1000_rows
    results: list[dict[str, Any]] = []
    print(table_line({k: HEADINGS.get(k, k) for k, _ in COLUMNS}), file=out)
    for name in names:
        run_dir = workdir / name
        print(f"\n===== scenario {name} =====", flush=True)
        try:
            figures = run_scenario(name, ds, run_dir, bound)
            figures["result"] = "ok"
        except Exception as exc:  # report and go on with the next scenario
            traceback.print_exc()
            figures = {"scenario": name, "rows": ds.rows, "result": "FAIL", "error": str(exc)}
        sys.stdout.flush()
        sys.stderr.flush()
        results.append(figures)
        print(table_line(figures), file=out)
        if figures.get("fault_detail"):
            detail = ", ".join(f"{k} {v}" for k, v in figures["fault_detail"].items())
            print(f"{'':23}faults: {detail}", file=out)
        for key in ("token_requests_after_revocation", "killed_after_seconds", "applied_before_kill", "error"):
            if key in figures:
                print(f"{'':23}{key}: {str(figures[key])[:600]}", file=out)
        if args.json:
            with args.json.open("a", encoding="utf-8") as fh:
                fh.write(json.dumps(figures) + "\n")
        if not args.workdir:
            shutil.rmtree(run_dir, ignore_errors=True)
    failed = [r["scenario"] for r in results if r["result"] != "ok"]
    lost = sum(int(r.get("lost", 0)) for r in results)
    print(
        f"\n{len(results)} scenarios in {time.monotonic() - started:.0f} s; lost rows: {lost}; "
        f"{'all rules held' if not failed else 'FAILED: ' + ', '.join(failed)}",
        file=out,
    )
    if not args.workdir:
        shutil.rmtree(workdir, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
