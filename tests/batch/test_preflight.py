"""The preflight counts the same groups whether it reads the rows back or the Parquet spool counts them in DuckDB."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from airflow_provider_hubcomm.batch.columnar import validate_parquet
from airflow_provider_hubcomm.batch.parquet import parquet_batches
from airflow_provider_hubcomm.batch.preflight import Preflight, check_spool
from airflow_provider_hubcomm.batch.rows import RowValidator, WriteRow
from airflow_provider_hubcomm.batch.spool import Records, validate_rows
from airflow_provider_hubcomm.hooks._catalog import Subscription, SubscriptionCatalog

STATES = ("SUBSCRIBED", "UNSUBSCRIBED", "NOT_SPECIFIED")
#: 101 and 102 active, 103 inactive, 104 unknown.
CATALOG = SubscriptionCatalog(
    [Subscription(101, "News", 0, True), Subscription(102, "Offers", 0, True), Subscription(103, "Old", 0, False)],
    [0],
)


def _rows(n: int) -> list[dict[str, Any]]:
    rows = []
    for i in range(n):
        who = i % 97  # keys repeat: duplicates, given in another letter case every fifth time
        sub = f"Contact{who}@Example.com" if i % 5 == 0 else f"contact{who}@example.com"
        rows.append({"subscriberIdString": sub, "subscriptionId": 101 + i % 4, "statusState": STATES[i % 3]})
    return rows


def _asked(log: list[tuple[int, str]]) -> Any:
    def needs_read(write: WriteRow) -> bool:
        log.append((write.subscription_id, write.state))
        return write.state == "SUBSCRIBED"

    return needs_read


def _check(spool: Records) -> tuple[Preflight, list[tuple[int, str]]]:
    log: list[tuple[int, str]] = []
    return check_spool(spool, CATALOG, _asked(log)), log


@pytest.mark.parametrize("n", [0, 1, 500])
def test_parquet_spool_groups_match_the_row_scan(tmp_path: Path, n: int) -> None:
    rows = _rows(n)
    path = tmp_path / "in.parquet"
    fields = [("subscriberIdString", pa.string()), ("subscriptionId", pa.int64()), ("statusState", pa.string())]
    schema = pa.schema(fields)
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), path)
    by_rows = validate_rows(enumerate(rows, 1), RowValidator(), stop_at_invalid=True)
    by_columns = validate_parquet(parquet_batches(str(path)), RowValidator(), stop_at_invalid=True)
    assert by_rows.spool is not None
    assert by_columns.spool is not None
    assert hasattr(by_columns.spool, "groups")
    assert not hasattr(by_rows.spool, "groups")
    expected, asked = _check(by_rows.spool)
    got, asked_columns = _check(by_columns.spool)
    assert got == expected
    assert asked_columns == asked  # needs_read asked once per (subscription, state), first rows first
    assert got.sendable + got.refused == len({(r["subscriberIdString"].lower(), r["subscriptionId"]) for r in rows})
    if n > 100:
        assert set(got.problems) == {103, 104}
        assert got.refused > 0
        assert 0 < got.to_read < got.sendable
    by_rows.spool.close()
    by_columns.spool.close()


def test_verdicted_rows_are_grouped_without_duplicates_or_refusals(tmp_path: Path) -> None:
    rows = _rows(60)
    path = tmp_path / "in.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path)
    checked = validate_parquet(parquet_batches(str(path)), RowValidator(), stop_at_invalid=True)
    assert checked.spool is not None
    # Row 1 superseded, rows 2-10 to send, row 11 refused last time; the rest unchanged (no verdict).
    verdicts = tmp_path / "verdicts.csv"
    verdicts.write_text("1,d\n" + "".join(f"{r},s\n" for r in range(2, 11)) + "11,r\n")
    view = checked.spool.filtered(verdicts)  # type: ignore[attr-defined]
    got, _ = _check(view)
    expected = Preflight()
    counts: dict[tuple[int, str], int] = {}
    for r in range(2, 11):
        row = rows[r - 1]
        pair = (row["subscriptionId"], row["statusState"])
        counts[pair] = counts.get(pair, 0) + 1
    for (sid, state), count in counts.items():
        if sid in (103, 104):
            expected.refused += count
        else:
            expected.sendable += count
            expected.to_read += count if state == "SUBSCRIBED" else 0
    assert (got.sendable, got.refused, got.to_read) == (expected.sendable, expected.refused, expected.to_read)
    assert got.sendable + got.refused == 9
    view.close()
