from __future__ import annotations

import csv
import gzip
import io
import itertools
import json
import sys
import tracemalloc
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_hubcomm.batch import sources
from airflow_provider_hubcomm.batch.rows import RowValidator
from airflow_provider_hubcomm.batch.sources import iter_rows
from airflow_provider_hubcomm.exceptions import HubCommConfigError, HubCommValidationError

HEADER = "subscriberIdString,subscriptionId,statusState\n"
ROWS = [
    {"subscriberIdString": "a@b.co", "subscriptionId": 1, "statusState": "SUBSCRIBED"},
    {"subscriberIdString": "c@d.co", "subscriptionId": 2, "statusState": "UNSUBSCRIBED"},
]


def write(path: Path, data: str | bytes, *, gz: bool = False) -> Path:
    raw = data.encode() if isinstance(data, str) else data
    path.write_bytes(gzip.compress(raw) if gz else raw)
    return path


def jsonl(rows: list[Any]) -> str:
    return "".join(json.dumps(r) + "\n" for r in rows)


def error_of(inputs: Any, **kwargs: Any) -> str:
    with pytest.raises(HubCommValidationError) as info:
        list(iter_rows(inputs, **kwargs))
    return str(info.value)


class CountingStorage:
    """Duck-typed ObjectStoragePath whose stream counts the bytes handed out."""

    protocol = "mem"

    def __init__(self, data: bytes, name: str, url: str | None = None) -> None:
        self.data, self.name, self.read_bytes = data, name, 0
        self.suffix = Path(name).suffix
        self.url = url or f"mem://{name}"

    def __str__(self) -> str:
        return self.url

    def open(self, mode: str) -> io.BufferedReader:
        assert mode == "rb"
        owner = self

        class Raw(io.RawIOBase):
            def __init__(self) -> None:
                self.inner = io.BytesIO(owner.data)

            def readable(self) -> bool:
                return True

            def readinto(self, buffer: Any) -> int:
                chunk = self.inner.read(len(buffer))
                buffer[: len(chunk)] = chunk
                owner.read_bytes += len(chunk)
                return len(chunk)

        return io.BufferedReader(Raw(), buffer_size=8192)


class TestInMemory:
    def test_list_and_tuple_are_numbered_from_one(self):
        assert list(iter_rows(ROWS)) == [(1, ROWS[0]), (2, ROWS[1])]
        assert list(iter_rows(tuple(ROWS))) == [(1, ROWS[0]), (2, ROWS[1])]
        assert list(iter_rows([])) == []

    def test_generator_is_consumed_lazily(self):
        pulled: list[int] = []

        def gen():
            for i in range(1_000_000):
                pulled.append(i)
                yield {"n": i}

        rows = iter_rows(gen())
        assert pulled == []
        first = list(itertools.islice(rows, 3))
        assert [n for n, _ in first] == [1, 2, 3]
        assert pulled == [0, 1, 2]

    def test_any_mapping_is_accepted(self):
        from types import MappingProxyType

        assert list(iter_rows([MappingProxyType({"a": 1})])) == [(1, {"a": 1})]

    def test_non_mapping_row_names_the_row(self):
        assert error_of([{"a": 1}, {"a": 2}, ["a", 3]]) == "inputs row 3: expected a mapping (dict), got list"

    @pytest.mark.parametrize(
        ("inputs", "text"),
        [
            (None, "inputs is None"),
            ({"subscriberIdString": "a@b.co"}, "inputs is a single mapping: pass a list of rows"),
            (b"a,b", "inputs is bytes"),
            (type("DataFrame", (), {"columns": ["a"], "to_dict": None})(), "pass df.to_dict('records')"),
            (42, "inputs must be rows (an iterable of mappings), a file path or a URL; got int"),
        ],
    )
    def test_unusable_inputs_fail_at_the_call(self, inputs, text):
        with pytest.raises(HubCommValidationError, match=text.replace("(", r"\(").replace(")", r"\)")):
            iter_rows(inputs)

    def test_file_format_needs_a_file(self):
        with pytest.raises(HubCommValidationError, match="applies only to file inputs"):
            iter_rows(ROWS, file_format="csv")


class TestPaths:
    def test_missing_path_is_named(self, tmp_path):
        missing = str(tmp_path / "nope.csv")
        with pytest.raises(HubCommValidationError, match="is neither an existing file nor a URL"):
            iter_rows(missing)

    def test_rendered_data_gets_a_hint(self):
        with pytest.raises(HubCommValidationError, match="render_template_as_native_obj=True"):
            iter_rows("[{'subscriberIdString': 'a@b.co'}]")

    def test_directory(self, tmp_path):
        with pytest.raises(HubCommValidationError, match="is a directory"):
            iter_rows(tmp_path)

    def test_pathlike_and_user_home(self, tmp_path, monkeypatch):
        path = write(tmp_path / "x.jsonl", jsonl(ROWS))
        assert [r for _, r in iter_rows(path)] == ROWS
        monkeypatch.setenv("HOME", str(tmp_path))
        assert [r for _, r in iter_rows("~/x.jsonl")] == ROWS

    def test_unknown_suffix_asks_for_file_format(self, tmp_path):
        path = write(tmp_path / "x.txt", HEADER)
        with pytest.raises(HubCommValidationError, match=r"cannot tell the format .* or pass file_format"):
            iter_rows(path)
        assert list(iter_rows(path, file_format="csv")) == []

    def test_bad_file_format(self, tmp_path):
        path = write(tmp_path / "x.csv", HEADER)
        with pytest.raises(HubCommValidationError, match="allowed values: csv, jsonl, json, parquet"):
            iter_rows(path, file_format="xlsx")

    def test_object_storage_path_and_file_url(self, tmp_path):
        from airflow.sdk import ObjectStoragePath

        path = write(tmp_path / "x.csv", HEADER + "a@b.co,1,SUBSCRIBED\n")
        expected = [(1, {"subscriberIdString": "a@b.co", "subscriptionId": "1", "statusState": "SUBSCRIBED"})]
        assert list(iter_rows(ObjectStoragePath(f"file://{path}"))) == expected
        assert list(iter_rows(f"file://{path}")) == expected

    def test_missing_url_fails_when_read(self, tmp_path):
        rows = iter_rows(f"file://{tmp_path}/missing.csv")
        with pytest.raises(HubCommValidationError, match=r"missing\.csv: file not found"):
            next(rows)

    def test_storage_is_streamed(self):
        data = (HEADER + "".join(f"u{i}@b.co,{i + 1},SUBSCRIBED\n" for i in range(100_000))).encode()
        storage = CountingStorage(data, "big.csv")
        rows = iter_rows(storage)
        assert [n for n, _ in itertools.islice(rows, 5)] == [1, 2, 3, 4, 5]
        assert 0 < storage.read_bytes < 64 * 1024 < len(data)

    def test_storage_name_drops_the_query_string(self):
        message = error_of(CountingStorage(b"a,b\n1,2,3\n", "x.csv", url="mem://x.csv?sig=SECRET"))
        assert message == "mem://x.csv, row 1 (line 2): has 3 fields but the header has 2"


class TestCsv:
    def test_values_are_strings_and_empty_cells_none(self, tmp_path):
        path = write(tmp_path / "x.csv", "\ufeffsubscriberIdString, subscriptionId ,legalBasis\na@b.co,7,\n")
        assert list(iter_rows(path)) == [
            (1, {"subscriberIdString": "a@b.co", "subscriptionId": "7", "legalBasis": None})
        ]

    def test_blank_lines_and_quoted_newlines(self, tmp_path):
        body = HEADER + 'a@b.co,1,SUBSCRIBED\n\n"c@d.co",2,"UNSUB\nSCRIBED"\r\ne@f.co,3,x\n'
        rows = list(iter_rows(write(tmp_path / "x.csv", body)))
        assert [n for n, _ in rows] == [1, 2, 3]
        assert rows[1][1]["statusState"] == "UNSUB\nSCRIBED"

    def test_header_only_is_zero_rows(self, tmp_path):
        assert list(iter_rows(write(tmp_path / "x.csv", HEADER))) == []

    def test_empty_file(self, tmp_path):
        assert error_of(write(tmp_path / "x.csv", "")).endswith("x.csv: file is empty: no header row")

    def test_bad_quoting_names_the_line(self, tmp_path):
        body = HEADER + 'a@b.co,1,SUBSCRIBED\nc@d.co,"2"x,SUBSCRIBED\n'
        message = error_of(write(tmp_path / "x.csv", body))
        assert "x.csv, line 3: malformed CSV" in message

    def test_unterminated_quote(self, tmp_path):
        message = error_of(write(tmp_path / "x.csv", HEADER + 'a@b.co,1,"SUBSCRIBED\n'))
        assert "x.csv, line 2: malformed CSV: unexpected end of data" in message

    def test_ragged_row(self, tmp_path):
        message = error_of(write(tmp_path / "x.csv", HEADER + "a@b.co,1,SUBSCRIBED\n\nc@d.co,2\n"))
        assert message.endswith("x.csv, row 2 (line 4): has 2 fields but the header has 3")

    def test_header_problems(self, tmp_path):
        assert "duplicate column(s): a" in error_of(write(tmp_path / "d.csv", "a,b,a\n1,2,3\n"))
        assert "line 1 (header): column(s) 2 have no name" in error_of(write(tmp_path / "e.csv", "a,,c\n"))

    def test_not_utf8(self, tmp_path):
        body = (HEADER + "a@b.co,1,S\n" * 5000).encode() + "é@b.co,1,S\n".encode("latin-1")
        message = error_of(write(tmp_path / "x.csv", body))
        assert message == f"{tmp_path}/x.csv, line 5002: not valid UTF-8 text (invalid continuation byte)"

    def test_not_utf8_json_array(self, tmp_path):
        body = b'[\n{"a": 1},\n{"a": "\xe9"}]'
        message = error_of(write(tmp_path / "x.json.gz", body, gz=True))
        assert message == f"{tmp_path}/x.json.gz, line 3: not valid UTF-8 text (invalid continuation byte)"

    def test_ten_megabyte_field_fails_validation_not_parsing(self, tmp_path):
        body = HEADER + "a@b.co,1,SUBSCRIBED\n" + "x" * 10_000_000 + "@b.co,2,SUBSCRIBED\n"
        rows = list(iter_rows(write(tmp_path / "x.csv", body)))
        assert len(rows) == 2
        errors = RowValidator().validate(*rows[1])
        assert isinstance(errors, list)
        assert errors[0].field == "subscriberIdString"
        assert len(str(errors[0])) < 250

    def test_field_over_the_limit_names_the_line(self, tmp_path, monkeypatch):
        monkeypatch.setattr(sources, "CSV_FIELD_SIZE_LIMIT", 1000)
        previous = csv.field_size_limit(1000)
        try:
            body = HEADER + "a@b.co,1,SUBSCRIBED\n" + "x" * 2000 + ",2,S\n"
            message = error_of(write(tmp_path / "x.csv", body))
        finally:
            csv.field_size_limit(previous)
        assert "x.csv, line 3: malformed CSV: field larger than field limit (1000)" in message

    def test_field_size_limit_is_raised(self, tmp_path):
        previous = csv.field_size_limit(131072)
        try:
            list(iter_rows(write(tmp_path / "x.csv", HEADER)))
            assert csv.field_size_limit() == sources.CSV_FIELD_SIZE_LIMIT
        finally:
            csv.field_size_limit(previous)

    def test_gzip(self, tmp_path):
        path = write(tmp_path / "x.csv.gz", HEADER + "a@b.co,1,SUBSCRIBED\n", gz=True)
        assert next(iter_rows(path))[1]["subscriberIdString"] == "a@b.co"

    def test_gzip_with_format_override(self, tmp_path):
        path = write(tmp_path / "export.gz", HEADER + "a@b.co,1,SUBSCRIBED\n", gz=True)
        assert len(list(iter_rows(path, file_format="csv"))) == 1
        other = write(tmp_path / "export.bin", HEADER + "a@b.co,1,SUBSCRIBED\n", gz=True)
        assert len(list(iter_rows(other, file_format="csv.gz"))) == 1

    def test_not_gzip(self, tmp_path):
        message = error_of(write(tmp_path / "x.csv.gz", HEADER))
        assert message.startswith(f"{tmp_path}/x.csv.gz: corrupt or truncated gzip data (Not a gzipped file")

    def test_truncated_gzip(self, tmp_path):
        data = gzip.compress((HEADER + "a@b.co,1,SUBSCRIBED\n" * 5000).encode())
        message = error_of(write(tmp_path / "x.csv.gz", data[: len(data) // 2]))
        assert "corrupt or truncated gzip data" in message

    def test_streaming_memory_stays_bounded(self, tmp_path):
        path = tmp_path / "big.csv"
        with path.open("w") as handle:
            handle.write(HEADER)
            for i in range(100_000):
                handle.write(f"user{i}@example.com,{i + 1},SUBSCRIBED\n")
        tracemalloc.start()
        try:
            count = sum(1 for _ in iter_rows(path))
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert count == 100_000
        # 100k row dicts would need > 30 MB; streaming keeps a few buffers.
        assert peak < 2 * 2**20, peak


class TestJsonLines:
    def test_objects_and_blank_lines(self, tmp_path):
        path = write(tmp_path / "x.jsonl", jsonl(ROWS[:1]) + "\n   \n" + jsonl(ROWS[1:]))
        assert list(iter_rows(path)) == [(1, ROWS[0]), (2, ROWS[1])]

    def test_ndjson_and_gzip(self, tmp_path):
        assert len(list(iter_rows(write(tmp_path / "x.ndjson", jsonl(ROWS))))) == 2
        assert len(list(iter_rows(write(tmp_path / "x.jsonl.gz", jsonl(ROWS), gz=True)))) == 2
        assert len(list(iter_rows(write(tmp_path / "x.ndjson.gz", jsonl(ROWS), gz=True)))) == 2

    def test_bom_is_accepted(self, tmp_path):
        assert len(list(iter_rows(write(tmp_path / "x.jsonl", "\ufeff" + jsonl(ROWS))))) == 2

    def test_invalid_json_names_the_line(self, tmp_path):
        message = error_of(write(tmp_path / "x.jsonl", jsonl(ROWS) + "\n{'a': 1}\n"))
        assert "x.jsonl, line 4: not valid JSON" in message

    @pytest.mark.parametrize(
        ("line", "kind"), [("[1, 2]", "an array"), ('"x"', "a string"), ("3", "a number"), ("null", "null")]
    )
    def test_non_object_names_the_line(self, tmp_path, line, kind):
        message = error_of(write(tmp_path / "x.jsonl", jsonl(ROWS) + line + "\n"))
        assert message.endswith(f"x.jsonl, line 3: expected a JSON object, got {kind}")

    def test_not_utf8_names_the_line(self, tmp_path):
        message = error_of(write(tmp_path / "x.jsonl", jsonl(ROWS).encode() + b'{"a": "\xff"}\n'))
        assert "x.jsonl, line 3: not valid JSON" in message

    def test_empty_file_is_zero_rows(self, tmp_path):
        assert list(iter_rows(write(tmp_path / "x.jsonl", ""))) == []


class TestJsonArray:
    def test_array_of_objects(self, tmp_path):
        path = write(tmp_path / "x.json", json.dumps(ROWS, indent=2))
        assert list(iter_rows(path)) == [(1, ROWS[0]), (2, ROWS[1])]
        assert list(iter_rows(write(tmp_path / "e.json", " [ ] \n"))) == []

    def test_objects_straddling_chunks(self, tmp_path, monkeypatch):
        monkeypatch.setattr(sources, "JSON_CHUNK_CHARS", 7)
        rows = [{"i": i, "text": "é" * (i % 13), "nested": {"k": [i, {"x": "]"}]}} for i in range(300)]
        path = write(tmp_path / "x.json.gz", json.dumps(rows), gz=True)
        assert [r for _, r in iter_rows(path)] == rows

    def test_is_streamed(self):
        data = json.dumps([{"subscriberIdString": f"u{i}@b.co"} for i in range(100_000)]).encode()
        storage = CountingStorage(data, "big.json")
        assert len(list(itertools.islice(iter_rows(storage), 3))) == 3
        assert storage.read_bytes < len(data) // 2

    @pytest.mark.parametrize(
        ("text", "message"),
        [
            ("", "x.json: file is empty: expected a JSON array of objects"),
            ('{"a": 1}', "x.json, line 1: expected a JSON array of objects (one object per line is .jsonl)"),
            ('[{"a": 1},\n 5]', "x.json, line 2: row 2: expected a JSON object, got a number"),
            ('[{"a": 1},\n\n {"a": }]', "x.json, line 3: row 2 is not valid JSON: Expecting value"),
            ('[{"a": 1}, {"a": 2}', "x.json, line 1: unexpected end of file after row 2: the array is not closed"),
            ('[{"a": 1},]', "x.json, line 1: trailing comma after row 1"),
            ('[{"a": 1} {"a": 2}]', "x.json, line 1: expected ',' or ']' after row 1"),
            ('[{"a": 1}]\n[]', "x.json, line 2: unexpected data after the closing ']' of the array"),
            ('[{"a": 1', "x.json, line 1: row 1 is not valid JSON"),
        ],
    )
    def test_malformed(self, tmp_path, text, message):
        assert error_of(write(tmp_path / "x.json", text)).startswith(f"{tmp_path}/{message}")


class TestParquet:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")

    def table_file(self, path: Path, count: int) -> Path:
        table = self.pa.table(
            {
                "subscriberIdString": [f"u{i}@b.co" for i in range(count)],
                "subscriptionId": list(range(1, count + 1)),
                "legalBasis": [None] * count,
            }
        )
        self.pq.write_table(table, path, row_group_size=4)
        return path

    def test_rows_in_batches_numbered_across_batches(self, tmp_path, monkeypatch):
        monkeypatch.setattr(sources, "PARQUET_BATCH_ROWS", 3)
        rows = list(iter_rows(self.table_file(tmp_path / "x.parquet", 10)))
        assert [n for n, _ in rows] == list(range(1, 11))
        assert rows[9][1] == {"subscriberIdString": "u9@b.co", "subscriptionId": 10, "legalBasis": None}

    def test_object_storage_and_override(self, tmp_path):
        from airflow.sdk import ObjectStoragePath

        path = self.table_file(tmp_path / "x.parquet", 5)
        assert len(list(iter_rows(ObjectStoragePath(f"file://{path}")))) == 5
        other = tmp_path / "x.data"
        other.write_bytes(path.read_bytes())
        assert len(list(iter_rows(other, file_format="parquet"))) == 5

    def test_not_parquet(self, tmp_path):
        message = error_of(write(tmp_path / "x.parquet", "subscriberIdString\na@b.co\n"))
        assert message.startswith(f"{tmp_path / 'x.parquet'}: not a valid Parquet file")

    def test_gzip_parquet_is_refused(self, tmp_path):
        path = write(tmp_path / "x.parquet.gz", b"", gz=True)
        with pytest.raises(HubCommValidationError, match="gzip-compressed Parquet is not supported"):
            iter_rows(path)

    def test_missing_pyarrow(self, tmp_path, monkeypatch):
        path = self.table_file(tmp_path / "x.parquet", 1)
        monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
        with pytest.raises(HubCommConfigError, match=r"pip install 'airflow-provider-hubcomm\[parquet\]'"):
            iter_rows(path)
