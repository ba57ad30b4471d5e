"""Compare engines for the sync diff on the same generated data: exact last-wins de-duplication + left join + Parquet.

Usage::

    python benchmarks/sync_engines.py [--rows 2000000] [--runs 3] [--engines duckdb,duckdb-agg,polars,pyarrow,sqlite]

The task, for every engine: read ``input.parquet`` (N rows, ~5 % duplicate keys, the last row of a key wins),
keep the last row per key (exact: whole keys compared), left-join it to ``state.parquet`` (N keys, 1 % changed,
0.1 % not confirmed), keep the rows to send (no state, not confirmed, or state / channel / legal basis /
explanation differ, ``NULL`` equal to ``NULL``) and write them, all input columns, ordered by row number, to
Parquet. Data: :mod:`_syncdata` (written once by DuckDB, outside the measurement).

Engines (each is skipped when its library is not installed):

* ``duckdb``: the SQL of ``airflow_provider_hubcomm.sync`` (``QUALIFY row_number()`` window), with the
  provider's settings: ``memory_limit`` (``--memory-limit``), ``threads=2``, ``preserve_insertion_order=false``,
  ``temp_directory`` in the run's folder;
* ``duckdb-agg``: DuckDB, de-duplication by ``max(r)`` per key (hash aggregate) and a semi join instead of the
  window;
* ``polars``: Polars lazy frames run by the streaming engine (``sink_parquet``), ``max(r)`` per key + semi join;
* ``pyarrow``: pyarrow's in-memory tables and Acero (``group_by``, ``join``): no spilling, memory grows with N;
* ``sqlite``: SQLite (standard library) on disk, rows loaded through Python (SQLite cannot read Parquet),
  window function, output written with pyarrow.

Each engine runs in its own child process (``python sync_engines.py --child ENGINE ...``); the parent measures
wall time, CPU (user + system of that child, from ``os.wait4``) and the child's peak RSS (``ru_maxrss``), runs the
engines in turn ``--runs`` times (interleaved, so load changes hit them alike) and prints the medians. Every
output is checked: its row count and an order-independent checksum (DuckDB ``sum(hash(...))``) must equal the
``duckdb`` engine's, and its rows must be ordered by row number.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _syncdata import INPUT_COLUMNS, generate

ENGINES = ("duckdb", "duckdb-agg", "polars", "pyarrow", "sqlite")
_NEEDS = {"duckdb": "duckdb", "duckdb-agg": "duckdb", "polars": "polars", "pyarrow": "pyarrow", "sqlite": "pyarrow"}

_SAME = (
    "t.ok AND t.st = l.st AND t.ch IS NOT DISTINCT FROM l.ch AND t.lb IS NOT DISTINCT FROM l.lb "
    "AND t.ex IS NOT DISTINCT FROM l.ex"
)


def _q(path: Any) -> str:
    return "'" + str(path).replace("'", "''") + "'"


# --- the engines (run in the child) -------------------------------------------------------------------------


def _duckdb(inp: Path, state: Path, out: Path, work: Path, memory_limit: str, agg: bool) -> None:
    import duckdb

    con = duckdb.connect(":memory:")
    con.execute(f"SET memory_limit={_q(memory_limit)}")
    con.execute(f"SET temp_directory={_q(work / 'duckdb-tmp')}")
    con.execute("SET threads=2")
    con.execute("SET preserve_insertion_order=false")
    if agg:
        last = (
            f"SELECT i.* FROM read_parquet({_q(inp)}) i SEMI JOIN "
            f"(SELECT max(r) AS r FROM read_parquet({_q(inp)}) GROUP BY k, s) m ON i.r = m.r"
        )
    else:
        window = "row_number() OVER (PARTITION BY k, s ORDER BY r DESC)"
        last = f"SELECT * FROM read_parquet({_q(inp)}) QUALIFY {window} = 1"
    con.execute(
        f"""COPY (
            WITH last AS ({last})
            SELECT {", ".join("l." + c for c in INPUT_COLUMNS.split(", "))}
            FROM last l LEFT JOIN read_parquet({_q(state)}) t ON t.k = l.k AND t.s = l.s
            WHERE NOT coalesce({_SAME}, false)
            ORDER BY l.r
        ) TO {_q(out)} (FORMAT parquet)"""
    )
    con.close()


def _polars(inp: Path, state: Path, out: Path) -> None:
    import polars as pl

    rows = pl.scan_parquet(inp)
    last = rows.join(rows.group_by("k", "s").agg(pl.col("r").max()).select("r"), on="r", how="semi")
    joined = last.join(pl.scan_parquet(state), on=["k", "s"], how="left", suffix="_t")
    same = (
        pl.col("ok")
        & (pl.col("st_t") == pl.col("st"))
        & pl.col("ch_t").eq_missing(pl.col("ch"))
        & pl.col("lb_t").eq_missing(pl.col("lb"))
        & pl.col("ex_t").eq_missing(pl.col("ex"))
    ).fill_null(False)
    result = joined.filter(~same).select(INPUT_COLUMNS.split(", ")).sort("r")
    result.sink_parquet(out, engine="streaming")


def _pyarrow(inp: Path, state: Path, out: Path) -> None:
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    rows = pq.read_table(inp)
    last_r = rows.group_by(["k", "s"], use_threads=True).aggregate([("r", "max")])
    last = rows.join(last_r.select(["r_max"]).rename_columns(["r"]), keys="r", join_type="left semi")
    base = pq.read_table(state)
    base = base.rename_columns([c if c in ("k", "s") else c + "_t" for c in base.column_names])
    joined = last.join(base, keys=["k", "s"], join_type="left outer")

    def same_or_null(a: str, b: str) -> Any:
        x, y = joined[a], joined[b]
        return pc.or_(pc.fill_null(pc.equal(x, y), False), pc.and_(pc.is_null(x), pc.is_null(y)))

    same = pc.and_(
        pc.fill_null(pc.and_(joined["ok_t"], pc.equal(joined["st_t"], joined["st"])), False),
        pc.and_(same_or_null("ch_t", "ch"), pc.and_(same_or_null("lb_t", "lb"), same_or_null("ex_t", "ex"))),
    )
    result = joined.filter(pc.invert(same)).select(INPUT_COLUMNS.split(", ")).sort_by("r")
    pq.write_table(result, out)


def _sqlite(inp: Path, state: Path, out: Path, work: Path) -> None:
    import sqlite3

    import pyarrow as pa
    import pyarrow.parquet as pq

    con = sqlite3.connect(work / "sync.sqlite")
    con.executescript(
        "PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF; PRAGMA temp_store=FILE; PRAGMA cache_size=-262144;"
        "CREATE TABLE inp (r INTEGER, k TEXT, s INTEGER, st TEXT, ch TEXT, lb TEXT, ex TEXT);"
        "CREATE TABLE state (k TEXT, s INTEGER, st TEXT, ch TEXT, lb TEXT, ex TEXT, ok INTEGER, ts TEXT);"
    )
    for table, path, marks in (("inp", inp, 7), ("state", state, 8)):
        sql = f"INSERT INTO {table} VALUES ({', '.join('?' * marks)})"
        for batch in pq.ParquetFile(path).iter_batches(batch_size=65536):
            con.executemany(sql, zip(*(col.to_pylist() for col in batch.columns), strict=True))
    con.execute("CREATE UNIQUE INDEX state_key ON state (k, s)")
    cursor = con.execute(
        f"""WITH last AS (SELECT * FROM (SELECT *, row_number() OVER (PARTITION BY k, s ORDER BY r DESC) AS rn
                                         FROM inp) WHERE rn = 1)
            SELECT {", ".join("l." + c for c in INPUT_COLUMNS.split(", "))}
            FROM last l LEFT JOIN state t ON t.k = l.k AND t.s = l.s
            WHERE NOT coalesce(t.ok AND t.st = l.st AND t.ch IS l.ch AND t.lb IS l.lb AND t.ex IS l.ex, 0)
            ORDER BY l.r"""
    )
    schema = pa.schema(
        [("r", pa.int64()), ("k", pa.string()), ("s", pa.int64())]
        + [(c, pa.string()) for c in ("st", "ch", "lb", "ex")]
    )
    with pq.ParquetWriter(out, schema) as writer:
        while chunk := cursor.fetchmany(65536):
            writer.write_table(pa.Table.from_pylist([dict(zip(schema.names, t, strict=True)) for t in chunk], schema))
    con.close()


def child(engine: str, inp: Path, state: Path, out: Path, work: Path, memory_limit: str) -> None:
    """Run one engine and print one JSON line (its inner wall time, after imports)."""
    started = time.perf_counter()
    if engine in ("duckdb", "duckdb-agg"):
        _duckdb(inp, state, out, work, memory_limit, agg=engine == "duckdb-agg")
    elif engine == "polars":
        _polars(inp, state, out)
    elif engine == "pyarrow":
        _pyarrow(inp, state, out)
    elif engine == "sqlite":
        _sqlite(inp, state, out, work)
    else:
        raise SystemExit(f"unknown engine {engine!r}")
    print(json.dumps({"inner": time.perf_counter() - started}))


# --- the parent ----------------------------------------------------------------------------------------------


def _installed(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def _version(module: str) -> str:
    if module == "sqlite":
        import sqlite3

        return "SQLite " + sqlite3.sqlite_version
    import importlib.metadata

    return f"{module} {importlib.metadata.version(module)}"


def _run_child(engine: str, root: Path, memory_limit: str) -> dict[str, Any]:
    work = root / f"work-{engine}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    out = root / f"out-{engine}.parquet"
    out.unlink(missing_ok=True)
    cmd = [sys.executable, os.path.abspath(__file__), "--child", engine, "--root", str(root)]
    cmd += ["--memory-limit", memory_limit]
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, env={**os.environ, "POLARS_MAX_THREADS": "2"})
    assert proc.stdout is not None
    output = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    proc.stdout.close()
    if proc.returncode:
        raise SystemExit(f"{engine} failed (exit {proc.returncode})")
    disk = sum(f.stat().st_size for f in work.rglob("*") if f.is_file())
    shutil.rmtree(work, ignore_errors=True)
    inner = json.loads(output.decode().strip().splitlines()[-1])["inner"]
    return {
        "wall": wall,
        "inner": inner,
        "cpu": usage.ru_utime + usage.ru_stime,
        "rss_mb": usage.ru_maxrss / 1024,
        "work_mb_left": disk / 1e6,
    }


def _check(con: Any, out: Path) -> tuple[int, int, bool]:
    """Return rows, checksum and whether the rows are ordered by row number."""
    rows, checksum = con.execute(
        f"SELECT count(*), sum(hash({INPUT_COLUMNS}))::HUGEINT FROM read_parquet({_q(out)})"
    ).fetchone()
    unordered = con.execute(
        f"SELECT count(*) FROM (SELECT r, lag(r) OVER (ORDER BY file_row_number) AS p "
        f"FROM read_parquet({_q(out)}, file_row_number=true)) WHERE p >= r"
    ).fetchone()[0]
    return int(rows), int(checksum or 0), unordered == 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--engines", default=",".join(ENGINES))
    parser.add_argument("--memory-limit", default="1500MB", help="DuckDB's memory_limit (the provider's)")
    parser.add_argument("--root", help="work folder (default: a new temporary folder, removed at the end)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        root = Path(args.root)
        child(
            args.child,
            root / "input.parquet",
            root / "state.parquet",
            root / f"out-{args.child}.parquet",
            root / f"work-{args.child}",
            args.memory_limit,
        )
        return

    import duckdb

    wanted = [e for e in args.engines.split(",") if e]
    engines = [e for e in wanted if _installed(_NEEDS[e])]
    for skipped in sorted(set(wanted) - set(engines)):
        print(f"{skipped}: skipped ({_NEEDS[skipped]} is not installed)")
    root = Path(args.root) if args.root else Path(tempfile.mkdtemp(prefix="hubcomm-engines-"))
    root.mkdir(parents=True, exist_ok=True)
    print(
        f"{platform.python_version()}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}; "
        + ", ".join(_version(m) for m in dict.fromkeys("sqlite" if e == "sqlite" else _NEEDS[e] for e in engines))
    )
    try:
        con = duckdb.connect(":memory:")
        started = time.perf_counter()
        generate(con, args.rows, root / "input.parquet", root / "state.parquet")
        size = {n: (root / f"{n}.parquet").stat().st_size / 1e6 for n in ("input", "state")}
        print(
            f"data: {args.rows:,} input rows ({size['input']:.0f} MB), {args.rows:,} state rows "
            f"({size['state']:.0f} MB), generated in {time.perf_counter() - started:.1f} s"
        )
        results: dict[str, list[dict[str, Any]]] = {e: [] for e in engines}
        checks: dict[str, tuple[int, int, bool]] = {}
        for run in range(args.runs):
            for engine in engines:
                res = _run_child(engine, root, args.memory_limit)
                results[engine].append(res)
                checks[engine] = _check(con, root / f"out-{engine}.parquet")
                print(
                    f"run {run + 1} {engine:10s} wall {res['wall']:6.1f} s (inner {res['inner']:6.1f}) "
                    f"CPU {res['cpu']:6.1f} s  peak RSS {res['rss_mb']:6.0f} MB  rows out {checks[engine][0]:,}  "
                    f"load {os.getloadavg()[0]:.1f}",
                    flush=True,
                )
        reference = checks.get("duckdb") or next(iter(checks.values()))
        print(f"\nmedians of {args.runs} runs, {args.rows:,} x {args.rows:,} rows:")
        print("| engine | wall s | CPU s | peak RSS MB | rows out | same rows as duckdb | ordered |")
        print("|---|---|---|---|---|---|---|")
        for engine in engines:
            med = {k: statistics.median(r[k] for r in results[engine]) for k in ("wall", "cpu", "rss_mb")}
            rows, checksum, ordered = checks[engine]
            same = (rows, checksum) == reference[:2]
            print(
                f"| {engine} | {med['wall']:.1f} | {med['cpu']:.1f} | {med['rss_mb']:,.0f} | {rows:,} | "
                f"{'yes' if same else 'NO'} | {'yes' if ordered else 'NO'} |"
            )
        if any((checks[e][:2] != reference[:2]) or not checks[e][2] for e in engines):
            raise SystemExit("engines disagree")
    finally:
        if not args.root:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
