"""The diff of a sync run: exact last-wins de-duplication of the input and its comparison with the state, in DuckDB.

Why DuckDB: the input and the state may each hold 100M rows, with a memory budget of about 2 GB. DuckDB runs
in process, sorts and joins out of core (it spills to ``temp_directory``, here inside the run's private work
folder) and reads Parquet and JSON lines itself; a scratch measurement (2M input rows against a 2M-row state,
2 cores under load) took 8.9 s and 995 MB against Polars streaming's 20.0 s and 1,380 MB, same rows out. It is
imported only when a run has a ``state_path`` (never when a DAG file is parsed).

How (:func:`diff`): the spool's valid rows are exported as JSON lines (row number, key, fields; a Parquet
spool, :class:`~airflow_provider_hubcomm.batch.parquet.ParquetSpool`, is read as it is), DuckDB keeps
the last row per key (exact: full keys compared, no hash), left-joins it to the state's last entry per key and
writes a verdict for every row that is **not** unchanged, ordered by row number: ``s`` (send: new, changed, or
failed or not confirmed last time) or ``d`` (a superseded duplicate). A row without a verdict is unchanged (the
state holds the same state, channel, legal basis and explanation, confirmed by HubSpot): on a daily run with
few changes the verdicts, and the sort that orders them, are small. :class:`SyncedSpool` then streams the
spool and the verdicts side by side (both in row order): ``d`` rows are superseded duplicates; rows without a
verdict are left out of the run (counted once as skipped ``unchanged`` by the engine); ``s`` rows go on to the
preflight, the guard and the send pass. ``r`` marks a row the re-subscribe guard refused last time (the state
holds it with ``ok`` NULL) whose values have not changed: it is skipped again as ``resubscribe_not_allowed``
without the guard's reads (:meth:`SyncedSpool.refused`); ``full_resync`` checks such rows again.
"""

from __future__ import annotations

import csv
import logging
import os
import time
from json.encoder import encode_basestring_ascii as _esc
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Generic, NamedTuple, Protocol, TypeVar, runtime_checkable

from airflow_provider_hubcomm.sync.duck import MEMORY_LIMIT, connect, q, state_relation
from airflow_provider_hubcomm.sync.state import StatusFields

if TYPE_CHECKING:
    from collections.abc import Iterator

R = TypeVar("R", bound=StatusFields)
R_co = TypeVar("R_co", bound=StatusFields, covariant=True)


class RowSource(Protocol[R_co]):
    """The validated rows of a run, in input order (the batch run's spool is one)."""

    rows: int

    def records(self) -> Iterator[tuple[int, R_co, bool]]:
        """Yield ``(row_number, row, superseded)``."""
        ...

    def close(self) -> None:
        """Release the rows' storage."""
        ...


@runtime_checkable
class ColumnarSource(Protocol):
    """Validated rows DuckDB can read as they are (the Parquet spool of a Parquet input)."""

    rows: int

    def rows_sql(self) -> str:
        """Return SQL of the rows: columns ``r k sb s st ch lb ex`` (``k`` the key, ``sb`` as given)."""
        ...

    def filtered(self, verdicts: Path) -> Any:
        """Return the rows that have a verdict (what the run may send), readable like the spool."""
        ...


__all__ = [
    "EXPORT_COLUMNS",
    "MEMORY_LIMIT",
    "ColumnarSource",
    "DiffResult",
    "RowSource",
    "SyncedSpool",
    "diff",
    "verdicts_sql",
]

log = logging.getLogger("airflow_provider_hubcomm.batch.engine")

#: Lines per write of the input export.
_EXPORT_BLOCK: Final = 8192


class DiffResult(NamedTuple):
    """What the diff found."""

    #: local CSV of ``row,verdict`` ordered by row, for the rows that are not unchanged (``s`` send,
    #: ``d`` superseded duplicate).
    verdicts: Path
    #: distinct keys of the input (rows kept after de-duplication).
    kept: int
    #: kept rows the state holds unchanged and confirmed.
    unchanged: int
    #: SQL of the input rows (columns ``r k sb s st ch lb ex``), kept for the sync log; ``None``: not kept.
    rows: str | None = None
    #: kept rows the re-subscribe guard refused last time, with the same values (verdict ``r``): not sent.
    refused: int = 0


def _export(spool: RowSource[StatusFields], path: Path) -> int:
    """Write the spool's rows as JSON lines (``r`` row number, ``k`` key, ``s`` id, the compared fields).

    ``sb``, the subscriber as given, is written only when it differs from the key (the sync log shows it).

    :return: the rows written.
    """
    lines: list[str] = []
    append = lines.append
    written = 0
    with path.open("w", encoding="utf-8") as fh:
        for row, (sub, sid, state, channel, basis, expl), _ in spool.records():
            key = sub.lower()
            given = "" if key == sub else f',"sb":{_esc(sub)}'
            append(
                f'{{"r":{row:d},"k":{_esc(key)}{given},"s":{sid:d},"st":"{state}","ch":"{channel}","lb":'
                f'{"null" if basis is None else _esc(basis)},"ex":{"null" if expl is None else _esc(expl)}}}\n'
            )
            if len(lines) == _EXPORT_BLOCK:
                fh.write("".join(lines))
                written += len(lines)
                lines.clear()
        fh.write("".join(lines))
    return written + len(lines)


#: DuckDB's columns of the input export (``sb``: the subscriber as given, when it is not the key).
EXPORT_COLUMNS: Final = (
    "{r: 'BIGINT', k: 'VARCHAR', sb: 'VARCHAR', s: 'BIGINT', st: 'VARCHAR', ch: 'VARCHAR', lb: 'VARCHAR', "
    "ex: 'VARCHAR'}"
)


#: Rows per key bucket of the diff (:func:`diff`): a 100M-row input or state is diffed in 4 passes, each join
#: holding a quarter of the keys, so DuckDB's hash tables fit far below its memory limit (see
#: ``benchmarks/RESULTS.md``); each pass reads the input and the state again (Parquet scans, cheap next to the join).
BUCKET_ROWS: Final = int(os.environ.get("HUBCOMM_SYNC_BUCKET_ROWS", "25000000"))
_CSV: Final = "(FORMAT csv, HEADER false)"


def _read_verdicts(files: str) -> str:
    """Return SQL reading verdicts files (``r,v`` lines, no header).

    :param files: a quoted path, or a list of them in SQL.
    """
    return f"read_csv({files}, header=false, auto_detect=false, columns={{'r': 'BIGINT', 'v': 'VARCHAR'}})"


def verdicts_sql(
    rows: str, base: str | None, segments: list[str], *, aggregate: bool = False, bucket: tuple[int, int] = (0, 1)
) -> str:
    """Return SQL for ``(r, v)``, ordered by ``r``: the verdict of each input row that is not unchanged.

    :param rows: SQL of the input relation, columns ``r k s st ch lb ex`` (row number, lower-cased key, ...).
    :param base: the local base snapshot, if any.
    :param segments: the local journal segments, oldest first.
    :param aggregate: find the last row per key by a hash aggregate (``max(r)`` per key) and a join on the row
        number (unique) instead of a ``row_number()`` window. It reads ``rows`` twice: cheaper when they are
        cheap to read (Parquet, 10M x 10M: 31 s CPU against 52 s), dearer when they are JSON lines, as the
        spool's export is (2M x 2M: 7.5 s against 5.5 s); see ``benchmarks/RESULTS.md``.
    :param bucket: ``(i, n)``: only the keys whose hash is ``i`` modulo ``n`` (every row of a key, in the input
        and in the state, falls in the same bucket, so the buckets' verdicts together are the whole diff's).
    """
    i, n = bucket
    within = "" if n == 1 else f" WHERE hash(k) % {n:d} = {i:d}"
    if aggregate:
        last = (
            f"src AS NOT MATERIALIZED (SELECT * FROM ({rows}){within}), "
            "last AS (SELECT max(r) AS r FROM src GROUP BY k, s), "
            "inp AS (SELECT i.*, m.r IS NULL AS dup FROM src i LEFT JOIN last m ON m.r = i.r)"
        )
    else:
        last = (
            "inp AS (SELECT *, row_number() OVER (PARTITION BY k, s ORDER BY r DESC) > 1 AS dup "
            f"FROM (SELECT * FROM ({rows}){within}))"
        )
    return f"""
        WITH {last},
        state AS (SELECT * FROM ({state_relation(base, segments)}){within})
        SELECT l.r, CASE WHEN l.dup THEN 'd' WHEN t.ok IS NULL AND t.k IS NOT NULL THEN 'r' ELSE 's' END AS v
        FROM inp l LEFT JOIN state t ON NOT l.dup AND t.k = l.k AND t.s = l.s
                                     AND (t.ok IS NOT NULL OR (t.st = l.st AND t.ch IS NOT DISTINCT FROM l.ch
                                          AND t.lb IS NOT DISTINCT FROM l.lb AND t.ex IS NOT DISTINCT FROM l.ex))
        WHERE l.dup OR NOT coalesce(t.ok AND t.st = l.st AND t.ch IS NOT DISTINCT FROM l.ch
                                    AND t.lb IS NOT DISTINCT FROM l.lb AND t.ex IS NOT DISTINCT FROM l.ex, false)
        ORDER BY l.r
    """


def diff(
    spool: RowSource[StatusFields],
    base: str | None,
    segments: list[str],
    workdir: Path,
    memory_limit: str = MEMORY_LIMIT,
    *,
    keep_rows: bool = False,
    bucket_rows: int = BUCKET_ROWS,
) -> DiffResult:
    """De-duplicate the spool exactly (last row per key wins) and compare it with the state.

    :param spool: the validated rows.
    :param base: the local base snapshot, if any.
    :param segments: the local journal segments, oldest first.
    :param workdir: the run's private work folder.
    :param memory_limit: DuckDB's memory limit.
    :param keep_rows: keep the export of the rows (``DiffResult.rows``) for the sync log.
    :param bucket_rows: past this many input or state rows, the diff runs in key buckets of about this size.
    """
    verdicts = workdir / "verdicts.csv"
    started = time.perf_counter()
    rows: Path | None = None
    if isinstance(spool, ColumnarSource):  # a Parquet spool: DuckDB reads it as it is
        source, exported, aggregate = spool.rows_sql(), spool.rows, True
    else:
        rows = workdir / "input.jsonl"
        exported, aggregate = _export(spool, rows), False
        source = f"SELECT * FROM read_json({q(rows)}, format='newline_delimited', columns={EXPORT_COLUMNS})"
    exported_at = time.perf_counter()
    con = connect(workdir, memory_limit)
    try:
        stored = con.execute(f"SELECT count(*) FROM read_parquet({q(base)})").fetchone() if base else None
        n = max(1, -(-max(exported, int(stored[0]) if stored else 0) // bucket_rows))
        if n == 1:
            con.execute(f"COPY ({verdicts_sql(source, base, segments, aggregate=aggregate)}) TO {q(verdicts)} {_CSV}")
        else:  # one key bucket at a time: each join holds 1/n of the keys; the small verdicts are sorted once
            parts = [workdir / f"verdicts-{i}.csv" for i in range(n)]
            for i, part in enumerate(parts):
                query = verdicts_sql(source, base, segments, aggregate=aggregate, bucket=(i, n))
                con.execute(f"COPY ({query}) TO {q(part)} {_CSV}")
            every = "[" + ", ".join(q(p) for p in parts) + "]"
            con.execute(f"COPY (SELECT * FROM {_read_verdicts(every)} ORDER BY r) TO {q(verdicts)} {_CSV}")
            for part in parts:
                part.unlink()
        send, superseded, refused = con.execute(
            "SELECT count(*) FILTER (WHERE v = 's'), count(*) FILTER (WHERE v = 'd'), count(*) FILTER (WHERE v = 'r') "
            f"FROM {_read_verdicts(q(verdicts))}"
        ).fetchone() or (0, 0, 0)
    finally:
        con.close()
    if not keep_rows and rows is not None:
        rows.unlink()
    kept = exported - int(superseded)
    unchanged = kept - int(send) - int(refused)
    log.info(
        "Sync state: %d distinct rows, %d unchanged since the last confirmed sync (export %.1f s, diff %.1f s).",
        kept,
        unchanged,
        exported_at - started,
        time.perf_counter() - exported_at,
    )
    return DiffResult(verdicts, kept, unchanged, source if keep_rows else None, int(refused))


class SyncedSpool(Generic[R]):
    """The spool seen through the diff: exact duplicates, and ``unchanged`` rows left out.

    Has the spool's :meth:`records` (what the preflight and the send pass read), so the engine passes it where
    it passed the spool.

    :param spool: the validated rows.
    :param verdicts: the diff's verdicts file.
    """

    def __init__(self, spool: RowSource[R], verdicts: Path) -> None:
        self.spool = spool
        self.verdicts = verdicts
        self.rows = spool.rows

    def records(self) -> Iterator[tuple[int, R, bool]]:
        """Yield ``(row_number, row, superseded)`` for the rows to send and the superseded ones, in input order."""
        with self.verdicts.open(newline="", encoding="utf-8") as fh:
            verdicts = csv.reader(fh)
            at, verdict = _next_verdict(verdicts)
            for row, write, _ in self.spool.records():
                if row == at:
                    if verdict != "r":
                        yield row, write, verdict == "d"
                    at, verdict = _next_verdict(verdicts)

    def refused(self) -> Iterator[tuple[int, R]]:
        """Yield ``(row_number, row)`` of the rows the guard refused last time, unchanged since (verdict ``r``)."""
        with self.verdicts.open(newline="", encoding="utf-8") as fh:
            verdicts = csv.reader(fh)
            at, verdict = _next_verdict(verdicts)
            for row, write, _ in self.spool.records():
                if row == at:
                    if verdict == "r":
                        yield row, write
                    at, verdict = _next_verdict(verdicts)

    def close(self) -> None:
        """Delete the spool's temporary file."""
        self.spool.close()


def _next_verdict(verdicts: Iterator[list[str]]) -> tuple[int, str]:
    """Return the next ``(row, verdict)`` of the verdicts file; ``(-1, "")`` after the last."""
    line = next(verdicts, None)
    return (-1, "") if line is None else (int(line[0]), line[1])
