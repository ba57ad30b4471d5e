"""Reading a Parquet spool back into rows: every field as written, nulls included, enums read as dictionaries."""

from __future__ import annotations

from pathlib import Path

import pytest

from airflow_provider_hubcomm.batch import parquet
from airflow_provider_hubcomm.batch.rows import WriteRow

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

ROWS = [
    WriteRow("a@example.com", 11, "SUBSCRIBED", "EMAIL", "CONSENT_WITH_NOTICE", "form 7"),
    WriteRow("B@example.com", 12, "UNSUBSCRIBED", "EMAIL", None, None),
    WriteRow("c@example.com", 11, "NOT_SUBSCRIBED", "EMAIL", None, "free text, ünïcode"),
    WriteRow("d@example.com", 13, "SUBSCRIBED", "EMAIL", "LEGITIMATE_INTEREST_CLIENT", None),
]


def spool_file(tmp_path: Path, rows: list[WriteRow], repeat: int = 1) -> Path:
    rows = rows * repeat
    table = pa.table(
        {
            "r": pa.array([i * 3 + 1 for i in range(len(rows))], pa.int64()),
            "k": [w.subscriber.lower() for w in rows],
            "sb": [w.subscriber for w in rows],
            "s": pa.array([w.subscription_id for w in rows], pa.int64()),
            "st": [w.state for w in rows],
            "ch": [w.channel for w in rows],
            "lb": pa.array([w.legal_basis for w in rows], pa.string()),
            "ex": pa.array([w.explanation for w in rows], pa.string()),
        },
        schema=parquet._spool_schema(pa),
    )
    path = tmp_path / "rows.parquet"
    pq.write_table(table, path)
    return path


@pytest.mark.parametrize("repeat", [1, 5000])  # one batch; several batches of READ_ROWS
def test_rows_read_back_as_written(tmp_path: Path, repeat: int) -> None:
    path = spool_file(tmp_path, ROWS, repeat)
    numbers: list[int] = []
    writes: list[WriteRow] = []
    for batch_numbers, batch_writes in parquet._read(path, parquet._FIELDS):
        numbers.extend(batch_numbers)
        writes.extend(batch_writes)
    assert writes == ROWS * repeat
    assert numbers == [i * 3 + 1 for i in range(len(ROWS) * repeat)]
    assert all(type(w) is WriteRow for w in writes)


def test_enum_values_are_shared_and_nulls_stay_none(tmp_path: Path) -> None:
    path = spool_file(tmp_path, ROWS, 3)
    (_, writes), *_ = parquet._read(path, parquet._FIELDS)
    subscribed = [w.state for w in writes if w.state == "SUBSCRIBED"]
    assert len({id(s) for s in subscribed}) == 1  # one object, not one string per row
    assert [w.legal_basis for w in writes[:4]] == [w.legal_basis for w in ROWS]
    assert [w.explanation for w in writes[:4]] == [w.explanation for w in ROWS]


def test_all_null_enum_column(tmp_path: Path) -> None:
    rows = [w._replace(legal_basis=None) for w in ROWS]
    path = spool_file(tmp_path, rows)
    assert [w for _, batch in parquet._read(path, parquet._FIELDS) for w in batch] == rows


@pytest.mark.parametrize(
    ("values", "dictionary"),
    [(["x", None, "y", "x"], True), (["x", None, "y", "x"], False), ([None, None], True), ([], True)],
)
def test_values_of_a_column(values: list[str | None], dictionary: bool) -> None:
    column = pa.array(values, pa.string())
    if dictionary:
        column = column.dictionary_encode()
    assert parquet._values(column) == values
