"""Benchmark the incremental sync end to end (issue 18): N generated rows against the bundled fake HubSpot.

Usage::

    PYTHONPATH=. .venv/bin/python benchmarks/sync_e2e.py [--rows 1000000] [--json /tmp/sync_e2e.json]

The fake runs in its own process (``benchmarks/_fakeproc.py``) without a rate window and without latency, and
the connection's budget is 10,000 requests / 10 s (the most it takes), so the client, not a rate limit, is
what is measured. Every run is ``BatchWriteStatusesOperator(...).execute()`` (the path a DAG takes, default
``batch_size=100``, ``max_concurrency=4``, the re-subscribe guard on) in a fresh child process, which reports
its wall time, CPU (user + system of the client process: DuckDB's threads included) and peak RSS. The input
is one Parquet file: ``rows / 2`` contacts x 2 subscriptions, states mixed (:func:`state_of`; a third
``SUBSCRIBED``: those rows are read by the guard before they are written), legal basis and explanation set.
Phases, in one run:

1. **baseline**: today's path without ``state_path``, on a fresh fake;
2. **first sync**: with ``state_path`` on a fresh fake (every row sent, the state built, the sync log written);
3. **unchanged**: the same input again (target: 0 HubSpot requests, <= 30 s wall);
4. **1 % changed**: 1 row in 100 gets another state, a third of them ``SUBSCRIBED`` (:func:`state_of`; target:
   requests <= 1.05 x (the write requests those rows need + their guard reads));
5. **kill at ~50 %**: a first sync on a fresh fake and state, SIGKILLed once the fake has received about half
   of the rows, then run again: rows sent twice as a share of the rows the killed run had sent (HubSpot
   confirmed all of them but the requests in flight; target <= 1 %), and the rows its checkpoints recorded.

HubSpot requests are the fake's counters (per endpoint); rows sent are the inputs of the batch writes it
received (its request log).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

STATES = ("SUBSCRIBED", "UNSUBSCRIBED", "NOT_SPECIFIED")
BATCH = 100


# -- the child: one run of the operator ------------------------------------------------------------------------


class _TI:
    def xcom_push(self, key: str, value: Any) -> None:
        """The operator pushes the summary on failure only; nothing to keep."""


def child(args: dict[str, Any]) -> None:
    """Run the operator once and print one JSON line: wall, CPU, peak RSS and the summary's counts."""
    from airflow_provider_hubcomm.operators import BatchWriteStatusesOperator

    op = BatchWriteStatusesOperator(
        task_id="sync_e2e",
        inputs=args["inputs"],
        state_path=args.get("state"),
        output_dir=args["out"],
    )
    t0 = time.monotonic()
    error = None
    try:
        summary: Any = op.execute({"ti": _TI()})  # type: ignore[arg-type]
    except Exception as err:
        summary = getattr(err, "summary", None) or {}
        error = f"{type(err).__name__}: {str(err)[:300]}"
    wall = time.monotonic() - t0
    ru = resource.getrusage(resource.RUSAGE_SELF)
    keys = ("rows_read", "written", "failed", "skipped", "skipped_by_reason", "requests", "retries", "state")
    print(
        json.dumps(
            {
                "wall_s": round(wall, 2),
                "cpu_s": round(ru.ru_utime + ru.ru_stime, 2),
                "maxrss_mb": round(ru.ru_maxrss / 1024),
                "error": error,
                **{k: summary.get(k) for k in keys},
            }
        )
    )


# -- the parent ------------------------------------------------------------------------------------------------


def state_of(i: int, changed: bool = False) -> str:
    """Row ``i``'s state: contact ``i // 2``, subscription ``i % 2``, all three states in turn.

    In the changed input, 1 row in 100 (``i % 100 == 0``) moves to the next state: ``SUBSCRIBED`` to
    ``UNSUBSCRIBED``, ``UNSUBSCRIBED`` to ``NOT_SPECIFIED``, ``NOT_SPECIFIED`` to ``SUBSCRIBED`` (those the guard
    reads first, and lets through: HubSpot holds ``NOT_SPECIFIED``).
    """
    return STATES[(i // 2 + 2 * (i % 2) + (1 if changed and i % 100 == 0 else 0)) % 3]


_STATE_SQL = "list_extract({states}, 1 + ((i // 2 + 2 * (i % 2) {shift}) % 3)::INTEGER)"


def make_input(path: Path, rows: int, changed: bool = False) -> None:
    """Write the input as Parquet (DuckDB); ``changed``: 1 % of the rows get another state (:func:`state_of`)."""
    import duckdb

    moved = "+ CASE WHEN i % 100 = 0 THEN 1 ELSE 0 END" if changed else ""
    state = _STATE_SQL.format(states=list(STATES), shift=moved)
    duckdb.execute(
        f"""COPY (SELECT 'contact' || (i // 2) || '@example.com' AS subscriberIdString,
                   101 + i % 2 AS subscriptionId,
                   {state} AS statusState,
                   'LEGITIMATE_INTEREST_CLIENT' AS legalBasis,
                   'Consent sync from the CRM warehouse' AS legalBasisExplanation
            FROM range({rows}) t(i)) TO '{path}' (FORMAT parquet)"""
    )


def ideal_requests(rows: int) -> dict[str, int]:
    """Requests the changed rows need at least: their writes, and the guard's reads of the SUBSCRIBED ones."""
    changed = [i for i in range(rows) if state_of(i) != state_of(i, True)]
    subscribed = {i // 2 for i in changed if state_of(i, True) == "SUBSCRIBED"}
    writes = math.ceil(len(changed) / BATCH)
    reads = 2 * math.ceil(len(subscribed) / BATCH)  # the statuses and the brand's opt-out of all e-mail
    return {"changed_rows": len(changed), "writes": writes, "guard_reads": reads, "total": writes + reads}


def start_child(fake: Any, args: dict[str, Any]) -> subprocess.Popen[str]:
    tmp = Path(args["out"]).parent / "tmp"  # a killed child's work folder goes away with the benchmark's
    tmp.mkdir(exist_ok=True)
    env = {
        **os.environ,
        "AIRFLOW_CONN_HUBCOMM_DEFAULT": fake.connection_json(requests_per_10s=10_000),
        "TMPDIR": str(tmp),
    }
    # stdout to a file, not a pipe: a child whose pipe nobody drains (the kill phase) blocks once it is full
    with (tmp / f"child-{time.monotonic_ns()}.out").open("w+") as out:
        proc = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "--child", json.dumps(args)],
            env=env,
            stdout=out,
            stderr=subprocess.DEVNULL,
            text=True,
            start_new_session=True,
        )
    proc.args = out.name  # where its output is (read by run_phase)
    return proc


def rows_written_to(fake: Any) -> int:
    return sum(e["n_inputs"] or 0 for e in fake.request_log() if e["path"].endswith("/statuses/batch/write"))


def api_requests(counters: dict[str, int]) -> dict[str, int]:
    """Requests per endpoint (the token endpoint is not an API request; a private app uses none)."""
    return {k.split(":", 1)[1]: v for k, v in counters.items() if k.startswith("endpoint:")}


def run_phase(fake: Any, args: dict[str, Any]) -> dict[str, Any]:
    fake.reset_counters()
    proc = start_child(fake, args)
    proc.wait()
    result = json.loads(Path(proc.args).read_text().strip().splitlines()[-1])
    counters = api_requests(fake.counters())
    result["fake_requests"] = sum(counters.values())
    result["fake_by_endpoint"] = counters
    result["rows_sent"] = rows_written_to(fake)
    return result


def kill_phase(fake: Any, args: dict[str, Any], rows: int) -> dict[str, Any]:
    """A first sync killed at about 50 % of the rows, then retried."""
    import duckdb

    fake.reset_counters()
    proc = start_child(fake, args)
    t0 = time.monotonic()
    while fake.counters().get("endpoint:batch_write", 0) * BATCH < rows // 2:
        if proc.poll() is not None:
            raise RuntimeError("the run ended before it was killed")
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    killed_after = time.monotonic() - t0
    sent_first = rows_written_to(fake)
    segments = sorted(str(p) for p in (Path(args["state"]) / "journal").glob("*.jsonl"))
    confirmed = duckdb.execute(
        "SELECT count(*) FROM (SELECT DISTINCT k, s FROM read_json(?, format='newline_delimited') WHERE ok)",
        [segments],
    ).fetchone()[0]  # type: ignore[index]
    retry = run_phase(fake, args)
    twice = sent_first + retry["rows_sent"] - rows
    return {
        "killed_after_s": round(killed_after, 1),
        "rows_sent_before_kill": sent_first,
        "rows_checkpointed_before_kill": confirmed,
        "retry": retry,
        "rows_sent_twice": twice,
        "sent_twice_pct_of_sent_before_kill": round(100 * twice / sent_first, 3) if sent_first else None,
    }


def sync_phases(root: Path, results: dict[str, Any], phase: Any) -> None:
    """Phases 1 to 4: the baseline on a fresh fake, then first sync, unchanged and 1 % changed on another."""
    from _fakeproc import FakeProcess

    with FakeProcess() as fake:
        phase("baseline", fake, inputs=str(root / "in.parquet"))
    with FakeProcess() as fake:
        state = str(root / "state")
        phase("first_sync", fake, inputs=str(root / "in.parquet"), state=state)
        phase("unchanged", fake, inputs=str(root / "in.parquet"), state=state)
        phase("changed_1pct", fake, inputs=str(root / "changed.parquet"), state=state)
    results["changed_1pct"]["ideal"] = ideal = ideal_requests(results["rows"])
    results["changed_1pct"]["ratio_to_ideal"] = round(results["changed_1pct"]["fake_requests"] / ideal["total"], 3)


def main() -> None:
    from _fakeproc import FakeProcess

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--skip-kill", action="store_true", help="leave out phase 5")
    parser.add_argument("--only-kill", action="store_true", help="run phase 5 only")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="hubcomm-syncbench-"))
    n = args.rows
    results: dict[str, Any] = {"rows": n, "load_before": os.getloadavg()}
    try:
        make_input(root / "in.parquet", n)
        make_input(root / "changed.parquet", n, changed=True)

        def phase(name: str, fake: Any, **run: Any) -> None:
            run.setdefault("out", str(root / "out"))
            results[name] = run_phase(fake, run)
            print(name, json.dumps(results[name]), flush=True)

        if not args.only_kill:
            sync_phases(root, results, phase)
        if not args.skip_kill:
            with FakeProcess() as fake:
                run = {"inputs": str(root / "in.parquet"), "state": str(root / "kill-state"), "out": str(root / "out")}
                results["kill_retry"] = kill_phase(fake, run, n)
                print("kill_retry", json.dumps(results["kill_retry"]), flush=True)
        results["load_after"] = os.getloadavg()
        if args.json:
            args.json.write_text(json.dumps(results, indent=1))
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        child(json.loads(sys.argv[2]))
    else:
        main()
