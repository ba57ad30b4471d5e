"""The diff of a sync run: exact last-wins de-duplication of the input and its comparison with the state, in DuckDB.

Why DuckDB: the input and the state may each hold 100M rows, with a memory budget of about 2 GB. DuckDB runs
in process, sorts and joins out of core (it spills to ``temp_directory``, here inside the run's private work
folder) and reads Parquet and JSON lines itself; a scratch measurement (2M input rows against a 2M-row state,
2 cores under load) took 8.9 s and 995 MB against Polars streaming's 20.0 s and 1,380 MB, same rows out. It is
imported only when a run has a ``state_path`` (never when a DAG file is parsed).

How (:func:`diff`): the spool's valid rows are exported as JSON lines (row number, key, fields), DuckDB keeps
the last row per key (exact: full keys compared, no hash), left-joins it to the state's last entry per key and
writes one verdict per kept row, ordered by row number: ``u`` (unchanged: the state holds the same state,
channel, legal basis and explanation, confirmed by HubSpot) or ``s`` (send: new, changed, or failed or not
confirmed last time). :class:`SyncedSpool` then streams the spool and the verdicts side by side (both in row
order): a row without a verdict is a superseded duplicate; ``u`` rows are left out of the run (counted once as
skipped ``unchanged`` by the engine); ``s`` rows go on to the preflight, the guard and the send pass.
"""

from __future__ import annotations

import csv
import logging
from json.encoder import encode_basestring_ascii as _esc
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, NamedTuple

if TYPE_CHECKING:
    from collections.abc import Iterator

    import duckdb

    from airflow_provider_hubcomm.batch.rows import WriteRow
    from airflow_provider_hubcomm.batch.spool import Spool

__all__ = ["DiffResult", "SyncedSpool", "connect", "diff", "state_relation"]

log = logging.getLogger("airflow_provider_hubcomm.batch.engine")

#: DuckDB's memory limit for the diff and the compaction.
MEMORY_LIMIT: Final = "1500MB"

_COLUMNS: Final = (
    "{n: 'BIGINT', k: 'VARCHAR', s: 'BIGINT', st: 'VARCHAR', ch: 'VARCHAR', lb: 'VARCHAR', ex: 'VARCHAR', "
    "ok: 'BOOLEAN', ts: 'VARCHAR'}"
)
_FIELDS: Final = "k, s, st, ch, lb, ex, ok, ts"
#: Lines per write of the input export.
_EXPORT_BLOCK: Final = 8192


def _q(path: Any) -> str:
    return "'" + str(path).replace("'", "''") + "'"


def connect(workdir: Path, memory_limit: str = MEMORY_LIMIT) -> duckdb.DuckDBPyConnection:
    """Open an in-memory DuckDB that spills to ``workdir/duckdb-tmp`` within ``memory_limit``.

    :param workdir: the run's private work folder.
    :param memory_limit: e.g. ``"1500MB"``.
    """
    import duckdb

    tmp = workdir / "duckdb-tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(":memory:")
    con.execute(f"SET memory_limit={_q(memory_limit)}")
    con.execute(f"SET temp_directory={_q(tmp)}")
    con.execute("SET threads=2")
    con.execute("SET preserve_insertion_order=false")
    return con


def state_relation(base: str | None, segments: list[str]) -> str:
    """Return SQL for the state's last entry per key: base first, then segments by name, then line order.

    :param base: the local base snapshot (Parquet), if any.
    :param segments: the local journal segments (JSON lines), oldest first.
    """
    parts = []
    if base is not None:
        parts.append(f"SELECT {_FIELDS}, '' AS seg, 0 AS n FROM read_parquet({_q(base)})")
    if segments:
        files = "[" + ", ".join(_q(s) for s in segments) + "]"
        parts.append(
            f"SELECT {_FIELDS}, parse_filename(filename) AS seg, n FROM read_json({files}, "
            f"format='newline_delimited', columns={_COLUMNS}, filename=true)"
        )
    if not parts:
        return (
            "SELECT NULL::VARCHAR AS k, NULL::BIGINT AS s, NULL::VARCHAR AS st, NULL::VARCHAR AS ch, "
            "NULL::VARCHAR AS lb, NULL::VARCHAR AS ex, NULL::BOOLEAN AS ok, NULL::VARCHAR AS ts WHERE false"
        )
    union = " UNION ALL ".join(parts)
    return (
        f"SELECT {_FIELDS} FROM ({union}) QUALIFY row_number() OVER (PARTITION BY k, s ORDER BY seg DESC, n DESC) = 1"
    )


class DiffResult(NamedTuple):
    """What the diff found."""

    #: local CSV of ``row,verdict`` ordered by row (``u`` unchanged, ``s`` send).
    verdicts: Path
    #: distinct keys of the input (rows kept after de-duplication).
    kept: int
    #: kept rows the state holds unchanged and confirmed.
    unchanged: int


def _export(spool: Spool, path: Path) -> None:
    """Write the spool's rows as JSON lines: ``r`` row number, ``k`` key, ``s`` id and the compared fields."""
    lines: list[str] = []
    append = lines.append
    with path.open("w", encoding="utf-8") as fh:
        for row, (sub, sid, state, channel, basis, expl), _ in spool.records():
            append(
                f'{{"r":{row:d},"k":{_esc(sub.lower())},"s":{sid:d},"st":"{state}","ch":"{channel}","lb":'
                f'{"null" if basis is None else _esc(basis)},"ex":{"null" if expl is None else _esc(expl)}}}\n'
            )
            if len(lines) == _EXPORT_BLOCK:
                fh.write("".join(lines))
                lines.clear()
        fh.write("".join(lines))


def diff(
    spool: Spool, base: str | None, segments: list[str], workdir: Path, memory_limit: str = MEMORY_LIMIT
) -> DiffResult:
    """De-duplicate the spool exactly (last row per key wins) and compare it with the state.

    :param spool: the validated rows.
    :param base: the local base snapshot, if any.
    :param segments: the local journal segments, oldest first.
    :param workdir: the run's private work folder.
    :param memory_limit: DuckDB's memory limit.
    """
    rows = workdir / "input.jsonl"
    verdicts = workdir / "verdicts.csv"
    _export(spool, rows)
    columns = "{r: 'BIGINT', k: 'VARCHAR', s: 'BIGINT', st: 'VARCHAR', ch: 'VARCHAR', lb: 'VARCHAR', ex: 'VARCHAR'}"
    query = f"""
        WITH inp AS (SELECT * FROM read_json({_q(rows)}, format='newline_delimited', columns={columns})),
        last AS (SELECT * FROM inp QUALIFY row_number() OVER (PARTITION BY k, s ORDER BY r DESC) = 1),
        state AS ({state_relation(base, segments)})
        SELECT l.r, CASE WHEN t.ok AND t.st = l.st AND t.ch IS NOT DISTINCT FROM l.ch
                          AND t.lb IS NOT DISTINCT FROM l.lb AND t.ex IS NOT DISTINCT FROM l.ex
                         THEN 'u' ELSE 's' END AS v
        FROM last l LEFT JOIN state t ON t.k = l.k AND t.s = l.s
        ORDER BY l.r
    """
    con = connect(workdir, memory_limit)
    try:
        con.execute(f"COPY ({query}) TO {_q(verdicts)} (FORMAT csv, HEADER false)")
        kept, unchanged = con.execute(
            f"SELECT count(*), count(*) FILTER (WHERE v = 'u') FROM read_csv({_q(verdicts)}, "
            "header=false, columns={'r': 'BIGINT', 'v': 'VARCHAR'})"
        ).fetchone() or (0, 0)
    finally:
        con.close()
    rows.unlink()
    log.info("Sync state: %d distinct rows, %d unchanged since the last confirmed sync.", kept, unchanged)
    return DiffResult(verdicts, int(kept), int(unchanged))


class SyncedSpool:
    """The spool seen through the diff: exact duplicates, and ``unchanged`` rows left out.

    Has the spool's :meth:`records` (what the preflight and the send pass read), so the engine passes it where
    it passed the spool.

    :param spool: the validated rows.
    :param verdicts: the diff's verdicts file.
    """

    def __init__(self, spool: Spool, verdicts: Path) -> None:
        self.spool = spool
        self.verdicts = verdicts
        self.rows = spool.rows

    def records(self) -> Iterator[tuple[int, WriteRow, bool]]:
        """Yield ``(row_number, write_row, superseded)`` for every row but the unchanged ones, in input order."""
        with self.verdicts.open(newline="", encoding="utf-8") as fh:
            verdicts = csv.reader(fh)
            pending = next(verdicts, None)
            for row, write, _ in self.spool.records():
                if pending is not None and int(pending[0]) == row:
                    verdict = pending[1]
                    pending = next(verdicts, None)
                    if verdict == "s":
                        yield row, write, False
                else:
                    yield row, write, True

    def close(self) -> None:
        """Delete the spool's temporary file."""
        self.spool.close()
