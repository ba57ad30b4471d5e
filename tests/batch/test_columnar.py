"""The vectorised validation pass of Parquet inputs against the row path: same rows, same errors, same order."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from airflow_provider_hubcomm.batch.columnar import validate_parquet
from airflow_provider_hubcomm.batch.parquet import ParquetSpool, parquet_batches
from airflow_provider_hubcomm.batch.rows import RowValidator
from airflow_provider_hubcomm.batch.sources import iter_rows
from airflow_provider_hubcomm.batch.spool import validate_rows
from airflow_provider_hubcomm.sync.partition import PartitionFilter
from tests.batch._passes import VALIDATOR_CONFIGS, clean_rows, pass_outcome

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

#: Subscriber values: the vectorised check's shape, and everything it must leave to the row path.
SUBSCRIBERS = [
    "a@example.com",
    "A@Example.COM",  # a duplicate of the first, in another case
    " padded@example.com ",
    "tab\t@example.com",
    "émile@example.fr",
    "İstanbul@example.com",  # lower() that differs between libraries
    "no-at-sign.example.com",
    "two@@example.com",
    "a@nodot",
    "x" * 65 + "@example.com",
    'q"uote@example.com',
    "",
    None,
    "b@example.com",
    "c@sub.example.co.uk",
]
SUBSCRIPTION_IDS: list[Any] = [101, "102", " 103", "0", "-4", "007", "12345678901234567890", None, "newsletter", 5]
#: The same, as a Parquet integer column holds them.
INT_SUBSCRIPTION_IDS: list[Any] = [101, 102, 103, 0, -4, 7, 2**63 - 1, None, 9, 5]
STATES: list[Any] = ["SUBSCRIBED", "subscribed", "Unsubscribed", "NOT_SPECIFIED", "sUbScRiBeD", "", None, "maybe"]
CHANNELS: list[Any] = [None, "EMAIL", "email", "Email", "SMS", ""]
PAIRS: list[tuple[Any, Any]] = [
    (None, None),
    ("LEGITIMATE_INTEREST_CLIENT", "asked at checkout"),
    ("consent_with_notice", "form 7"),
    ("LEGITIMATE_INTEREST_CLIENT", None),
    (None, "why"),
    ("LEGITIMATE_INTEREST_CLIENT", ""),
    ("NOT_A_BASIS", "why"),
    ("PERFORMANCE_OF_CONTRACT", 'ünïcode explanation "quoted"'),
]


def make_rows(n: int, *, sid_as_text: bool) -> list[dict[str, Any]]:
    """``n`` rows cycling through every value above (co-prime cycle lengths mix them)."""
    rows = []
    for i in range(n):
        basis, expl = PAIRS[i % len(PAIRS)]
        ids = SUBSCRIPTION_IDS if sid_as_text else INT_SUBSCRIPTION_IDS
        sid = ids[i % len(ids)]
        rows.append(
            {
                "subscriberIdString": SUBSCRIBERS[i % len(SUBSCRIBERS)],
                "subscriptionId": str(sid) if sid_as_text and sid is not None else sid,
                "statusState": STATES[i % len(STATES)],
                "channel": CHANNELS[i % len(CHANNELS)],
                "legalBasis": basis,
                "legalBasisExplanation": expl,
            }
        )
    return rows


def write(path: Path, rows: list[dict[str, Any]], schema: Any = None) -> Path:
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), str(path), row_group_size=997)
    return path


def both_passes(path: Path, validator_args: dict[str, Any], *, stop: bool, batch_rows: int = 1000) -> tuple[Any, Any]:
    """Run the row path and the vectorised pass on the same file; return what each saw, comparable."""

    def run(columnar: bool) -> dict[str, Any]:
        validator = RowValidator(**validator_args)
        invalid: list[tuple[int, dict[str, Any], list[str]]] = []

        def on_invalid(number: int, raw: Any, errors: list[Any]) -> None:
            invalid.append((number, dict(raw), [str(e) for e in errors]))

        handler = None if stop else on_invalid
        if columnar:
            batches = parquet_batches(path, batch_rows=batch_rows)
            assert batches is not None
            checked = validate_parquet(batches, validator, stop_at_invalid=stop, on_invalid_row=handler)
        else:
            checked = validate_rows(iter_rows(path), validator, stop_at_invalid=stop, on_invalid_row=handler)
        return pass_outcome(checked, invalid)

    return run(False), run(True)


@pytest.mark.parametrize("sid_as_text", [False, True], ids=["int-ids", "text-ids"])
@pytest.mark.parametrize("validator_args", list(VALIDATOR_CONFIGS.values()), ids=list(VALIDATOR_CONFIGS))
def test_the_vectorised_pass_matches_the_row_path(tmp_path: Path, validator_args: dict[str, Any], sid_as_text: bool):
    rows = make_rows(4000, sid_as_text=sid_as_text)
    path = write(tmp_path / "in.parquet", rows)
    rowwise, columnar = both_passes(path, validator_args, stop=False)
    assert rowwise["counts"][0] == 4000
    assert 0 < rowwise["counts"][1] < 4000, "the data must hold valid and invalid rows"
    assert columnar == rowwise


def test_stop_at_invalid_counts_and_errors_match(tmp_path: Path):
    path = write(tmp_path / "in.parquet", make_rows(3000, sid_as_text=False))
    rowwise, columnar = both_passes(path, {}, stop=True)
    assert rowwise["records"] is None  # nothing will be sent: no spool
    assert columnar["records"] is None
    assert columnar == rowwise


def test_column_map_unknown_columns_and_unseen_keys_match(tmp_path: Path):
    rows = [
        {"email": r["subscriberIdString"], "sub": r["subscriptionId"], "statusState": r["statusState"], "extra": i}
        for i, r in enumerate(make_rows(500, sid_as_text=False))
    ]
    path = write(tmp_path / "in.parquet", rows)
    args = {"column_map": {"email": "subscriberIdString", "sub": "subscriptionId", "typo": "channel"}}
    for extra in ("fail", "ignore"):
        rowwise, columnar = both_passes(path, {**args, "extra_columns": extra}, stop=False)
        assert rowwise["unseen"] == ["typo"]
        assert columnar == rowwise
    # With extra_columns="fail" the unknown column refuses every row, on both paths.
    assert rowwise is not None


def test_duplicates_are_exact_and_the_last_row_wins(tmp_path: Path):
    rows = [
        {"subscriberIdString": s, "subscriptionId": sid, "statusState": st}
        for s, sid, st in [
            ("a@x.io", 1, "SUBSCRIBED"),
            ("A@X.io", 1, "UNSUBSCRIBED"),  # same key: supersedes row 1
            ("a@x.io", 2, "SUBSCRIBED"),  # other subscription: kept
            ("b@x.io", 1, "SUBSCRIBED"),
            ("a@x.io", 1, "NOT_SPECIFIED"),  # the last of key (a@x.io, 1)
        ]
    ]
    path = write(tmp_path / "in.parquet", rows)
    rowwise, columnar = both_passes(path, {}, stop=False, batch_rows=2)
    assert [(r, sup) for r, _, sup in columnar["records"]] == [(1, True), (2, True), (3, False), (4, False), (5, False)]
    assert columnar == rowwise


def test_the_row_path_sees_only_the_rows_the_columns_leave(tmp_path: Path, mocker):
    """The point of the pass: a clean file is validated without a Python call per row."""
    rows = clean_rows(10_000)
    rows[1234]["subscriberIdString"] = "  padded@example.com"  # valid, but for the row path
    rows[4321]["statusState"] = "bogus"  # invalid
    path = write(tmp_path / "in.parquet", rows)
    validator = RowValidator()
    spy = mocker.spy(validator, "validate")
    batches = parquet_batches(path, batch_rows=4096)
    assert batches is not None
    checked = validate_parquet(batches, validator, stop_at_invalid=False)
    assert sorted(call.args[0] for call in spy.call_args_list) == [1235, 4322]
    assert (checked.rows_read, checked.valid, checked.invalid) == (10_000, 9_999, 1)
    assert isinstance(checked.spool, ParquetSpool)
    records = list(checked.spool.records())
    checked.spool.close()
    assert [r for r, _, _ in records] == [n for n in range(1, 10_001) if n != 4322]
    assert records[1234][0] == 1235
    assert records[1234][1].subscriber == "padded@example.com"


def test_partition_mask_places_rows_as_the_row_filter_does(tmp_path: Path):
    rows = make_rows(2000, sid_as_text=False)
    path = write(tmp_path / "in.parquet", rows)
    for partition in range(3):
        rowwise = PartitionFilter(partition, 3, "subscriberIdString")
        columnar = PartitionFilter(partition, 3, "subscriberIdString")
        expected = [n for n, _ in rowwise.filter(iter_rows(path))]
        batches = parquet_batches(path, batch_rows=333)
        assert batches is not None
        validator = RowValidator(extra_columns="ignore")
        checked = validate_parquet(batches, validator, stop_at_invalid=False, partition=columnar)
        assert columnar.rows_outside == rowwise.rows_outside == 2000 - len(expected)
        assert checked.rows_read == len(expected)
        if checked.spool is not None:
            checked.spool.close()


def test_other_inputs_are_not_parquet_batches(tmp_path: Path):
    csv_file = tmp_path / "in.csv"
    csv_file.write_text("subscriberIdString,subscriptionId,statusState\na@x.io,1,SUBSCRIBED\n")
    assert parquet_batches(csv_file) is None
    assert parquet_batches([{"subscriberIdString": "a@x.io"}]) is None
    assert parquet_batches(csv_file, file_format="parquet") is not None


@pytest.mark.parametrize(
    "ids",
    [
        pytest.param(lambda: pa.array([1, 2**63 - 1, 2**63, 0], pa.uint64()), id="uint64-past-int64"),
        pytest.param(lambda: pa.array([1, -1, 7, None], pa.int32()), id="int32"),
        pytest.param(lambda: pa.array([1.0, 1.5, 2.0, None]), id="float"),
        pytest.param(lambda: pa.array([True, False, None, True]), id="bool"),
        pytest.param(lambda: pa.array([1, 2, 3, 4], pa.decimal128(10, 0)), id="decimal"),
    ],
)
def test_column_types_match_the_row_path(tmp_path: Path, ids: Any) -> None:
    """Typed Parquet columns (and dictionary-encoded text, an all-null column) end as the row path ends them."""
    table = pa.table(
        {
            "subscriberIdString": pa.array(["a@x.io", "b@x.io", "c@x.io", "d@x.io"]).dictionary_encode(),
            "subscriptionId": ids(),
            "statusState": pa.array(["SUBSCRIBED", "subscribed", "Unsubscribed", None]).dictionary_encode(),
            "channel": pa.array([None] * 4, pa.null()),
        }
    )
    path = tmp_path / "typed.parquet"
    pq.write_table(table, str(path))
    rowwise, columnar = both_passes(path, {"defaults": {"statusState": "NOT_SPECIFIED"}}, stop=False)
    assert rowwise["counts"][0] == 4
    assert columnar == rowwise
