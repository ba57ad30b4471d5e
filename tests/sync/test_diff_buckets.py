"""A large diff runs in key buckets: the buckets' verdicts together are exactly the one-pass diff's."""

from __future__ import annotations

import random
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from airflow_provider_hubcomm.batch.columnar import validate_parquet
from airflow_provider_hubcomm.batch.parquet import parquet_batches
from airflow_provider_hubcomm.batch.rows import RowValidator, WriteRow
from airflow_provider_hubcomm.batch.spool import validate_rows
from airflow_provider_hubcomm.sync import diff as diff_module
from airflow_provider_hubcomm.sync.diff import diff
from airflow_provider_hubcomm.sync.state import Journal, SyncState

if TYPE_CHECKING:
    from pytest_mock import MockerFixture

STATES = ("SUBSCRIBED", "UNSUBSCRIBED", "NOT_SPECIFIED")


def _write(rng: random.Random, who: int) -> WriteRow:
    sub = f"Contact{who}@Example.com" if rng.random() < 0.2 else f"contact{who}@example.com"
    basis = "LEGITIMATE_INTEREST_CLIENT" if rng.random() < 0.3 else None
    return WriteRow(sub, 101 + who % 2, rng.choice(STATES), "EMAIL", basis, "why" if basis else None)


def _state(tmp_path: Path, rng: random.Random) -> tuple[str | None, list[str]]:
    """A base of 120 keys, then a journal: changes, failures, and refusals of the guard."""
    state = SyncState(tmp_path / "state", str(tmp_path / "work"))
    journal = Journal(state, rows=25)
    for who in range(120):
        journal.record(_write(rng, who), True)
    journal.flush()
    assert state.compact(resync=False, memory_limit="200MB") == 120
    for who in rng.sample(range(160), 60):
        kind = rng.random()
        if kind < 0.2:
            journal.refused(_write(rng, who))
        else:
            journal.record(_write(rng, who), kind < 0.7)
    journal.flush()
    return state.fetch()


@pytest.mark.parametrize("columnar", [False, True], ids=["row-spool", "parquet-spool"])
def test_bucketed_verdicts_equal_the_one_pass_verdicts(tmp_path: Path, mocker: MockerFixture, columnar: bool) -> None:
    rng = random.Random(7)
    base, segments = _state(tmp_path, rng)
    assert base is not None
    assert segments
    rows = [_write(rng, rng.randrange(200))._asdict() for _ in range(400)]  # repeats: duplicates, changes, news
    api = [
        {"subscriberIdString": r["subscriber"], "subscriptionId": r["subscription_id"], "statusState": r["state"]}
        | ({"legalBasis": r["legal_basis"], "legalBasisExplanation": r["explanation"]} if r["legal_basis"] else {})
        for r in rows
    ]
    if columnar:
        path = tmp_path / "in.parquet"
        absent = {"legalBasis": None, "legalBasisExplanation": None}  # every row has the columns
        pq.write_table(pa.Table.from_pylist([absent | r for r in api]), path)
        checked = validate_parquet(parquet_batches(str(path)), RowValidator(), stop_at_invalid=True)
    else:
        checked = validate_rows(enumerate(api, 1), RowValidator(), stop_at_invalid=True)
    spool = checked.spool
    assert spool is not None
    spy = mocker.spy(diff_module, "verdicts_sql")
    results = {}
    for bucket_rows in (10_000, 50):  # one pass; then 400 input rows in buckets of 50: 8 buckets
        work = tmp_path / f"diff-{bucket_rows}"
        work.mkdir()
        result = diff(spool, base, segments, work, "200MB", bucket_rows=bucket_rows)
        results[bucket_rows] = (result.verdicts.read_text(), result.kept, result.unchanged, result.refused)
    spool.close()
    buckets = [call.kwargs.get("bucket", (0, 1)) for call in spy.call_args_list]
    assert buckets == [(0, 1), *((i, 8) for i in range(8))]
    one_pass, bucketed = results[10_000], results[50]
    assert bucketed == one_pass
    verdicts = [line.split(",") for line in one_pass[0].splitlines()]
    numbers = [int(r) for r, _ in verdicts]
    assert numbers == sorted(numbers)  # in row order, as the send pass reads them
    assert {v for _, v in verdicts} == {"s", "d", "r"}  # every kind of verdict took part
    assert not list((tmp_path / "diff-50").glob("verdicts-*.csv"))  # the buckets' files are gone
