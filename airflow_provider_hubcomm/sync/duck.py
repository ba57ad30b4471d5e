"""DuckDB for the sync package: the connection and the SQL of the state's last entry per key.

The connection keeps within a memory limit and spills inside the run's private folder. This module is imported
only when a run has a ``state_path``, and DuckDB itself only by :func:`connect`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    import duckdb

__all__ = ["MEMORY_LIMIT", "connect", "q", "state_relation"]

#: DuckDB's memory limit for the diff, the de-duplication and the compaction (``HUBCOMM_SYNC_MEMORY_LIMIT``
#: overrides it, e.g. ``"4GB"`` on a larger worker): with the run's Python side it keeps a 100M-row sync within
#: about 2 GB of resident memory (see ``benchmarks/RESULTS.md``).
MEMORY_LIMIT: Final = os.environ.get("HUBCOMM_SYNC_MEMORY_LIMIT", "1500MB")

_COLUMNS: Final = (
    "{n: 'BIGINT', k: 'VARCHAR', s: 'BIGINT', st: 'VARCHAR', ch: 'VARCHAR', lb: 'VARCHAR', ex: 'VARCHAR', "
    "ok: 'BOOLEAN', ts: 'VARCHAR'}"
)
_FIELDS: Final = "k, s, st, ch, lb, ex, ok, ts"


def q(path: Any) -> str:
    """Quote ``path`` as an SQL string literal.

    :param path: a path or string.
    """
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
    con.execute(f"SET memory_limit={q(memory_limit)}")
    con.execute(f"SET temp_directory={q(tmp)}")
    con.execute("SET threads=2")
    # Hand freed memory back at once instead of caching up to 512 MB of it: the process, not only DuckDB's
    # buffers, has to stay within the worker's budget (100M rows: 2,085 -> see benchmarks/RESULTS.md).
    con.execute("SET allocator_flush_threshold='32MB'")
    con.execute("SET allocator_bulk_deallocation_flush_threshold='32MB'")
    con.execute("SET preserve_insertion_order=false")
    return con


def state_relation(base: str | None, segments: list[str]) -> str:
    """Return SQL for the state's last entry per key: base first, then segments by name, then line order.

    The base holds one row per key (compaction writes it from this relation), so only the journal needs the
    last-entry window; base rows whose key the journal holds are dropped by an anti join. A state of 100M
    keys with a small journal is therefore read once, without sorting or partitioning it.

    :param base: the local base snapshot (Parquet), if any.
    :param segments: the local journal segments (JSON lines), oldest first.
    """
    if base is None and not segments:
        return (
            "SELECT NULL::VARCHAR AS k, NULL::BIGINT AS s, NULL::VARCHAR AS st, NULL::VARCHAR AS ch, "
            "NULL::VARCHAR AS lb, NULL::VARCHAR AS ex, NULL::BOOLEAN AS ok, NULL::VARCHAR AS ts WHERE false"
        )
    stored = f"SELECT {_FIELDS} FROM read_parquet({q(base)})" if base is not None else ""
    if not segments:
        return stored
    files = "[" + ", ".join(q(s) for s in segments) + "]"
    journal = (
        f"SELECT {_FIELDS} FROM read_json({files}, format='newline_delimited', columns={_COLUMNS}, filename=true) "
        "QUALIFY row_number() OVER (PARTITION BY k, s ORDER BY parse_filename(filename) DESC, n DESC) = 1"
    )
    if base is None:
        return journal
    return (
        f"WITH j AS MATERIALIZED ({journal}) SELECT * FROM j UNION ALL "
        f"SELECT b.* FROM ({stored}) b ANTI JOIN j ON j.k = b.k AND j.s = b.s"
    )
