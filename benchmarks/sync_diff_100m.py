"""The sync diff at scale: an N-row input against an N-key state (default 100M), generated as Parquet by DuckDB.

Usage::

    PYTHONPATH=. nice -n 10 .venv/bin/python benchmarks/sync_diff_100m.py [--rows 100000000] [--root DIR]
        [--phases gen,scan,core,spool,diff,compact] [--keep]

Data: :mod:`_syncdata` (~5 % duplicate keys, last row wins; state 1 % changed, 0.1 % not confirmed). Nothing of
it is held in Python. Each phase runs in its own child process; the parent reports wall time, CPU (user +
system of that child, ``os.wait4``), its peak RSS and the most disk its work folder held (sampled every second):

* ``gen``: write ``input.parquet``, the state's base ``state/state.parquet`` and ``user.parquet``;
* ``scan``: read the input once, ``SELECT count(*), sum(hash(r, k, s, st, ch, lb, ex))``, with the provider's
  DuckDB connection (``sync.duck.connect``): the unit of the ratios;
* ``core``: the provider's diff SQL (``sync.diff.verdicts_sql(..., aggregate=True)`` and the state relation of
  ``sync.duck``) with the input read from ``input.parquet``: what the diff costs in DuckDB alone, were the
  spool columnar;
* ``spool``: the input as the validation pass leaves it (the batch run's ``Spool`` format: pickled blocks of
  flat values), in a named file (not a diff figure: validation's side, without validating);
* ``diff``: **the provider's path**: ``SyncRun(state, dry_run=True).prepare(spool)`` (copy of the base into
  the run's work folder, export of the spool as JSON lines, DuckDB de-duplication + left join, verdicts), then
  the send pass's read of the rows left (``SyncedSpool.records()``), timed apart;
* ``provider``: **the provider's path with a Parquet input** (the vectorised validation pass, its Parquet
  spool read by the diff as it is, the rows with a verdict read back), a dry run: validation, diff and read-back
  timed apart, on ``user.parquet``: the input with the API's column names, written by ``gen``;
* ``compact``: the end of a run that confirmed 1 % of the keys: a journal of N / 100 entries merged into the
  base by ``SyncState.compact`` (a new ``state.parquet``, in a copy of the state folder whose base is a hard
  link, so the phases after it see the generated state).

DuckDB settings (``sync.duck.connect``): ``memory_limit=1500MB``, ``threads=2``, ``preserve_insertion_order=false``,
``temp_directory`` inside the run's work folder.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import pickle
import resource
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _syncdata import INPUT_COLUMNS, generate

PHASES = ("gen", "scan", "core", "spool", "diff", "provider", "compact")
_BLOCK_ROWS = 4096


class Timed:
    """Wall and CPU seconds (this process, DuckDB's threads included) of the measured part of a phase."""

    def __enter__(self) -> Timed:
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall, self.cpu = time.perf_counter() - self.wall, time.process_time() - self.cpu

    def figures(self) -> dict[str, float]:
        """``t`` wall seconds, ``c`` CPU seconds."""
        return {"t": round(self.wall, 2), "c": round(self.cpu, 2)}


def _q(path: Any) -> str:
    return "'" + str(path).replace("'", "''") + "'"


def _du(path: Path) -> int:
    total = 0
    for dirpath, _, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):  # a spill file deleted meanwhile
                total += os.stat(os.path.join(dirpath, name)).st_size
    return total


class DiskSampler:
    """The most bytes ``folders`` held at once, sampled every second in a thread."""

    def __init__(self, *folders: Path) -> None:
        self.folders = folders
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(1.0):
            self.peak = max(self.peak, sum(_du(f) for f in self.folders))

    def stop(self) -> int:
        """Stop sampling; return the peak in bytes."""
        self._stop.set()
        self._thread.join()
        return self.peak


# --- phases (children) ---------------------------------------------------------------------------------------


def phase_gen(root: Path, rows: int) -> dict[str, Any]:
    from airflow_provider_hubcomm.sync.duck import connect

    (root / "state").mkdir(parents=True, exist_ok=True)
    con = connect(root / "work-gen")
    con.execute("SET preserve_insertion_order=true")  # the input in row order, as a spool is
    generate(con, rows, root / "input.parquet", root / "state" / "state.parquet")
    # The input as a user gives it (the API's column names, in row order), for the provider phase.
    con.execute(
        f"""COPY (SELECT k AS subscriberIdString, s AS subscriptionId, st AS statusState, ch AS channel,
                         lb AS legalBasis, ex AS legalBasisExplanation
                  FROM read_parquet({_q(root / "input.parquet")}) ORDER BY r) TO {_q(root / "user.parquet")}
            (FORMAT parquet)"""
    )
    con.close()
    return {
        "input_mb": (root / "input.parquet").stat().st_size / 1e6,
        "state_mb": (root / "state" / "state.parquet").stat().st_size / 1e6,
    }


def phase_scan(root: Path, rows: int) -> dict[str, Any]:
    from airflow_provider_hubcomm.sync.duck import connect

    con = connect(root / "work-scan")
    with Timed() as timed:
        n, _ = con.execute(
            f"SELECT count(*), sum(hash({INPUT_COLUMNS})) FROM read_parquet({_q(root / 'input.parquet')})"
        ).fetchone()
    con.close()
    return {"rows": int(n), **timed.figures()}


def phase_core(root: Path, rows: int) -> dict[str, Any]:
    from airflow_provider_hubcomm.sync.diff import verdicts_sql
    from airflow_provider_hubcomm.sync.duck import connect

    work = root / "work-core"
    sampler = DiskSampler(work)
    con = connect(work)
    out = work / "verdicts.csv"
    query = verdicts_sql(
        f"SELECT {INPUT_COLUMNS} FROM read_parquet({_q(root / 'input.parquet')})",
        str(root / "state" / "state.parquet"),
        [],
        aggregate=True,  # the input is Parquet: cheap to read twice
    )
    with Timed() as timed:
        con.execute(f"COPY ({query}) TO {_q(out)} (FORMAT csv, HEADER false)")
    send, superseded = con.execute(
        f"SELECT count(*) FILTER (WHERE v = 's'), count(*) FILTER (WHERE v = 'd') FROM read_csv({_q(out)}, "
        "header=false, auto_detect=false, columns={'r': 'BIGINT', 'v': 'VARCHAR'})"
    ).fetchone()
    con.close()
    return {"send": int(send), "superseded": int(superseded), "disk_mb": sampler.stop() / 1e6, **timed.figures()}


def phase_spool(root: Path, rows: int) -> dict[str, Any]:
    import duckdb

    con = duckdb.connect(":memory:")
    con.execute("SET threads=2")
    con.execute("SET memory_limit='500MB'")
    cur = con.execute(f"SELECT {INPUT_COLUMNS} FROM read_parquet({_q(root / 'input.parquet')})")
    written = 0
    with (root / "spool.pickle").open("wb") as fh:
        while chunk := cur.fetchmany(_BLOCK_ROWS):
            block = [value for row in chunk for value in row]
            pickle.dump(block, fh, protocol=pickle.HIGHEST_PROTOCOL)
            written += len(chunk)
    con.close()
    return {"rows": written, "spool_mb": (root / "spool.pickle").stat().st_size / 1e6}


def _spool(root: Path, rows: int) -> Any:
    """The batch run's ``Spool`` over the named file of the ``spool`` phase (its duplicate index empty)."""
    from airflow_provider_hubcomm.batch.spool import Spool

    spool = Spool.__new__(Spool)
    spool._fh = (root / "spool.pickle").open("rb")
    spool.last = {}
    spool.rows = rows
    return spool


def phase_diff(root: Path, rows: int) -> dict[str, Any]:
    import logging

    from airflow_provider_hubcomm.sync.run import SyncRun

    logging.basicConfig(level=logging.INFO, format="  diff log: %(message)s", stream=sys.stderr)
    spool = _spool(root, rows)
    run = SyncRun(str(root / "state"), dry_run=True)
    engine_log = logging.getLogger("airflow_provider_hubcomm.batch.engine")  # the diff's export / DuckDB split
    engine_log.disabled = False
    engine_log.setLevel(logging.INFO)
    engine_log.addHandler(logging.StreamHandler(sys.stderr))
    sampler = DiskSampler(run.workdir)
    with Timed() as timed:
        synced = run.prepare(spool)
    send = superseded = 0
    with Timed() as stream:
        for _, _, dup in synced.records():
            superseded += dup
            send += not dup
    disk = sampler.stop()
    run.close()
    spool.close()
    return {
        **timed.figures(),
        "stream_t": round(stream.wall, 2),
        "stream_c": round(stream.cpu, 2),
        "send": send,
        "superseded": superseded,
        "kept": run.kept,
        "unchanged": run.unchanged,
        "disk_mb": disk / 1e6,
    }


def phase_provider(root: Path, rows: int) -> dict[str, Any]:
    """The provider's whole path on a Parquet input as a user gives it, a dry run against the N-key state.

    ``user.parquet`` (the input with the API's column names, in row order) is validated by the vectorised pass
    (``batch.columnar.validate_parquet``: a Parquet spool, no Python per row), the diff reads that spool as it
    is (``SyncRun.prepare``), and the rows with a verdict are read back as the send pass would read them.
    """
    import logging

    from airflow_provider_hubcomm.batch.columnar import validate_parquet
    from airflow_provider_hubcomm.batch.parquet import parquet_batches
    from airflow_provider_hubcomm.batch.rows import RowValidator
    from airflow_provider_hubcomm.sync.run import SyncRun

    user = root / "user.parquet"  # written by the gen phase: this process's peak RSS is the provider's
    logging.basicConfig(level=logging.INFO, format="  provider log: %(message)s", stream=sys.stderr)
    run = SyncRun(str(root / "state"), dry_run=True)
    spool_dir = run.workdir / "spool"
    spool_dir.mkdir()
    sampler = DiskSampler(run.workdir)
    batches = parquet_batches(user)
    assert batches is not None

    def peak_mb() -> float:
        return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)

    peaks = {"rss_before_mb": peak_mb()}
    with Timed() as validation:
        checked = validate_parquet(batches, RowValidator(), stop_at_invalid=True, spool_dir=str(spool_dir))
    peaks["rss_after_validate_mb"] = peak_mb()
    spool = checked.spool
    assert spool is not None
    with Timed() as timed:
        synced = run.prepare(spool)
    peaks["rss_after_diff_mb"] = peak_mb()
    send = superseded = 0
    with Timed() as stream:
        for _, _, dup in synced.records():
            superseded += dup
            send += not dup
    peaks["rss_after_stream_mb"] = peak_mb()
    disk = sampler.stop()
    spool.close()
    run.close()
    return {
        "validate_t": round(validation.wall, 2),
        "validate_c": round(validation.cpu, 2),
        **timed.figures(),
        "stream_t": round(stream.wall, 2),
        "stream_c": round(stream.cpu, 2),
        "valid": checked.valid,
        "send": send,
        "superseded": superseded,
        "kept": run.kept,
        "unchanged": run.unchanged,
        "disk_mb": disk / 1e6,
        **peaks,
    }


def phase_compact(root: Path, rows: int) -> dict[str, Any]:
    import tempfile

    from airflow_provider_hubcomm.sync.duck import connect
    from airflow_provider_hubcomm.sync.state import SyncState

    folder = root / "state-compact"  # the base hard-linked: the compaction replaces it here, not in state/
    shutil.rmtree(folder, ignore_errors=True)
    journal = folder / "journal"
    journal.mkdir(parents=True)
    os.link(root / "state" / "state.parquet", folder / "state.parquet")
    setup = connect(root / "work-journal")
    segment = journal / "00000000000000000001-1-000000.jsonl"
    setup.execute(
        f"""COPY (SELECT range AS n, 'user' || (kid // 2) || '@example.com' AS k, 101 + kid % 2 AS s,
                         'SUBSCRIBED' AS st, 'EMAIL' AS ch, NULL::VARCHAR AS lb, NULL::VARCHAR AS ex, true AS ok,
                         '2026-12-02T00:00:00+00:00' AS ts
                  FROM (SELECT range, range * 100 AS kid FROM range({rows // 100})))
            TO {_q(segment)} (FORMAT json)"""
    )
    setup.close()
    work = Path(tempfile.mkdtemp(prefix="hubcomm-compact-", dir=root))
    sampler = DiskSampler(work)
    state = SyncState(str(folder), str(work))  # imports airflow.sdk: outside the measured part
    with Timed() as timed:
        kept = state.compact(resync=False, memory_limit="1500MB")
    disk = sampler.stop()
    shutil.rmtree(work)
    shutil.rmtree(folder)
    return {"keys": kept, "disk_mb": disk / 1e6, **timed.figures()}


# --- parent --------------------------------------------------------------------------------------------------


def _child(phase: str, root: Path, rows: int) -> dict[str, Any]:
    cmd = [sys.executable, os.path.abspath(__file__), "--phase-child", phase, "--root", str(root), "--rows", str(rows)]
    started = time.perf_counter()
    load = os.getloadavg()[0]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE)
    assert proc.stdout is not None
    output = proc.stdout.read()
    proc.stdout.close()
    _, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status):
        raise SystemExit(f"phase {phase} failed")
    result = json.loads(output.decode().strip().splitlines()[-1])
    result.update(
        wall=time.perf_counter() - started,
        cpu=usage.ru_utime + usage.ru_stime,
        rss_mb=usage.ru_maxrss / 1024,
        load=(load + os.getloadavg()[0]) / 2,
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000_000)
    parser.add_argument("--root", default="/tmp/hubcomm-sync-100m")
    parser.add_argument("--phases", default=",".join(PHASES))
    parser.add_argument("--keep", action="store_true", help="keep the generated data")
    parser.add_argument("--phase-child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    root = Path(args.root)
    if args.phase_child:
        print(json.dumps(globals()[f"phase_{args.phase_child}"](root, args.rows)))
        return
    root.mkdir(parents=True, exist_ok=True)
    print(f"{args.rows:,} rows; {os.cpu_count()} CPUs; load {os.getloadavg()[0]:.1f}; root {root}", flush=True)
    results: dict[str, dict[str, Any]] = {}
    try:
        for phase in args.phases.split(","):
            res = results[phase] = _child(phase, root, args.rows)
            extra = {k: v for k, v in res.items() if k not in ("wall", "cpu", "rss_mb", "load")}
            print(
                f"{phase:8s} wall {res['wall']:8.1f} s  CPU {res['cpu']:8.1f} s  peak RSS {res['rss_mb']:6.0f} MB  "
                f"load {res['load']:.1f}  {json.dumps(extra)}",
                flush=True,
            )
        if "scan" in results:
            scan = results["scan"]
            for phase in ("core", "diff", "compact"):
                if phase in results:
                    res = results[phase]
                    print(
                        f"{phase}: {res['t']:.1f} s wall, {res['c']:.1f} s CPU = {res['t'] / scan['t']:.1f}x the wall "
                        f"and {res['c'] / scan['c']:.1f}x the CPU of one scan of the input ({scan['t']:.1f} s, "
                        f"{scan['c']:.1f} s CPU)"
                    )
        if "core" in results and "diff" in results:
            same = all(results["core"][k] == results["diff"][k] for k in ("send", "superseded"))
            print(f"core and diff verdicts {'agree' if same else 'DISAGREE'}")
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
