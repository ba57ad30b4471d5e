"""Client CPU of a batch write (issue 18, "Faster client"): validate + serialise, and a whole run, per tree.

Usage::

    python benchmarks/client_cpu.py [--rows 200000] [--tree /tmp/fast-before --tree .] [--part both]
        [--batch-size 100] [--repeat 3] [--rounds 1] [--profile 25]

Each case runs in a fresh child process with ``PYTHONPATH`` set to the tree measured (``--tree`` may be given
several times: the trees run in turn, within one run, for a side-by-side figure). Two parts:

* ``validate``: the engine's validation pass over N rows held in memory (``spool.validate_rows`` with a
  ``RowValidator``: validation, duplicate index, spooling), then the send side's serialisation: the spool
  streamed back and cut into request bodies of ``--batch-size`` rows exactly as ``batch/chunk.py`` builds them.
  Process CPU (``time.process_time``), best of ``--repeat``, printed per 1M rows.
* ``write``: ``BatchWriteStatusesOperator(...).execute()`` (operator -> ``BatchWriteEngine`` over the hook ->
  ``batch/write`` requests) of N in-memory rows against the bundled fake HubSpot running in a SEPARATE process
  on 127.0.0.1 (``_fakeproc.FakeProcess``, no rate window, no latency), the connection's budget set to
  ``requests_per_10s=10000`` so pacing does not dominate the wall time. Printed: the client process's CPU
  (``resource.getrusage``, user + system, every thread) for the run, per request and per 1M rows; the fake's
  CPU is its own process's and is not counted.

Rows: unique (subscriber, subscription) pairs, states mixed, half with a legal basis pair; the guard is off
(``allow_resubscribe=True``) unless ``--guard``, so a run is N / batch-size write requests plus one
definitions read. ``--profile K`` adds a cProfile of the case (top K functions by own time) to the output.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
STATES = ("SUBSCRIBED", "UNSUBSCRIBED", "NOT_SPECIFIED")
SUBSCRIPTIONS = (101, 102, 103)


def make_rows(n: int) -> list[dict[str, Any]]:
    """``n`` unique rows; half carry a legal basis pair."""
    rows: list[dict[str, Any]] = []
    for i in range(n):
        row: dict[str, Any] = {
            "subscriberIdString": f"contact{i // 3}@example.com",
            "subscriptionId": SUBSCRIPTIONS[i % 3],
            "statusState": STATES[(i // 3 + i) % 3],
            "channel": "EMAIL",
        }
        if i % 2:
            row["legalBasis"] = "LEGITIMATE_INTEREST_CLIENT"
            row["legalBasisExplanation"] = "Consent sync from the CRM warehouse"
        rows.append(row)
    return rows


def _cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def _sys_cpu() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_stime


def _profiled(fn: Any, top: int) -> tuple[Any, list[str]]:
    """Run ``fn`` under cProfile, the pool's worker threads included; return its result and the top lines."""
    import cProfile
    import io
    import pstats
    import threading
    from concurrent.futures import thread as futures_thread

    workers: list[cProfile.Profile] = []
    local = threading.local()
    original = futures_thread._WorkItem.run

    def run_item(item: Any) -> None:
        prof = getattr(local, "prof", None)
        if prof is None:
            prof = local.prof = cProfile.Profile(time.thread_time)
            workers.append(prof)
        prof.enable()
        try:
            original(item)
        finally:
            prof.disable()

    futures_thread._WorkItem.run = run_item  # type: ignore[method-assign]
    prof = cProfile.Profile(time.thread_time)  # CPU, not wall: waits for the GIL or a socket cost nothing
    try:
        result = prof.runcall(fn)
    finally:
        futures_thread._WorkItem.run = original  # type: ignore[method-assign]
    out = io.StringIO()
    stats = pstats.Stats(prof, stream=out)
    for worker in workers:
        stats.add(worker)
    stats.sort_stats(os.environ.get("BENCH_SORT", "tottime")).print_stats(top)
    lines = [line for line in out.getvalue().splitlines() if line.strip()]
    start = next((i for i, line in enumerate(lines) if "ncalls" in line), 0)
    return result, lines[start : start + top + 1]


# -- child: validate + serialise --------------------------------------------------------------------------------


def _bodies(records: Any, batch: int) -> int:
    """Cut the spool into request bodies the way ``send_chunk`` does; return the bytes produced."""
    from airflow_provider_hubcomm.batch import chunk as chunk_module

    body_of = getattr(chunk_module, "request_body", None)  # the tree's own builder, when it has one
    size = 0
    piece: list[Any] = []
    for row, write, superseded in records:
        if superseded:
            continue
        piece.append((row, write))
        if len(piece) == batch:
            if body_of is not None:
                size += len(body_of(piece))
            else:
                size += len(('{"inputs":[' + ",".join([w.to_json() for _, w in piece]) + "]}").encode())
            piece = []
    if piece:
        size += len(body_of(piece) if body_of is not None else ("[" + ",".join(w.to_json() for _, w in piece)).encode())
    return size


def _parquet_input(rows: list[dict[str, Any]], folder: str) -> str:
    """Write the rows to one Parquet file (not timed); return its path."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = os.path.join(folder, "input.parquet")
    # Columns named explicitly: from_pylist takes the first row's keys, and the first row has no legal basis.
    columns = list(dict.fromkeys(key for row in rows[:2] for key in row))
    pq.write_table(pa.table({c: [row.get(c) for row in rows] for c in columns}), path)
    return path


def _csv_input(rows: list[dict[str, Any]], folder: str) -> str:
    """Write the rows to one CSV file (not timed; an absent field is an empty cell); return its path."""
    import csv

    path = os.path.join(folder, "input.csv")
    columns = list(dict.fromkeys(key for row in rows[:2] for key in row))
    with open(path, "w", newline="", encoding="utf-8") as fh:
        out = csv.writer(fh)
        out.writerow(columns)
        out.writerows([row.get(c, "") for c in columns] for row in rows)
    return path


def _jsonl_input(rows: list[dict[str, Any]], folder: str) -> str:
    """Write the rows as JSON lines (not timed; an absent field is an absent key); return its path."""
    path = os.path.join(folder, "input.jsonl")
    with open(path, "w", encoding="utf-8") as fh:
        fh.writelines(json.dumps(row) + "\n" for row in rows)
    return path


def _file_input(args: argparse.Namespace, rows: list[dict[str, Any]], folder: str) -> str:
    """The benchmark's input file for ``--source`` (``csv*``: CSV, ``jsonl*``: JSON lines, else Parquet)."""
    if args.source.startswith("csv"):
        return _csv_input(rows, folder)
    if args.source.startswith("jsonl"):
        return _jsonl_input(rows, folder)
    return _parquet_input(rows, folder)


def _validation(args: argparse.Namespace, rows: list[dict[str, Any]], path: str | None) -> Any:
    """One validation pass over the benchmark's input, by ``--source``."""
    from airflow_provider_hubcomm.batch.rows import RowValidator
    from airflow_provider_hubcomm.batch.spool import validate_rows

    if args.source == "memory":
        return validate_rows(enumerate(rows, 1), RowValidator(), stop_at_invalid=True)
    from airflow_provider_hubcomm.batch.sources import iter_rows

    if args.source in ("parquet-rows", "csv-rows", "jsonl-rows"):  # the row path over the same file
        return validate_rows(iter_rows(path), RowValidator(), stop_at_invalid=True)
    if args.source == "csv":
        from airflow_provider_hubcomm.batch.csvbatches import validate_csv

        return validate_csv(path, RowValidator(), stop_at_invalid=True)
    if args.source == "jsonl":
        from airflow_provider_hubcomm.batch.jsonbatches import validate_jsonl

        return validate_jsonl(path, RowValidator(), stop_at_invalid=True)
    from airflow_provider_hubcomm.batch.columnar import validate_parquet
    from airflow_provider_hubcomm.batch.parquet import parquet_batches

    return validate_parquet(parquet_batches(path), RowValidator(), stop_at_invalid=True)


def child_validate(args: argparse.Namespace) -> dict[str, Any]:
    import gc

    rows = make_rows(args.rows)
    folder = tempfile.mkdtemp(prefix="bench-cpu-")
    path = None if args.source == "memory" else _file_input(args, rows, folder)
    if path is not None:
        rows = []
    gc.collect()
    gc.freeze()  # the input list stands for a stream: keep the collector from rescanning it
    best_v = best_s = float("inf")
    size = valid = 0
    for _ in range(args.repeat):
        t0 = time.process_time()
        checked = _validation(args, rows, path)
        t1 = time.process_time()
        size = _bodies(checked.spool.records(), args.batch_size)
        t2 = time.process_time()
        valid = checked.valid
        checked.spool.close()
        best_v, best_s = min(best_v, t1 - t0), min(best_s, t2 - t1)
    out: dict[str, Any] = {"rows": args.rows, "valid": valid, "body_bytes": size}
    scale = 1_000_000 / args.rows
    out.update(validate_s_per_1m=best_v * scale, serialise_s_per_1m=best_s * scale)
    out["total_s_per_1m"] = out["validate_s_per_1m"] + out["serialise_s_per_1m"]
    if args.profile:

        def once() -> None:
            checked = _validation(args, rows, path)
            _bodies(checked.spool.records(), args.batch_size)
            checked.spool.close()

        _, out["profile"] = _profiled(once, args.profile)
    import shutil

    shutil.rmtree(folder, ignore_errors=True)  # after the profile: it reads the input file again
    return out


# -- child: a whole run against the fake in another process -----------------------------------------------------


class _TI:
    """Stand-in for the task instance: the operator only pushes an XCom on failure."""

    def xcom_push(self, key: str, value: Any) -> None:
        pass


def child_write(args: argparse.Namespace) -> dict[str, Any]:
    import logging

    import airflow_provider_hubcomm.batch.engine
    import airflow_provider_hubcomm.batch.sources
    import airflow_provider_hubcomm.hooks.hubcomm  # noqa: F401  (imports are not the run's CPU)
    from airflow_provider_hubcomm.operators import BatchWriteStatusesOperator

    logging.getLogger("airflow_provider_hubcomm").setLevel(logging.WARNING)
    rows: Any = make_rows(args.rows)
    with tempfile.TemporaryDirectory() as out_dir:
        if args.source != "memory":
            rows = _file_input(args, rows, out_dir)
        op = BatchWriteStatusesOperator(
            task_id="bench_write",
            inputs=rows,
            batch_size=args.batch_size,
            allow_resubscribe=not args.guard,
            output_dir=out_dir,
        )

        def run() -> dict[str, Any]:
            return op.execute({"ti": _TI()})  # type: ignore[arg-type]

        cpu0, sys0, wall0 = _cpu(), _sys_cpu(), time.monotonic()
        if args.profile:
            summary, profile = _profiled(run, args.profile)
        else:
            summary, profile = run(), None
        cpu, sys_cpu, wall = _cpu() - cpu0, _sys_cpu() - sys0, time.monotonic() - wall0
    requests = summary["requests"]
    out: dict[str, Any] = {
        "rows": args.rows,
        "written": summary["written"],
        "failed": summary["failed"],
        "skipped": summary["skipped"],
        "requests": requests,
        "retries": summary["retries"],
        "wall_s": wall,
        "client_cpu_s": cpu,
        "client_sys_s": sys_cpu,
        "cpu_ms_per_request": 1000 * cpu / max(requests, 1),
        "cpu_s_per_1m": cpu * 1_000_000 / args.rows,
    }
    if profile is not None:
        out["profile"] = profile
    return out


# -- parent -----------------------------------------------------------------------------------------------------


def _child_env(tree: str, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.path.abspath(tree)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = "/tmp/hubcomm-bench-pycache"
    env.update(extra)
    return env


def _run_child(part: str, tree: str, args: argparse.Namespace, env_extra: dict[str, str]) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--child", part, "--rows", str(args.rows), "--repeat", str(args.repeat)]
    cmd += ["--batch-size", str(args.batch_size), "--profile", str(args.profile), "--source", args.source]
    if args.guard:
        cmd.append("--guard")
    done = subprocess.run(cmd, env=_child_env(tree, **env_extra), capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{part} child for {tree} failed:\n{done.stderr[-4000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _revision(tree: str) -> str:
    done = subprocess.run(["git", "-C", tree, "log", "-1", "--format=%h"], capture_output=True, text=True, check=False)
    status = ["git", "-C", tree, "status", "--porcelain", "--", "airflow_provider_hubcomm"]
    dirty = subprocess.run(status, capture_output=True, text=True, check=False)
    return done.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--tree", action="append", help="source tree to measure (repeatable; default: this one)")
    parser.add_argument("--part", choices=("validate", "write", "both"), default="both")
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=3, help="repetitions of the validate part (best kept)")
    parser.add_argument("--rounds", type=int, default=1, help="runs per tree, trees interleaved (best kept)")
    parser.add_argument("--guard", action="store_true", help="keep the re-subscribe guard on (status reads)")
    parser.add_argument(
        "--rate",
        type=int,
        default=None,
        help="HubSpot's budget, requests per 10 s, enforced by the fake and known to the connection (default: no "
        "limit, the connection paced at 10,000): 190 is a real account's, so the run is rate-bound as in production",
    )
    parser.add_argument("--latency", type=float, default=0.0, help="seconds the fake takes to answer (default 0)")
    parser.add_argument("--profile", type=int, default=0, metavar="K", help="print cProfile's top K functions")
    parser.add_argument(
        "--source",
        choices=("memory", "parquet", "parquet-rows", "csv", "csv-rows", "jsonl", "jsonl-rows"),
        default="memory",
        help="rows in memory (the row path), or one Parquet, CSV or JSON lines file: 'parquet', 'csv' and 'jsonl' "
        "are what a run does with it (the vectorised pass), '...-rows' the row path over the same file (validate "
        "part only)",
    )
    parser.add_argument("--child", choices=("validate", "write"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        result = child_validate(args) if args.child == "validate" else child_write(args)
        print(json.dumps(result))
        return
    trees = args.tree or [str(HERE.parent)]
    parts = ("validate", "write") if args.part == "both" else (args.part,)
    load = os.getloadavg()
    print(f"rows {args.rows:,}, batch size {args.batch_size}, {os.cpu_count()} CPUs, load {load[0]:.2f} {load[1]:.2f}")
    if "validate" in parts:
        best: dict[str, dict[str, Any]] = {}
        for _ in range(args.rounds):  # trees interleaved, best round kept: the machine's load varies
            for tree in trees:
                r = _run_child("validate", tree, args, {})
                if tree not in best or r["total_s_per_1m"] < best[tree]["total_s_per_1m"]:
                    best[tree] = r
        for tree, r in best.items():
            print(
                f"validate+serialise  {tree} ({_revision(tree)}): CPU s per 1M rows: validate "
                f"{r['validate_s_per_1m']:.2f} + serialise {r['serialise_s_per_1m']:.2f} = {r['total_s_per_1m']:.2f}"
                f"  ({r['valid']:,} valid, {r['body_bytes']:,} body bytes)"
            )
            for line in r.get("profile", []):
                print("    " + line)
    if "write" in parts:
        sys.path.insert(0, str(HERE))
        from _fakeproc import FakeProcess

        runs: dict[str, list[dict[str, Any]]] = {tree: [] for tree in trees}
        knobs: dict[str, Any] = {"requests_per_window": args.rate, "latency": args.latency}
        with FakeProcess(**knobs) as fake:
            conn = fake.connection_json(requests_per_10s=args.rate or 10_000)
            for _ in range(args.rounds):
                for tree in trees:
                    if args.rate:
                        time.sleep(10.5)  # the fake's rolling window empties: every run starts with a full budget
                    fake.reset_counters()
                    fake_cpu0 = fake.cpu_seconds()
                    r = _run_child("write", tree, args, {"AIRFLOW_CONN_HUBCOMM_DEFAULT": conn})
                    r["fake_cpu_s"] = fake.cpu_seconds() - fake_cpu0
                    runs[tree].append(r)
        for tree, results in runs.items():
            r = min(results, key=lambda x: x["client_cpu_s"])
            every = ", ".join(f"{x['cpu_s_per_1m']:.1f}" for x in results)
            print(
                f"batch write         {tree} ({_revision(tree)}): {r['requests']:,} requests, "
                f"written {r['written']:,}, failed {r['failed']:,}, skipped {r['skipped']:,}; "
                f"client CPU {r['client_cpu_s']:.2f} s = {r['cpu_ms_per_request']:.2f} ms/request = "
                f"{r['cpu_s_per_1m']:.1f} s per 1M rows (best of {every}; system CPU {r['client_sys_s']:.2f} s); "
                f"retries {r.get('retries', '?')}; "
                f"wall {r['wall_s']:.1f} s; "
                f"fake CPU {r['fake_cpu_s']:.1f} s"
            )
            for line in r.get("profile", []):
                print("    " + line)


if __name__ == "__main__":
    main()
