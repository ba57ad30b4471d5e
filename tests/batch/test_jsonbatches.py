"""The vectorised pass of JSON lines inputs against the row path: same rows, same errors, same order, same fallbacks."""

from __future__ import annotations

import gzip
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_hubcomm.batch import sources
from airflow_provider_hubcomm.batch.columnar import validate_parquet
from airflow_provider_hubcomm.batch.jsonbatches import JsonFallback, count_objects, jsonl_batches, validate_jsonl
from airflow_provider_hubcomm.batch.parquet import ParquetSpool
from airflow_provider_hubcomm.batch.rows import RowValidator
from airflow_provider_hubcomm.batch.sources import iter_rows
from airflow_provider_hubcomm.batch.spool import Spool, validate_rows
from airflow_provider_hubcomm.exceptions import HubCommValidationError
from airflow_provider_hubcomm.sync.partition import PartitionFilter
from tests.batch._passes import VALIDATOR_CONFIGS, clean_rows, pass_outcome
from tests.batch.test_columnar import make_rows

pa = pytest.importorskip("pyarrow")
pytest.importorskip("pyarrow.json")

#: A small chunk: every file below is read in many chunks (and record batches).
CHUNK = 2048
ROW = '{"subscriberIdString": "a@x.io", "subscriptionId": 1, "statusState": "SUBSCRIBED"}'


def write_jsonl(path: Path, rows: list[dict[str, Any]], *, newline: str = "\n") -> Path:
    """Write rows as JSON lines (every third row leaves out its ``None`` values: absent keys); ``.gz`` compresses."""
    lines = []
    for i, row in enumerate(rows):
        if i % 3 == 0:
            row = {k: v for k, v in row.items() if v is not None}
        lines.append(json.dumps(row, ensure_ascii=i % 2 == 0) + newline)
    return write_raw(path, "".join(lines))


def write_raw(path: Path, data: str | bytes) -> Path:
    raw = data.encode("utf-8") if isinstance(data, str) else data
    path.write_bytes(gzip.compress(raw) if path.suffix == ".gz" else raw)
    return path


def valid_rows(n: int, validator_args: dict[str, Any], *, sid_as_text: bool = True) -> list[dict[str, Any]]:
    """The rows of :func:`make_rows` the validator accepts: padded, non-ASCII, lower-case, pair or not ..."""
    validator = RowValidator(**validator_args)
    rows = [
        row
        for i, row in enumerate(make_rows(n, sid_as_text=sid_as_text))
        if not isinstance(validator.validate(i, row), list)
    ]
    return rows


def run(path: Any, validator_args: dict[str, Any], *, stop: bool, mode: str, **kwargs: Any) -> dict[str, Any]:
    """Validate ``path`` one way and return what was seen, comparable across ways.

    ``mode``: ``rows`` (the row path), ``batches`` (the vectorised pass alone: a fallback raises
    :class:`JsonFallback`), ``jsonl`` (:func:`validate_jsonl`, the vectorised pass or its fallback).
    """
    validator = kwargs.pop("validator", None) or RowValidator(**validator_args)
    invalid: list[tuple[int, dict[str, Any], list[str]]] = []

    def on_invalid(number: int, raw: Any, errors: list[Any]) -> None:
        invalid.append((number, dict(raw), [str(e) for e in errors]))

    handler = None if stop else on_invalid
    if mode == "rows":
        checked = validate_rows(iter_rows(path), validator, stop_at_invalid=stop, on_invalid_row=handler)
    elif mode == "batches":
        read = [source for source in validator.sources.values() if source is not None]
        batches = jsonl_batches(path, chunk_bytes=kwargs.get("chunk_bytes", CHUNK), read_columns=read)
        assert batches is not None
        checked = validate_parquet(batches, validator, stop_at_invalid=stop, on_invalid_row=handler)
    else:
        checked = validate_jsonl(path, validator, stop_at_invalid=stop, on_invalid_row=handler, chunk_bytes=CHUNK)
        assert checked is not None
    seen = list(checked.columns_seen) if checked.columns_unseen else None  # only shown with unseen keys
    return pass_outcome(checked, invalid, seen=seen, kind=type(checked.spool).__name__)


def outcome(path: Any, validator_args: dict[str, Any], *, mode: str, stop: bool = False, **kwargs: Any) -> Any:
    """``run``'s result, or the message of the error it raised."""
    try:
        return run(path, validator_args, stop=stop, mode=mode, **kwargs)
    except HubCommValidationError as exc:
        return str(exc)


def same(path: Any, validator_args: dict[str, Any], *, stop: bool = False, **kwargs: Any) -> dict[str, Any]:
    """Assert the vectorised pass (alone and through :func:`validate_jsonl`) gives what the row path gives."""
    rowwise = run(path, validator_args, stop=stop, mode="rows", **kwargs)
    columnar = run(path, validator_args, stop=stop, mode="batches", **kwargs)
    through = run(path, validator_args, stop=stop, mode="jsonl", **kwargs)
    assert rowwise.pop("kind") == Spool.__name__
    assert columnar.pop("kind") == through.pop("kind") == ParquetSpool.__name__, "the vectorised pass was taken"
    assert columnar == rowwise
    assert through == rowwise
    return rowwise


def same_by_fallback(path: Any, validator_args: dict[str, Any], *, stop: bool = False) -> Any:
    """Assert :func:`validate_jsonl` gives the row path's result or error, through the row path."""
    expected = outcome(path, validator_args, mode="rows", stop=stop)
    got = outcome(path, validator_args, mode="jsonl", stop=stop)
    assert got == expected
    if isinstance(got, dict) and got["kind"] != "NoneType":
        assert got["kind"] == Spool.__name__, "the row path was taken"
    return expected


CONFIGS = VALIDATOR_CONFIGS


@pytest.mark.parametrize("sid_as_text", [True, False], ids=["text-ids", "int-ids"])
@pytest.mark.parametrize("validator_args", list(CONFIGS.values()), ids=list(CONFIGS))
def test_a_clean_file_takes_the_vectorised_pass_with_the_row_paths_result(
    tmp_path: Path, validator_args: dict[str, Any], sid_as_text: bool
):
    rows = valid_rows(6000, validator_args, sid_as_text=sid_as_text)
    if validator_args.get("extra_columns") == "ignore":
        for i, row in enumerate(rows):  # columns the rules do not read may hold any scalar type
            row.update(note=f"n{i}", score=[i / 3, float("nan"), None][i % 3], when="2024-01-01", flag=i % 2 == 0)
    rowwise = same(write_jsonl(tmp_path / "in.jsonl", rows), validator_args)
    assert rowwise["counts"] == (len(rows), len(rows), 0)
    assert len(rows) > 400


@pytest.mark.parametrize("suffix", [".jsonl", ".ndjson.gz"])
@pytest.mark.parametrize("newline", ["\n", "\r\n"], ids=["lf", "crlf"])
def test_blank_lines_blanks_crlf_and_a_leading_bom_match(tmp_path: Path, suffix: str, newline: str):
    rows = [json.dumps(row) for row in valid_rows(600, {})]
    text = newline.join(
        f"  {line}\t" if i % 5 == 1 else f"{line}{newline}\r \t" if i % 7 == 0 else line for i, line in enumerate(rows)
    )
    for body in (text, "\ufeff" + text + newline, newline + text + newline * 3):
        same(write_raw(tmp_path / f"in{suffix}", body), {})


def test_columns_that_appear_in_later_chunks_are_checked(tmp_path: Path):
    """Each chunk has its own columns: the checks follow them (a pair given only from row 301 on is kept)."""
    rows = [
        {"subscriberIdString": f"c{i}@example.com", "subscriptionId": 1 + i % 3, "statusState": "SUBSCRIBED"}
        for i in range(900)
    ]
    for i, row in enumerate(rows[300:]):
        row.update(legalBasis="LEGITIMATE_INTEREST_CLIENT", legalBasisExplanation=f"why {i}", channel="EMAIL")
    path = write_raw(tmp_path / "in.jsonl", "".join(json.dumps(row) + "\n" for row in rows))
    batches = jsonl_batches(path, chunk_bytes=CHUNK)
    assert batches is not None
    names = {tuple(batch.schema.names) for _, batch in batches}
    assert len(names) == 2  # without the pair, then with it
    rowwise = same(path, {})
    assert [write.legal_basis for _, write, _ in rowwise["records"]] == [None] * 300 + [
        "LEGITIMATE_INTEREST_CLIENT"
    ] * 600


def test_stop_at_invalid_on_a_clean_file(tmp_path: Path):
    path = write_jsonl(tmp_path / "in.jsonl", valid_rows(1000, {}))
    assert same(path, {}, stop=True)["records"] is not None


def test_column_map_and_unseen_keys_match(tmp_path: Path):
    rows = [
        {"email": r["subscriberIdString"], "sub": r["subscriptionId"], "statusState": r["statusState"]}
        for r in valid_rows(600, {})
    ]
    path = write_jsonl(tmp_path / "in.jsonl", rows)
    same(path, {"column_map": {"email": "subscriberIdString", "sub": "subscriptionId"}})
    for extra in ("fail", "ignore"):  # a key no row has: the row path names the columns it saw
        args = {"column_map": {"email": "subscriberIdString", "sub": "subscriptionId", "typo": "channel"}}
        rowwise = same_by_fallback(path, {**args, "extra_columns": extra})
        assert rowwise["unseen"] == ["typo"]
        assert rowwise["seen"] == ["email", "sub", "statusState"]


def test_duplicates_are_exact_and_the_last_row_wins(tmp_path: Path):
    lines = [
        ("a@x.io", 1, "SUBSCRIBED"),
        ("A@X.io", 1, "UNSUBSCRIBED"),
        ("a@x.io", "2", "SUBSCRIBED"),
        ("b@x.io", 1, "SUBSCRIBED"),
        ("a@x.io", "01", "NOT_SPECIFIED"),
    ]
    body = "".join(
        json.dumps({"subscriberIdString": s, "subscriptionId": i, "statusState": st}) + "\n" for s, i, st in lines
    )
    rowwise = same_by_fallback(write_raw(tmp_path / "mixed.jsonl", body), {})  # ints and text in one column
    assert [(r, sup) for r, _, sup in rowwise["records"]] == [(1, True), (2, True), (3, False), (4, False), (5, False)]
    body = body.replace('"2"', "2").replace('"01"', "1")
    rowwise = same(write_raw(tmp_path / "in.jsonl", body), {}, chunk_bytes=100)
    assert [(r, sup) for r, _, sup in rowwise["records"]] == [(1, True), (2, True), (3, False), (4, False), (5, False)]


def test_the_row_path_sees_only_the_rows_the_columns_leave(tmp_path: Path, mocker):
    rows = clean_rows(10_000)
    rows[1234]["subscriberIdString"] = "  padded@example.com"
    rows[5000]["subscriberIdString"] = "émile@example.fr"
    path = write_jsonl(tmp_path / "in.jsonl", rows)
    validator = RowValidator()
    spy = mocker.spy(validator, "validate")
    row_path = mocker.spy(sources, "iter_rows")
    checked = validate_jsonl(path, validator, stop_at_invalid=False, chunk_bytes=CHUNK)
    assert checked is not None
    assert sorted(call.args[0] for call in spy.call_args_list) == [1235, 5001]
    assert row_path.call_count == 0
    assert isinstance(checked.spool, ParquetSpool)
    checked.spool.close()


def test_subscription_names_go_through_the_naming_validator(tmp_path: Path):
    from airflow_provider_hubcomm.batch.preflight import NamingValidator
    from airflow_provider_hubcomm.hooks._catalog import Subscription, SubscriptionCatalog

    def catalog() -> SubscriptionCatalog:
        return SubscriptionCatalog([Subscription(101, "Newsletter", 0, True), Subscription(102, "News", 0, True)], [0])

    rows = [
        {
            "email": f"c{i}@example.com",
            "sub": [" newsletter ", "102", "News", "101"][i % 4],
            "statusState": "SUBSCRIBED",
        }
        for i in range(500)
    ]
    path = write_jsonl(tmp_path / "in.jsonl", rows)
    results = [
        run(
            path,
            {},
            stop=False,
            mode=mode,
            validator=NamingValidator({"email": "subscriberIdString", "sub": "subscriptionId"}, None, "fail", catalog),
        )
        for mode in ("rows", "jsonl")
    ]
    assert (results[0].pop("kind"), results[1].pop("kind")) == (Spool.__name__, ParquetSpool.__name__)
    assert results[0] == results[1]
    assert {write.subscription_id for _, write, _ in results[0]["records"]} == {101, 102}


def test_the_engine_takes_the_vectorised_pass_for_json_lines(tmp_path: Path, mocker):
    from airflow_provider_hubcomm.batch import jsonbatches
    from tests.batch._mini import MiniHubSpot, rows
    from tests.batch._mini import run as run_engine

    spy = mocker.spy(jsonbatches, "validate_jsonl")
    data = rows(30, state="SUBSCRIBED")
    path = write_jsonl(tmp_path / "in.ndjson", data)
    from_file, from_rows = MiniHubSpot(), MiniHubSpot()
    summary = run_engine(from_file, path, tmp_path, batch_size=7)
    assert spy.call_count == 1
    assert isinstance(spy.spy_return.spool, ParquetSpool)
    expected = run_engine(from_rows, data, tmp_path, batch_size=7)
    keys = ("rows_read", "written", "skipped", "failed", "requests")
    assert [summary[k] for k in keys] == [expected[k] for k in keys]
    assert from_file.state == from_rows.state
    flat = [
        sorted(json.dumps(w, sort_keys=True) for chunk in api.writes for w in chunk) for api in (from_file, from_rows)
    ]
    assert flat[0] == flat[1]  # the order of the writes is the Parquet spool's (as for a Parquet or CSV input)
    assert summary["written"] == 30


@pytest.mark.parametrize("kind", ["clean", "invalid-row", "bad-line"])
def test_partitions_match_the_row_filter(tmp_path: Path, kind: str):
    rows = valid_rows(6000, {"extra_columns": "ignore"})
    body = write_jsonl(tmp_path / "ok.jsonl", rows).read_text()
    body += {"clean": "", "invalid-row": '{"subscriberIdString": "z@x.io"}\n', "bad-line": "null\n"}[kind]
    path = write_raw(tmp_path / "in.jsonl", body)

    def partitioned(partition: int, vectorised: bool) -> Any:
        part = PartitionFilter(partition, 3, "subscriberIdString")
        validator = RowValidator(extra_columns="ignore")
        try:
            if vectorised:
                checked = validate_jsonl(path, validator, stop_at_invalid=False, partition=part, chunk_bytes=CHUNK)
            else:
                checked = validate_rows(part.filter(iter_rows(path)), validator, stop_at_invalid=False)
        except HubCommValidationError as exc:
            return str(exc), part.rows_outside
        assert checked is not None
        assert checked.spool is not None
        if kind == "clean":
            assert isinstance(checked.spool, ParquetSpool if vectorised else Spool)
        records = list(checked.spool.records())
        checked.spool.close()
        return (checked.rows_read, checked.valid, checked.invalid, records), part.rows_outside

    for partition in range(3):
        assert partitioned(partition, True) == partitioned(partition, False)


def test_a_column_map_key_null_in_a_partition_is_resolved_by_the_row_path(tmp_path: Path):
    """Arrow cannot tell a null key from an absent one: a mapped key with no value in the partition falls back."""
    rows = [
        {"email": f"c{i}@example.com", "subscriptionId": 1, "statusState": "SUBSCRIBED", "why": None, "basis": None}
        for i in range(300)
    ]
    path = write_jsonl(tmp_path / "in.jsonl", rows)  # every third row has no "why" / "basis" key at all
    args = {"column_map": {"email": "subscriberIdString", "why": "legalBasisExplanation", "basis": "legalBasis"}}
    for partition in range(2):
        results = []
        for mode in ("rows", "jsonl"):
            part = PartitionFilter(partition, 2, "email")
            validator = RowValidator(**args)
            if mode == "rows":
                checked = validate_rows(part.filter(iter_rows(path)), validator, stop_at_invalid=True)
            else:
                found = validate_jsonl(path, validator, stop_at_invalid=True, partition=part, chunk_bytes=CHUNK)
                assert found is not None
                checked = found
            assert isinstance(checked.spool, Spool)  # the row path both times
            results.append((checked.rows_read, checked.valid, sorted(checked.columns_unseen), part.rows_outside))
            checked.spool.close()
        assert results[0] == results[1]


def test_a_file_url_and_an_object_storage_path_take_the_vectorised_pass(tmp_path: Path):
    from airflow.sdk import ObjectStoragePath

    path = write_jsonl(tmp_path / "in.jsonl.gz", valid_rows(600, {}))
    expected = run(path, {}, stop=False, mode="rows")
    expected.pop("kind")
    for source in (f"file://{path}", ObjectStoragePath(f"file://{path}")):
        for mode in ("batches", "jsonl"):
            got = run(source, {}, stop=False, mode=mode)
            assert got.pop("kind") == ParquetSpool.__name__
            assert got == expected


# -- what the vectorised reader cannot reproduce: the row path reads the file, with its own result or error --------

GOOD = ROW + "\n"
FALLBACKS: dict[str, str | bytes] = {
    "invalid-json": GOOD + '{"subscriberIdString": "b@x.io",}\n' + GOOD,
    "truncated-line": GOOD + '{"subscriberIdString": "b@x.io"',
    "null-line": GOOD + "null\n" + GOOD,
    "null-only": "null\n",
    "number-line": "5\n" + GOOD,
    "string-line": GOOD + '"x"\n',
    "array-line": "[" + ROW + "]\n",
    "two-objects-on-a-line": GOOD + ROW + ROW + "\n",
    "two-objects-and-a-blank": GOOD + ROW + " " + ROW + "\n",
    "object-over-two-lines": '{"subscriberIdString": "a@x.io",\n"subscriptionId": 1, "statusState": "SUBSCRIBED"}\n',
    "carriage-return-between": ROW + "\r" + ROW + "\n",
    "mixed-types": GOOD + ROW.replace("1,", '"1",') + "\n",
    "int-past-int64": GOOD + ROW.replace(" 1,", " 9223372036854775808,") + "\n",
    "float-id": ROW.replace(" 1,", " 1.0,") + "\n",
    "exponent-id": ROW.replace(" 1,", " 1e2,") + "\n",
    "boolean-state": ROW.replace('"SUBSCRIBED"', "true") + "\n",
    "nested-extra": ROW[:-1] + ', "note": {"a": 1}}\n',
    "list-extra": ROW[:-1] + ', "note": [1, "x"]}\n',
    "huge-float-extra": ROW[:-1] + ', "note": 1e400}\n',
    "duplicate-key": ROW[:-1] + ', "statusState": "UNSUBSCRIBED"}\n',
    "duplicate-key-escaped": ROW[:-1] + ', "status\\u0053tate": "UNSUBSCRIBED"}\n',
    "lone-surrogate": ROW.replace("a@x.io", "a\\ud800@x.io") + "\n",
    "vertical-tab-line": GOOD + "\x0b\n" + GOOD,
    "form-feed-around": GOOD + ROW + "\x0c\n",
    "bom-on-a-later-line": GOOD + "\ufeff" + GOOD,
    "bom-then-blank": "\ufeff\n" + GOOD,
    "invalid-utf8": GOOD.encode() + ROW.replace("a@x.io", "a\xff").encode("latin-1") + b"\n",
    "encoded-surrogate": GOOD.encode() + ROW.encode().replace(b"a@x.io", b"a\xed\xa0\x80@x.io") + b"\n",
    "invalid-row": GOOD + ROW.replace("a@x.io", "nobody") + "\n",
    "timestamp-explanation": ROW[:-1] + ', "legalBasis": "LEGITIMATE_INTEREST_CLIENT", "legalBasisExplanation": '
    '"2024-01-01"}\n',
}


#: Fallbacks decided by the validation, not the reader: the rows are read alike, one is invalid.
INVALID_ROWS = {"invalid-row", "boolean-state"}


@pytest.mark.parametrize("suffix", [".jsonl", ".jsonl.gz"])
@pytest.mark.parametrize("name", list(FALLBACKS))
def test_what_arrow_cannot_read_alike_takes_the_row_path(tmp_path: Path, name: str, suffix: str):
    path = write_raw(tmp_path / f"in{suffix}", FALLBACKS[name])
    if name not in INVALID_ROWS:
        with pytest.raises(JsonFallback):
            run(path, {"extra_columns": "ignore"}, stop=False, mode="batches")
    for stop in (False, True):
        for args in ({}, {"extra_columns": "ignore"}):
            same_by_fallback(path, args, stop=stop)


@pytest.mark.parametrize("body", ["", "\n  \n\r\n"], ids=["empty", "blank-lines"])
def test_files_without_rows_match(tmp_path: Path, body: str):
    path = write_raw(tmp_path / "in.jsonl", body)
    expected, got = outcome(path, {}, mode="rows"), outcome(path, {}, mode="jsonl")
    expected.pop("kind")
    got.pop("kind")
    assert got == expected
    assert got["counts"] == (0, 0, 0)


def test_the_errors_are_the_row_paths_own(tmp_path: Path):
    path = write_raw(tmp_path / "in.jsonl", GOOD * 3 + "null\n")
    assert outcome(path, {}, mode="jsonl") == f"{path}, line 4: expected a JSON object, got null"
    path = write_raw(tmp_path / "two.jsonl", GOOD + "\n" + ROW + ROW + "\n")
    message = outcome(path, {}, mode="jsonl")
    assert message == outcome(path, {}, mode="rows")
    assert message.startswith(f"{path}, line 3: not valid JSON: Extra data")


def test_broken_gzip_takes_the_row_path(tmp_path: Path):
    truncated = tmp_path / "cut.jsonl.gz"
    truncated.write_bytes(gzip.compress((GOOD * 3000).encode())[:-40])
    with pytest.raises(JsonFallback):
        run(truncated, {}, stop=False, mode="batches", chunk_bytes=1 << 20)
    assert outcome(truncated, {}, mode="jsonl") == outcome(truncated, {}, mode="rows")
    assert "corrupt or truncated gzip data" in outcome(truncated, {}, mode="rows")


def test_a_late_fallback_makes_each_invalid_row_callback_once(tmp_path: Path):
    """Clean chunks first, an invalid row near the end: the callbacks are the row path's, made once."""
    rows = valid_rows(3000, {})
    rows[-3]["statusState"] = "maybe"
    path = write_jsonl(tmp_path / "in.jsonl", rows)
    rowwise = same_by_fallback(path, {})
    assert [number for number, _, _ in rowwise["invalid"]] == [len(rows) - 2]


def test_count_objects():
    assert count_objects(b'{"a":1}\n{}\n') == 2
    assert count_objects(b'{"a":1}\r\n{}\r\n') == 2
    assert count_objects(b' {"a":1} \n\n\t\r\n{"b": "}"}\r\n') == 2
    assert count_objects(b"\n \n") == 0
    for bad in (b"null\n", b'{"a":1}\n[]\n', b'{"a":\n1}\n', b"\x0b\n", b'{"a":"\xff"}\n', b"\xef\xbb\xbf{}\n"):
        with pytest.raises(JsonFallback):
            count_objects(bad)


def test_only_json_lines_files_and_only_with_pyarrow(tmp_path: Path, monkeypatch):
    path = write_raw(tmp_path / "in.jsonl", GOOD)
    assert jsonl_batches([{"subscriberIdString": "a@x.io"}]) is None
    assert jsonl_batches(write_raw(tmp_path / "in.json", "[" + ROW + "]")) is None  # a JSON array: the row path
    assert jsonl_batches(write_raw(tmp_path / "in.csv", "a\n1\n")) is None
    assert jsonl_batches(write_raw(tmp_path / "in.txt", GOOD), file_format="ndjson") is not None
    assert validate_jsonl([{"subscriberIdString": "a@x.io"}], RowValidator(), stop_at_invalid=True) is None
    monkeypatch.setitem(sys.modules, "pyarrow.json", None)
    assert jsonl_batches(path) is None
