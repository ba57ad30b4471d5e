"""Malformed input files end in a clear error naming the row (or line) and send nothing.

Every case runs the batch engine (``HubCommHook.write_statuses``, what ``BatchWriteStatusesOperator``
calls) with ``on_invalid="fail"`` against the bundled fake, whose counters must show zero requests.
"""

from __future__ import annotations

import gzip
import json
import time
from typing import TYPE_CHECKING, Any

import pytest

from airflow_provider_hubcomm.batch.engine import BatchWriteEngine
from airflow_provider_hubcomm.batch.options import BatchWriteOptions
from airflow_provider_hubcomm.exceptions import HubCommValidationError
from airflow_provider_hubcomm.hooks.hubcomm import HubCommHook
from airflow_provider_hubcomm.operators.hubcomm import BatchWriteStatusesOperator

if TYPE_CHECKING:
    from pathlib import Path

    from airflow_provider_hubcomm.testing import FakeHubSpot

HEADER = "subscriberIdString,subscriptionId,statusState\n"
GOOD = "a@example.com,101,UNSUBSCRIBED\n"
TEN_MB = 10 * 1024 * 1024


@pytest.fixture
def fake(hubcomm_fake_factory: Any, monkeypatch: pytest.MonkeyPatch) -> FakeHubSpot:
    fake = hubcomm_fake_factory()
    monkeypatch.setenv("AIRFLOW_CONN_HUBCOMM_DEFAULT", fake.connection_json(requests_per_10s=10_000))
    return fake


def run(path: Path, **options: Any) -> HubCommValidationError:
    options.setdefault("output_dir", str(path.parent / "out"))
    start = time.monotonic()
    with pytest.raises(HubCommValidationError) as info:
        BatchWriteEngine(HubCommHook(), BatchWriteOptions(**options)).run(str(path))
    assert time.monotonic() - start < 30
    return info.value


def assert_nothing_sent(fake: FakeHubSpot, path: Path) -> None:
    assert fake.counters.get("requests", 0) == 0, fake.counters
    out = path.parent / "out"
    assert not out.exists() or list(out.iterdir()) == [], "output files left behind a run that sent nothing"


def assert_nothing_written(fake: FakeHubSpot, path: Path) -> None:
    """Like :func:`assert_nothing_sent`, but allow the one definitions read that resolves subscription names.

    A ``subscriptionId`` that is not a number may be a subscription's name, so the validator reads the
    definitions (one GET of brand 0, no row data) to tell a name from a typo. No row may reach HubSpot.
    """
    counters = fake.counters
    assert counters.get("requests", 0) == counters.get("endpoint:definitions", 0) == 1, counters
    assert {e["endpoint"] for e in fake.request_log} == {"definitions"}
    out = path.parent / "out"
    assert not out.exists() or list(out.iterdir()) == [], "output files left behind a run that sent nothing"


# -- file-level problems: the error names the file and the line ---------------------------------------------

FILE_CASES = {
    "unterminated quote": ("in.csv", HEADER + GOOD + '"b@example.com,101,UNSUBSCRIBED\n' + GOOD, "malformed CSV"),
    "text after closing quote": ("in.csv", HEADER + GOOD + '"b@example.com"x,101,UNSUBSCRIBED\n', "line 3: malformed"),
    "too many fields": ("in.csv", HEADER + GOOD + "b@example.com,101,UNSUBSCRIBED,extra\n", "row 2 (line 3)"),
    "too few fields": ("in.csv", HEADER + GOOD + GOOD + "b@example.com,101\n", "row 3 (line 4)"),
    "empty CSV": ("in.csv", "", "file is empty"),
    "duplicate header": ("in.csv", "subscriberIdString,subscriberIdString,statusState\n" + GOOD, "duplicate column"),
    "empty JSON": ("in.json", "", "file is empty"),
    "JSON not an array": ("in.json", '{"subscriberIdString": "a@example.com"}', "expected a JSON array"),
    "JSON truncated": ("in.json", '[{"subscriberIdString": "a@example.com", "subscriptionId": 1', "row 1"),
    "JSON trailing comma": ("in.json", '[{"subscriberIdString": "a@example.com"},]', "trailing comma after row 1"),
    "JSONL truncated line": ("in.jsonl", '{"subscriberIdString": "a@ex', "line 1: not valid JSON"),
    "JSONL array line": ("in.jsonl", '{"a": 1}\n[1, 2]\n', "line 2: expected a JSON object, got an array"),
    "JSONL scalar line": ("in.jsonl", '{"a": 1}\n{"a": 1}\n"text"\n', "line 3: expected a JSON object, got a string"),
}


@pytest.mark.parametrize("case", list(FILE_CASES))
def test_malformed_file_names_file_and_line(fake: FakeHubSpot, tmp_path: Path, case: str) -> None:
    name, content, expected = FILE_CASES[case]
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    err = run(path)
    assert str(path) in str(err)
    assert expected in str(err)
    assert_nothing_sent(fake, path)


def test_invalid_utf8_and_corrupt_gzip(fake: FakeHubSpot, tmp_path: Path) -> None:
    latin = tmp_path / "latin1.csv"
    latin.write_bytes(HEADER.encode() + GOOD.encode() + "zoë@example.com,101,UNSUBSCRIBED\n".encode("latin-1"))
    assert "not valid UTF-8" in str(run(latin))
    corrupt = tmp_path / "in.csv.gz"
    corrupt.write_bytes(gzip.compress((HEADER + GOOD * 1000).encode())[:-40])
    assert "corrupt or truncated gzip" in str(run(corrupt))
    assert_nothing_sent(fake, corrupt)


def test_unterminated_quote_names_the_row_where_it_opens(fake: FakeHubSpot, tmp_path: Path) -> None:
    """Regression (fixed in 0a7dacc): the error used to name the line where the parser gave up (end of file)."""
    path = tmp_path / "in.csv"
    path.write_text(HEADER + GOOD + '"b@example.com,101,UNSUBSCRIBED\n' + GOOD * 5000, encoding="utf-8")
    message = str(run(path))
    assert "row 2" in message or "line 3" in message, message
    assert_nothing_sent(fake, path)


# -- row-level problems: the error names row, field, value and the allowed values --------------------------


def test_wrong_types_name_row_field_and_value(fake: FakeHubSpot, tmp_path: Path) -> None:
    path = tmp_path / "in.csv"
    path.write_text(
        HEADER
        + GOOD
        + "b@example.com,abc,UNSUBSCRIBED\n"
        + "c@example.com,1.5,UNSUBSCRIBED\n"
        + "d@example.com,-3,UNSUBSCRIBED\n"
        + "e@example.com,99999999999999999999,UNSUBSCRIBED\n"
        + "f@example.com,101,MAYBE\n"
        + "g@example.com,101,\n"
        + GOOD,
        encoding="utf-8",
    )
    err = run(path)
    message = str(err)
    assert "6 of 8 input rows are invalid; nothing was sent" in message
    for row, field, value in [
        (2, "subscriptionId", "'abc'"),
        (3, "subscriptionId", "'1.5'"),
        (4, "subscriptionId", "'-3'"),
        (5, "subscriptionId", "'99999999999999999999'"),
        (6, "statusState", "'MAYBE'"),
    ]:
        assert f"row {row}, field '{field}': value {value}" in message
    assert "allowed values: SUBSCRIBED, UNSUBSCRIBED, NOT_SPECIFIED" in message
    assert "row 7, field 'statusState': is required" in message
    assert [(e["row"], e["field"]) for e in err.errors] == [
        (2, "subscriptionId"),
        (3, "subscriptionId"),
        (4, "subscriptionId"),
        (5, "subscriptionId"),
        (6, "statusState"),
        (7, "statusState"),
    ]
    assert_nothing_written(fake, path)  # 'abc' could have been a subscription name


def test_wrong_json_types(fake: FakeHubSpot, tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    rows = [
        {"subscriberIdString": "a@example.com", "subscriptionId": 101, "statusState": "UNSUBSCRIBED"},
        {"subscriberIdString": "b@example.com", "subscriptionId": [101], "statusState": "UNSUBSCRIBED"},
        {"subscriberIdString": 5, "subscriptionId": True, "statusState": None},
        {"subscriberIdString": "c@example.com", "subscriptionId": {"id": 1}, "statusState": 3},
        {"subscriberIdString": "d@example.com", "subscriptionId": 101, "statusState": "UNSUBSCRIBED", "legalBasis": 1},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    err = run(path)
    fields = {(e["row"], e["field"]) for e in err.errors}
    assert {(2, "subscriptionId"), (3, "subscriberIdString"), (3, "subscriptionId"), (3, "statusState")} <= fields
    assert {(4, "subscriptionId"), (4, "statusState"), (5, "legalBasis")} <= fields
    assert "row 3, field 'subscriberIdString': value 5 must be a string" in str(err)
    assert_nothing_sent(fake, path)


def test_missing_and_misspelled_columns(fake: FakeHubSpot, tmp_path: Path) -> None:
    """A header that can never give a valid row fails on line 1, naming the missing and the unknown columns."""
    missing = tmp_path / "missing.csv"
    missing.write_text("subscriberIdString,subscriptionId\na@example.com,101\nb@example.com,102\n", encoding="utf-8")
    err = run(missing)
    assert f"{missing}: the header (line 1) cannot give a valid row, nothing was sent" in str(err)
    assert "statusState: no column gives it" in str(err)
    assert [e["field"] for e in err.errors] == ["statusState"]
    misspelled = tmp_path / "misspelled.csv"
    misspelled.write_text("subscriberId,subscriptionId,statusState\na@example.com,101,UNSUBSCRIBED\n", encoding="utf-8")
    message = str(run(misspelled))
    assert "'subscriberId': unknown column" in message
    assert "subscriberIdString: no column gives it" in message
    assert_nothing_sent(fake, misspelled)


def test_missing_value_names_the_row(fake: FakeHubSpot, tmp_path: Path) -> None:
    path = tmp_path / "in.csv"
    path.write_text(HEADER + GOOD + "b@example.com,,UNSUBSCRIBED\n", encoding="utf-8")
    err = run(path)
    assert "row 2, field 'subscriptionId': is required but missing or empty" in str(err)
    assert_nothing_sent(fake, path)


def test_ten_megabyte_line_is_refused_with_a_short_message(fake: FakeHubSpot, tmp_path: Path) -> None:
    csv_path = tmp_path / "in.csv"
    csv_path.write_text(HEADER + GOOD + "a" * TEN_MB + "@example.com,101,UNSUBSCRIBED\n", encoding="utf-8")
    jsonl_path = tmp_path / "in.jsonl"
    big = {"subscriberIdString": "b@example.com", "subscriptionId": 101, "statusState": "UNSUBSCRIBED"}
    jsonl_path.write_text(json.dumps({**big, "legalBasisExplanation": "x" * TEN_MB, "legalBasis": "NOPE"}) + "\n")
    for path, row, field in [(csv_path, 2, "subscriberIdString"), (jsonl_path, 1, "legalBasis")]:
        err = run(path)
        assert f"row {row}, field '{field}'" in str(err)
        assert len(str(err)) < 2_000, "the 10 MB value is echoed in the error"
        assert len(json.dumps(err.errors)) < 2_000
    # Larger than the CSV field limit (16 MB): refused by the parser, naming the line.
    huge = tmp_path / "huge.csv"
    huge.write_text(HEADER + "a" * (17 * 1024 * 1024) + "@example.com,101,UNSUBSCRIBED\n", encoding="utf-8")
    message = str(run(huge))
    assert "line 2" in message
    assert "field larger than field limit" in message
    assert len(message) < 2_000
    assert_nothing_sent(fake, huge)


def test_ten_megabyte_jsonl_line_that_is_an_array(fake: FakeHubSpot, tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    row = {"subscriberIdString": "a@example.com", "subscriptionId": 101, "statusState": "UNSUBSCRIBED"}
    path.write_text(json.dumps([row] * (TEN_MB // 80)), encoding="utf-8")
    assert path.stat().st_size >= TEN_MB
    message = str(run(path))
    assert "line 1: expected a JSON object, got an array" in message
    assert len(message) < 2_000
    assert_nothing_sent(fake, path)


@pytest.mark.parametrize(
    "content",
    ["x" * TEN_MB, "email,list_id,opt_in\n"],
    ids=["10MB single line without newline", "header-only file with wrong columns"],
)
def test_a_file_without_usable_header_is_an_error(fake: FakeHubSpot, tmp_path: Path, content: str) -> None:
    """Regression (fixed in 0a7dacc): such files used to 'succeed' with rows_read=0."""
    path = tmp_path / "in.csv"
    path.write_text(content, encoding="utf-8")
    message = str(run(path))
    assert "line 1" in message
    assert len(message) < 2_000
    assert_nothing_sent(fake, path)


def test_operator_fails_before_sending_on_a_malformed_file(
    fake: FakeHubSpot, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "in.csv"
    path.write_text(HEADER + GOOD * 10 + "b@example.com,oops,UNSUBSCRIBED\n" + GOOD, encoding="utf-8")
    failed = tmp_path / "failed.jsonl"
    operator = BatchWriteStatusesOperator(
        task_id="write", inputs=str(path), failed_rows_path=str(failed), output_dir=str(tmp_path / "out")
    )
    with pytest.raises(HubCommValidationError, match=r"row 11, field 'subscriptionId': value 'oops'"):
        operator.execute({})  # type: ignore[arg-type]
    assert_nothing_written(fake, path)  # 'oops' could have been a subscription name
    assert not failed.exists()


# -- config typos and all-invalid input (issue 17.6) ------------------------------------------------------


@pytest.mark.parametrize("name", ["in.csv", "in.csv.gz"])
def test_column_map_typo_in_a_file_header_sends_nothing(fake: FakeHubSpot, tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    content = "email,sub,state\n" + "a@example.com,101,UNSUBSCRIBED\n" * 3
    if name.endswith(".gz"):
        path.write_bytes(gzip.compress(content.encode()))
    else:
        path.write_text(content, encoding="utf-8")
    typo = {"e_mail": "subscriberIdString", "sub": "subscriptionId", "state": "statusState"}
    err = run(path, column_map=typo, on_invalid="skip", extra_columns="ignore")
    assert "column_map['e_mail']: no column 'e_mail' in the header (line 1)" in str(err)
    assert str(path) in str(err)
    assert_nothing_sent(fake, path)


@pytest.mark.parametrize(
    ("content", "options", "expected"),
    [
        (
            '{"email": "a@example.com", "sub": 101, "state": "UNSUBSCRIBED"}\n' * 3,
            {
                "column_map": {
                    "email": "subscriberIdString",
                    "sub": "subscriptionId",
                    "state": "statusState",
                    "basis": "legalBasis",
                    "basis_text": "legalBasisExplanation",
                }
            },
            "column_map['basis']: no column 'basis' in any of the 3 input rows",
        ),
        (
            '{"subscriberIdString": "a@example.com", "subscriptionId": 101, "statusState": "maybe"}\n' * 3,
            {"on_invalid": "skip"},
            "all 3 input rows are invalid",
        ),
        (
            '{"subscriberIdString": "a@example.com", "subscriptionId": 101, "statusState": "maybe"}\n'
            + '{"subscriberIdString": "b@example.com", "subscriptionId": 101, "statusState": "SUBSCRIBED"}\n' * 3,
            {"on_invalid": "skip", "max_invalid_ratio": 0.2},
            "1 of 4 input rows are invalid (25.0%), more than max_invalid_ratio=0.2",
        ),
    ],
)
def test_typos_and_dirty_rows_send_nothing_and_leave_nothing(
    fake: FakeHubSpot, tmp_path: Path, content: str, options: dict[str, Any], expected: str
) -> None:
    path = tmp_path / "in.jsonl"
    path.write_text(content, encoding="utf-8")
    err = run(path, **options)
    assert expected in str(err)
    assert_nothing_sent(fake, path)
