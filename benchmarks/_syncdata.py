"""Generated data of the sync benchmarks (``sync_engines.py``, ``sync_diff_100m.py``), written by DuckDB.

Nothing is held in Python: DuckDB writes ``range(N)`` straight to Parquet, so 100M rows cost disk, not memory.

**Input** (``input.parquet``, N rows, columns ``r k s st ch lb ex``: row number, key (subscriber, already
lower-cased as the provider's export writes it), subscription id, state, channel, legal basis, explanation).
Row ``r`` carries key id ``r``, except one row in 20 (``r % 20 = 19``), which repeats the key of an earlier row
(up to ~100,000 rows back): ~5 % duplicate keys, ~0.95 N distinct keys. Half of the repeats change the state to
``SUBSCRIBED``, so keeping the wrong row of a duplicate changes the result: the **last** row must win. One key id
in three carries a legal basis and an explanation (the others ``NULL``: the comparison must treat ``NULL`` as a
value).

**State** (``state.parquet``, N rows, one per key id ``0 .. N-1``, columns ``k s st ch lb ex ok ts``, the
provider's base snapshot layout): what the input's first row of each key says, except the state of one key id
in 100 (1 % changed) and ``ok = false`` for one key id in 1,000 (not confirmed last time: sent again). 5 % of the
state's keys are not in the input.
"""

from __future__ import annotations

from typing import Any

__all__ = ["INPUT_COLUMNS", "generate"]

INPUT_COLUMNS = "r, k, s, st, ch, lb, ex"

_KID = (
    "CASE WHEN r % 20 = 19 THEN greatest(r - 1 - (r * 7919) % 100003, 0) "
    "- (greatest(r - 1 - (r * 7919) % 100003, 0) % 20 = 19)::BIGINT ELSE r END"
)


def _q(path: Any) -> str:
    return "'" + str(path).replace("'", "''") + "'"


def generate(con: Any, rows: int, input_path: Any, state_path: Any) -> None:
    """Write ``rows`` input rows and a ``rows``-key state as Parquet.

    :param con: a DuckDB connection.
    :param rows: N.
    :param input_path: where the input goes.
    :param state_path: where the state goes.
    """
    con.execute(
        f"""COPY (
            SELECT r, 'user' || (kid // 2) || '@example.com' AS k, 101 + kid % 2 AS s,
                   CASE WHEN r % 40 = 19 THEN 'SUBSCRIBED' ELSE 'UNSUBSCRIBED' END AS st, 'EMAIL' AS ch,
                   CASE WHEN kid % 3 = 0 THEN 'LEGITIMATE_INTEREST_CLIENT' END AS lb,
                   CASE WHEN kid % 3 = 0 THEN 'Customer since ' || (2000 + kid % 25) END AS ex
            FROM (SELECT range AS r, {_KID} AS kid FROM range({int(rows)}))
        ) TO {_q(input_path)} (FORMAT parquet)"""
    )
    con.execute(
        f"""COPY (
            SELECT 'user' || (kid // 2) || '@example.com' AS k, 101 + kid % 2 AS s,
                   CASE WHEN kid % 100 = 7 THEN 'SUBSCRIBED' ELSE 'UNSUBSCRIBED' END AS st, 'EMAIL' AS ch,
                   CASE WHEN kid % 3 = 0 THEN 'LEGITIMATE_INTEREST_CLIENT' END AS lb,
                   CASE WHEN kid % 3 = 0 THEN 'Customer since ' || (2000 + kid % 25) END AS ex,
                   kid % 1000 <> 3 AS ok, '2026-12-01T00:00:00+00:00' AS ts
            FROM (SELECT range AS kid FROM range({int(rows)}))
        ) TO {_q(state_path)} (FORMAT parquet)"""
    )
