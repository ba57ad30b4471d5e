"""The vectorised pass of CSV inputs against the row path: same rows, same errors, same order, same fallbacks."""

from __future__ import annotations

import csv
import gzip
import io
import logging
import sys
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_hubcomm.batch import csvbatches
from airflow_provider_hubcomm.batch.columnar import validate_parquet
from airflow_provider_hubcomm.batch.csvbatches import CsvFallback, csv_batches, validate_csv
from airflow_provider_hubcomm.batch.parquet import ParquetSpool
from airflow_provider_hubcomm.batch.rows import RowValidator
from airflow_provider_hubcomm.batch.sources import iter_rows
from airflow_provider_hubcomm.batch.spool import Spool, validate_rows
from airflow_provider_hubcomm.exceptions import HubCommValidationError
from airflow_provider_hubcomm.sync.partition import PartitionFilter
from tests.batch._passes import VALIDATOR_CONFIGS, clean_rows, pass_outcome
from tests.batch.test_columnar import make_rows

pa = pytest.importorskip("pyarrow")
pytest.importorskip("pyarrow.csv")

HEADER = "subscriberIdString,subscriptionId,statusState"
#: A small block: every file below is read in many record batches.
BLOCK = 4096


def write_csv(path: Path, rows: list[dict[str, Any]], *, quoting: int = csv.QUOTE_MINIMAL, bom: bool = False) -> Path:
    """Write rows as CSV (``None`` is an empty cell); ``.gz`` compresses."""
    columns = list(dict.fromkeys(k for row in rows for k in row))
    text = io.StringIO(newline="")
    writer = csv.writer(text, quoting=quoting)
    writer.writerow(columns)
    for row in rows:
        writer.writerow(["" if row.get(c) is None else row[c] for c in columns])
    data = (("\ufeff" if bom else "") + text.getvalue()).encode("utf-8")
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)
    return path


def write_raw(path: Path, data: str | bytes) -> Path:
    raw = data.encode("utf-8") if isinstance(data, str) else data
    path.write_bytes(gzip.compress(raw) if path.suffix == ".gz" else raw)
    return path


def run(path: Any, validator_args: dict[str, Any], *, stop: bool, mode: str, **kwargs: Any) -> dict[str, Any]:
    """Validate ``path`` one way and return what was seen, comparable across ways.

    ``mode``: ``rows`` (the row path), ``batches`` (the vectorised pass alone: a fallback raises
    :class:`CsvFallback`), ``csv`` (:func:`validate_csv`, the vectorised pass or its fallback).
    """
    validator = RowValidator(**validator_args)
    invalid: list[tuple[int, dict[str, Any], list[str]]] = []

    def on_invalid(number: int, raw: Any, errors: list[Any]) -> None:
        invalid.append((number, dict(raw), [str(e) for e in errors]))

    handler = None if stop else on_invalid
    if mode == "rows":
        checked = validate_rows(iter_rows(path), validator, stop_at_invalid=stop, on_invalid_row=handler)
    elif mode == "batches":
        batches = csv_batches(path, block_size=kwargs.get("block_size", BLOCK))
        assert batches is not None
        checked = validate_parquet(batches, validator, stop_at_invalid=stop, on_invalid_row=handler)
    else:
        checked = validate_csv(path, validator, stop_at_invalid=stop, on_invalid_row=handler, block_size=BLOCK)
        assert checked is not None
    return pass_outcome(checked, invalid, kind=type(checked.spool).__name__)


def same(path: Any, validator_args: dict[str, Any], *, stop: bool = False, **kwargs: Any) -> dict[str, Any]:
    """Assert the vectorised pass (alone and through :func:`validate_csv`) gives what the row path gives."""
    rowwise = run(path, validator_args, stop=stop, mode="rows")
    columnar = run(path, validator_args, stop=stop, mode="batches", **kwargs)
    through = run(path, validator_args, stop=stop, mode="csv")
    if not stop:
        assert rowwise.pop("kind") == Spool.__name__
        assert columnar.pop("kind") == through.pop("kind") == ParquetSpool.__name__
    assert columnar == rowwise
    assert through == rowwise
    return rowwise


def error_of(path: Any, **kwargs: Any) -> str:
    with pytest.raises(HubCommValidationError) as caught:
        run(path, {}, stop=False, **kwargs)
    return str(caught.value)


@pytest.mark.parametrize("quoting", [csv.QUOTE_MINIMAL, csv.QUOTE_ALL], ids=["quoted-when-needed", "all-quoted"])
@pytest.mark.parametrize("validator_args", list(VALIDATOR_CONFIGS.values()), ids=list(VALIDATOR_CONFIGS))
def test_the_vectorised_pass_matches_the_row_path(tmp_path: Path, validator_args: dict[str, Any], quoting: int):
    path = write_csv(tmp_path / "in.csv", make_rows(4000, sid_as_text=True), quoting=quoting)
    rowwise = same(path, validator_args)
    assert rowwise["counts"][0] == 4000
    assert 0 < rowwise["counts"][1] < 4000, "the data must hold valid and invalid rows"


def test_stop_at_invalid_counts_and_errors_match(tmp_path: Path):
    path = write_csv(tmp_path / "in.csv", make_rows(3000, sid_as_text=True))
    rowwise = same(path, {}, stop=True)
    assert rowwise["records"] is None


@pytest.mark.parametrize("suffix", [".csv", ".csv.gz"])
def test_cells_quoting_bom_and_blank_lines_match(tmp_path: Path, suffix: str):
    """Empty cells are None, NULL/NA/nan stay text, quoted commas, quotes and line ends are values."""
    body = (
        "\ufeff subscriberIdString ,subscriptionId,\tstatusState,legalBasis,legalBasisExplanation,note\r\n"
        "a@x.io,1,SUBSCRIBED,,,NULL\r\n"
        "\r\n"
        'b@x.io,"2",subscribed,LEGITIMATE_INTEREST_CLIENT,"asked, at ""checkout""\r\nline two",NA\n'
        "\n\n"
        "c@x.io,3,NULL,,,nan\n"  # an invalid state: "NULL" is text, not a missing cell
        'NA,4,SUBSCRIBED,,,"multi\nline\rnote"\r'
        '"d@x.io",007,"",,,""\n'  # an empty quoted state: None, so invalid without a default
        "e@x.io,,SUBSCRIBED,CONSENT_WITH_NOTICE,,N/A\n"
        'f@x.io,5,UNSUBSCRIBED,,,a"b\n'  # a quote inside an unquoted cell is text
        "g@x.io,6,SUBSCRIBED,,,\u00e9\u2028\x0b\x00\n"
        "h@x.io,7,SUBSCRIBED,,,last"  # no line end at the end
    )
    path = write_raw(tmp_path / f"in{suffix}", body)
    rowwise = same(path, {"extra_columns": "ignore"})
    assert rowwise["counts"] == (9, 5, 4)
    invalid = {number: raw for number, raw, _ in rowwise["invalid"]}
    assert invalid[3]["statusState"] == "NULL"
    assert invalid[3]["note"] == "nan"
    assert invalid[4]["subscriberIdString"] == "NA"
    assert invalid[4]["note"] == "multi\nline\rnote"
    assert invalid[5]["statusState"] is None
    records = {number: write for number, write, _ in rowwise["records"]}
    assert records[1].legal_basis is None
    assert records[2].explanation == 'asked, at "checkout"\r\nline two'
    with_default = same(path, {"extra_columns": "ignore", "defaults": {"statusState": "NOT_SPECIFIED"}})
    assert with_default["counts"] == (9, 6, 3)


def test_column_map_unknown_columns_and_unseen_keys_match(tmp_path: Path):
    rows = [
        {"email": r["subscriberIdString"], "sub": r["subscriptionId"], "statusState": r["statusState"], "extra": i}
        for i, r in enumerate(make_rows(500, sid_as_text=True))
    ]
    path = write_csv(tmp_path / "in.csv", rows)
    args = {"column_map": {"email": "subscriberIdString", "sub": "subscriptionId", "typo": "channel"}}
    for extra in ("fail", "ignore"):
        rowwise = same(path, {**args, "extra_columns": extra})
        assert rowwise["unseen"] == ["typo"]
        assert rowwise["counts"][1] == (0 if extra == "fail" else rowwise["counts"][1])


def test_duplicates_are_exact_and_the_last_row_wins(tmp_path: Path):
    body = f"{HEADER}\na@x.io,1,SUBSCRIBED\nA@X.io,1,UNSUBSCRIBED\na@x.io,2,SUBSCRIBED\nb@x.io,1,SUBSCRIBED\n"
    body += "a@x.io,01,X\na@x.io,1,NOT_SPECIFIED\n"
    rowwise = same(write_raw(tmp_path / "in.csv", body), {}, block_size=64)
    assert [(r, sup) for r, _, sup in rowwise["records"]] == [(1, True), (2, True), (3, False), (4, False), (6, False)]


def test_the_row_path_sees_only_the_rows_the_columns_leave(tmp_path: Path, mocker):
    rows = clean_rows(10_000)
    rows[1234]["subscriberIdString"] = "  padded@example.com"
    rows[4321]["statusState"] = "bogus"
    path = write_csv(tmp_path / "in.csv", rows)
    validator = RowValidator()
    spy = mocker.spy(validator, "validate")
    checked = validate_csv(path, validator, stop_at_invalid=False, block_size=BLOCK)
    assert checked is not None
    assert sorted(call.args[0] for call in spy.call_args_list) == [1235, 4322]
    assert isinstance(checked.spool, ParquetSpool)
    checked.spool.close()


def test_partitions_match_the_row_filter(tmp_path: Path):
    path = write_csv(tmp_path / "in.csv", make_rows(2000, sid_as_text=True))
    bad = write_raw(tmp_path / "bad.csv", path.read_text() + "z@x.io,1\n")  # falls back at the last row
    for source in (path, bad):
        for partition in range(3):
            rowwise = PartitionFilter(partition, 3, "subscriberIdString")
            columnar = PartitionFilter(partition, 3, "subscriberIdString")
            try:
                expected = [n for n, _ in rowwise.filter(iter_rows(source))]
            except HubCommValidationError:
                expected = None
            validator = RowValidator(extra_columns="ignore")
            try:
                checked = validate_csv(source, validator, stop_at_invalid=False, partition=columnar, block_size=BLOCK)
            except HubCommValidationError:
                assert expected is None
            else:
                assert expected is not None
                assert checked is not None
                assert checked.rows_read == len(expected)
                if checked.spool is not None:
                    checked.spool.close()
            assert columnar.rows_outside == rowwise.rows_outside


def test_a_file_url_and_an_object_storage_path_take_the_vectorised_pass(tmp_path: Path):
    from airflow.sdk import ObjectStoragePath

    path = write_csv(tmp_path / "in.csv.gz", make_rows(600, sid_as_text=True))
    expected = run(path, {}, stop=False, mode="rows")
    expected.pop("kind")
    for source in (f"file://{path}", ObjectStoragePath(f"file://{path}")):
        got = run(source, {}, stop=False, mode="batches")
        assert got.pop("kind") == ParquetSpool.__name__
        assert got == expected


# -- what the vectorised reader cannot reproduce: the row path reads the file, with its own errors ---------------

FALLBACKS = {
    "too-few-fields": f"{HEADER}\na@x.io,1,SUBSCRIBED\nb@x.io,2\nc@x.io,3,SUBSCRIBED\n",
    "too-many-fields": f"{HEADER}\na@x.io,1,SUBSCRIBED\nb@x.io,2,SUBSCRIBED,x\n",
    "blanks-only-line": f"{HEADER}\na@x.io,1,SUBSCRIBED\n   \nc@x.io,3,SUBSCRIBED\n",
    "text-after-closing-quote": f'{HEADER}\na@x.io,1,SUBSCRIBED\n"b@x.io"x,2,SUBSCRIBED\n',
    "blank-after-closing-quote": f'{HEADER}\na@x.io,1,"SUBSCRIBED" \n',
    "quote-never-closed": f'{HEADER}\na@x.io,1,SUBSCRIBED\nb@x.io,2,"SUBSCRIBED\nc@x.io,3,SUBSCRIBED\n',
    "quote-opened-at-the-end": f'{HEADER}\na@x.io,1,SUBSCRIBED\nb@x.io,2,"',
    "escaped-quote-then-end": f'{HEADER}\na@x.io,1,"SUB""',
    "lone-carriage-return": f"{HEADER}\na@x.io\r1,SUBSCRIBED\n",
    "duplicate-header": "subscriberIdString,subscriptionId,statusState, statusState\na@x.io,1,SUBSCRIBED,x\n",
    "unnamed-column": "subscriberIdString,subscriptionId,statusState,\na@x.io,1,SUBSCRIBED,x\n",
    "header-on-two-lines": '"subscriber\nIdString",subscriptionId,statusState\na@x.io,1,SUBSCRIBED\n',
    "empty-file": "",
    "blank-first-line": f"\n{HEADER}\na@x.io,1,SUBSCRIBED\n",
}


@pytest.mark.parametrize("suffix", [".csv", ".csv.gz"])
@pytest.mark.parametrize("body", list(FALLBACKS.values()), ids=list(FALLBACKS))
def test_what_arrow_cannot_read_alike_takes_the_row_path(tmp_path: Path, body: str, suffix: str):
    path = write_raw(tmp_path / f"in{suffix}", body)
    try:
        expected: Any = run(path, {"extra_columns": "ignore"}, stop=False, mode="rows")
    except HubCommValidationError as exc:
        expected = str(exc)
    with pytest.raises(CsvFallback):
        run(path, {"extra_columns": "ignore"}, stop=False, mode="batches")
    try:
        got: Any = run(path, {"extra_columns": "ignore"}, stop=False, mode="csv")
    except HubCommValidationError as exc:
        got = str(exc)
    assert got == expected


def test_the_errors_are_the_row_paths_own(tmp_path: Path):
    path = write_raw(tmp_path / "in.csv", f'{HEADER}\na@x.io,1,SUBSCRIBED\n"b@x.io"x,2,SUBSCRIBED\n')
    assert error_of(path, mode="csv") == f"{path}, line 3: malformed CSV: ',' expected after '\"' (row 2)"
    path = write_raw(tmp_path / "few.csv", f"{HEADER}\na@x.io,1,SUBSCRIBED\n\nb@x.io,2\n")
    assert error_of(path, mode="csv") == f"{path}, row 2 (line 4): has 2 fields but the header has 3"


def test_undecodable_bytes_and_broken_gzip_take_the_row_path(tmp_path: Path):
    good = "".join(f"c{i}@x.io,1,SUBSCRIBED\n" for i in range(3000))
    cases = {
        "in.csv": (HEADER + "\n" + good + "d@x.io,1,SUBSCRIBED\xff\n").encode("latin-1"),
        "bad-header.csv": b"subscriberIdString\xff,subscriptionId,statusState\na@x.io,1,SUBSCRIBED\n",
        "bom-after-header.csv": f"{HEADER}\n\ufeffa@x.io,1,SUBSCRIBED\n".encode(),
    }
    for name, data in cases.items():
        path = write_raw(tmp_path / name, data)
        with pytest.raises(CsvFallback):
            run(path, {}, stop=False, mode="batches")
        try:
            expected: Any = run(path, {}, stop=False, mode="rows")
        except HubCommValidationError as exc:
            expected = str(exc)
        try:
            got: Any = run(path, {}, stop=False, mode="csv")
        except HubCommValidationError as exc:
            got = str(exc)
        assert got == expected
    truncated = tmp_path / "cut.csv.gz"
    truncated.write_bytes(gzip.compress((HEADER + "\n" + good).encode())[:-40])
    with pytest.raises(CsvFallback):
        run(truncated, {}, stop=False, mode="batches", block_size=1 << 20)
    assert error_of(truncated, mode="csv") == error_of(truncated, mode="rows")
    assert "corrupt or truncated gzip data" in error_of(truncated, mode="rows")


def test_a_late_fallback_makes_each_invalid_row_callback_once(tmp_path: Path, monkeypatch, caplog):
    """Invalid rows in the first batches, a parse error at the end: the callbacks are the row path's, once."""
    monkeypatch.setattr(csvbatches, "DEFERRED_ROWS", 7)  # spilled to the temporary file too
    body = write_csv(tmp_path / "ok.csv", make_rows(3000, sid_as_text=True)).read_text()
    for tail, late in (("", False), ('"x@x.io"!,1,SUBSCRIBED,,,\n', True)):
        path = write_raw(tmp_path / "in.csv", body + tail)
        outcomes = []
        for vectorised in (False, True):
            calls: list[tuple[int, dict[str, Any], list[str]]] = []

            def on_invalid(number: int, raw: Any, errors: list[Any], calls: list[Any] = calls) -> None:
                calls.append((number, dict(raw), [str(e) for e in errors]))

            caplog.clear()
            with caplog.at_level(logging.INFO, logger=csvbatches.__name__):
                try:
                    if vectorised:
                        checked = validate_csv(
                            path, RowValidator(), stop_at_invalid=False, on_invalid_row=on_invalid, block_size=BLOCK
                        )
                        assert checked is not None
                    else:
                        checked = validate_rows(
                            iter_rows(path), RowValidator(), stop_at_invalid=False, on_invalid_row=on_invalid
                        )
                    assert checked.spool is not None
                    kind = type(checked.spool)
                    checked.spool.close()
                    outcome: Any = kind
                except HubCommValidationError as exc:
                    outcome = str(exc)
            outcomes.append((outcome, calls))
            if vectorised:
                assert ("row by row" in caplog.text) is late
        (rows_outcome, rows_calls), (csv_outcome, csv_calls) = outcomes
        assert len(rows_calls) > 100
        assert csv_calls == rows_calls
        if late:
            assert csv_outcome == rows_outcome
            assert "malformed CSV" in csv_outcome
        else:
            assert (rows_outcome, csv_outcome) == (Spool, ParquetSpool)


def test_a_late_fallback_with_skip_gives_the_row_paths_callbacks(tmp_path: Path):
    """The same with a file the row path accepts (a NUL-free file Arrow refuses: a row larger than a block)."""
    rows = make_rows(2000, sid_as_text=True)
    rows[1900]["legalBasisExplanation"] = "x" * (2 * BLOCK)
    path = write_csv(tmp_path / "in.csv", rows)
    rowwise = run(path, {}, stop=False, mode="rows")
    with pytest.raises(CsvFallback):
        run(path, {}, stop=False, mode="batches")
    through = run(path, {}, stop=False, mode="csv")
    assert through.pop("kind") == rowwise.pop("kind") == Spool.__name__
    assert through == rowwise


def test_on_header_sees_the_stripped_names_and_its_error_stands(tmp_path: Path):
    path = write_raw(tmp_path / "in.csv", "\ufeff subscriberIdString , subscriptionId,statusState\na@x.io,1,X\n")
    seen: list[list[str]] = []
    batches = csv_batches(path, on_header=lambda name, names: seen.append(names))
    assert batches is not None
    assert sum(batch.num_rows for _, batch in batches) == 1
    assert seen == [["subscriberIdString", "subscriptionId", "statusState"]]

    def refuse(name: str, names: list[str]) -> None:
        raise HubCommValidationError(f"{name}: no {names[0]}")

    with pytest.raises(HubCommValidationError, match="no subscriberIdString"):
        validate_csv(path, RowValidator(), stop_at_invalid=True, on_header=refuse)


def test_only_csv_files_and_only_with_pyarrow(tmp_path: Path, monkeypatch):
    path = write_raw(tmp_path / "in.csv", f"{HEADER}\na@x.io,1,SUBSCRIBED\n")
    assert csv_batches([{"subscriberIdString": "a@x.io"}]) is None
    assert csv_batches(write_raw(tmp_path / "in.jsonl", "{}\n")) is None
    assert csv_batches(write_raw(tmp_path / "in.txt", f"{HEADER}\n"), file_format="csv") is not None
    assert validate_csv([{"subscriberIdString": "a@x.io"}], RowValidator(), stop_at_invalid=True) is None
    monkeypatch.setitem(sys.modules, "pyarrow.csv", None)
    assert csv_batches(path) is None


def test_header_only_files_give_no_rows(tmp_path: Path):
    for body in (HEADER, f"{HEADER}\n", f"{HEADER}\r\n\r\n\n"):
        path = write_raw(tmp_path / "in.csv", body)
        assert same(path, {})["counts"] == (0, 0, 0)


def test_a_single_column_file_matches(tmp_path: Path):
    """One column: a quoted empty cell is a row (None), a blank line is none, blanks are text."""
    path = write_raw(tmp_path / "in.csv", 'subscriberIdString\na@x.io\n""\n\n \n"b@x.io"\r\n\tc@x.io\n')
    rowwise = same(path, {"defaults": {"subscriptionId": 1, "statusState": "SUBSCRIBED"}})
    assert rowwise["counts"] == (5, 3, 2)
