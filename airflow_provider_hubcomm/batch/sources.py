"""Where batch-write rows come from: in-memory rows, generators, local files and object storage.

:func:`iter_rows` turns any accepted ``inputs`` into ``(row_number, raw_row)`` pairs, streaming: a file of a
million rows never has a million rows in memory. Row numbers are 1-based, in input order, and count data
records only (a CSV header and blank lines are not rows). Malformed files raise
:class:`~airflow_provider_hubcomm.exceptions.HubCommValidationError` naming the file and the row or line.
"""

from __future__ import annotations

import csv
import functools
import gzip
import importlib
import io
import json
import os
import re
from collections.abc import Callable, Iterator, Mapping
from typing import IO, Any, Final

from airflow_provider_hubcomm.batch.files import FILE_FORMATS, HeaderCheck
from airflow_provider_hubcomm.batch.files import GZIP_ERRORS as _GZIP_ERRORS
from airflow_provider_hubcomm.batch.files import check_names as _check_header
from airflow_provider_hubcomm.batch.files import detect_format as _detect_format
from airflow_provider_hubcomm.batch.files import fail as _fail
from airflow_provider_hubcomm.batch.files import gzip_error as _gzip_error
from airflow_provider_hubcomm.batch.files import is_storage_path as _is_storage_path
from airflow_provider_hubcomm.batch.files import open_input as _open
from airflow_provider_hubcomm.batch.files import require_pyarrow as _require_pyarrow
from airflow_provider_hubcomm.batch.files import resolve_file as _resolve_file
from airflow_provider_hubcomm.exceptions import HubCommValidationError

__all__ = ["CSV_FIELD_SIZE_LIMIT", "FILE_FORMATS", "iter_rows"]

Row = tuple[int, Mapping[str, Any]]

#: A CSV field may be this large (the csv module's default is 128 KiB); a longer value then fails validation.
CSV_FIELD_SIZE_LIMIT: Final = 16 * 1024 * 1024
#: Parquet rows materialised at once (one record batch).
PARQUET_BATCH_ROWS: Final = 8192
#: Characters read at a time from a ``.json`` array.
JSON_CHUNK_CHARS: Final = 1 << 20
_JSON_WS: Final = re.compile(r"[ \t\n\r]*")
#: ``_EMPTY_TO_NONE(cell, cell)``: ``None`` for an empty CSV cell, else the cell (``dict.get`` runs in C).
_EMPTY_TO_NONE: Final = {"": None}.get


def iter_rows(inputs: Any, *, file_format: str | None = None, on_header: HeaderCheck | None = None) -> Iterator[Row]:
    """Yield ``(row_number, raw_row)`` for every input row, streaming.

    Accepted ``inputs``:

    * a list/tuple, or any iterable or generator, of mappings (consumed lazily, one row at a time);
    * a path (``str`` or ``os.PathLike``) to a local file;
    * an Airflow ``ObjectStoragePath`` (or any object with ``open``, ``suffix`` and ``protocol``);
    * a URL string such as ``file:///data/x.csv`` or ``s3://conn@bucket/x.parquet`` (read through
      ``ObjectStoragePath``).

    Files: ``.csv`` (header row required; UTF-8 with optional BOM; an empty cell is ``None``), ``.jsonl`` /
    ``.ndjson`` (one JSON object per line; blank lines skipped), ``.json`` (one array of objects, decoded
    incrementally), ``.parquet`` (pyarrow, read one record batch at a time), and gzip variants
    ``.csv.gz``, ``.jsonl.gz``, ``.ndjson.gz``, ``.json.gz``. ``file_format`` overrides the suffix.

    Argument problems (unknown format, a path that does not exist, a non-iterable) raise at the call; file
    contents are checked while iterating. ``csv.field_size_limit`` is raised process-wide to
    :data:`CSV_FIELD_SIZE_LIMIT`.

    :param inputs: the rows or where to read them.
    :param file_format: ``csv``, ``jsonl``, ``json`` or ``parquet`` (optionally ``+ ".gz"``) to override the
        suffix; only for file inputs.
    :param on_header: called with the file name and its column names (CSV header, Parquet schema) before
        the first row, so a header that can never give a valid row fails at once, even with zero rows.
    :raises HubCommValidationError: on unusable ``inputs`` or a malformed file (naming file and row/line).
    :raises HubCommConfigError: for Parquet without pyarrow installed.
    """
    if inputs is None:
        raise HubCommValidationError("inputs is None: pass rows (a list of dicts), a file path or a URL")
    if isinstance(inputs, str | os.PathLike) or _is_storage_path(inputs):
        name, opener, local, base = _resolve_file(inputs)
        fmt, compressed = _detect_format(name, base, file_format)
        if fmt == "parquet":
            _require_pyarrow()
            return _iter_parquet(name, opener, local, on_header)
        readers: dict[str, Callable[[str, IO[bytes]], Iterator[Row]]] = {
            "csv": functools.partial(_iter_csv, on_header=on_header),
            "jsonl": _iter_jsonl,
            "json": _iter_json_array,
        }
        return _iter_file(name, opener, compressed, readers[fmt])
    if file_format is not None:
        raise HubCommValidationError(f"file_format={file_format!r} applies only to file inputs, not to in-memory rows")
    if isinstance(inputs, Mapping):
        raise HubCommValidationError("inputs is a single mapping: pass a list of rows, e.g. [row]")
    if isinstance(inputs, bytes | bytearray):
        raise HubCommValidationError("inputs is bytes: pass rows, a file path or a URL")
    if hasattr(inputs, "columns") and hasattr(inputs, "to_dict"):
        raise HubCommValidationError("inputs is a data frame: pass df.to_dict('records'), or write it to a file")
    try:
        iterator = iter(inputs)
    except TypeError:
        raise HubCommValidationError(
            f"inputs must be rows (an iterable of mappings), a file path or a URL; got {type(inputs).__name__}"
        ) from None
    return _iter_mappings(iterator)


def _iter_mappings(iterator: Iterator[Any]) -> Iterator[Row]:
    for number, row in enumerate(iterator, 1):
        if type(row) is not dict and not isinstance(row, Mapping):
            raise HubCommValidationError(f"inputs row {number}: expected a mapping (dict), got {type(row).__name__}")
        yield number, row


def _iter_file(
    name: str, opener: Callable[[], IO[bytes]], compressed: bool, reader: Callable[[str, IO[bytes]], Iterator[Row]]
) -> Iterator[Row]:
    try:
        with _open(name, opener) as raw:
            if not compressed:
                yield from reader(name, raw)
                return
            with gzip.GzipFile(fileobj=raw, mode="rb") as unzipped:
                yield from reader(name, unzipped)  # type: ignore[arg-type]
    except UnicodeDecodeError as exc:  # text is decoded in blocks: read again to name the line
        line = _first_non_utf8_line(name, opener, compressed)
        raise _fail(name, f"line {line}" if line else "", f"not valid UTF-8 text ({exc.reason})") from None


def _first_non_utf8_line(name: str, opener: Callable[[], IO[bytes]], compressed: bool) -> int | None:
    with _open(name, opener) as raw:
        stream = gzip.GzipFile(fileobj=raw, mode="rb") if compressed else raw
        for number, line in enumerate(stream, 1):
            try:
                line.decode("utf-8-sig" if number == 1 else "utf-8")
            except UnicodeDecodeError:
                return number
    return None


def _iter_csv(name: str, stream: IO[bytes], on_header: HeaderCheck | None = None) -> Iterator[Row]:
    if csv.field_size_limit() < CSV_FIELD_SIZE_LIMIT:
        csv.field_size_limit(CSV_FIELD_SIZE_LIMIT)
    text = io.TextIOWrapper(stream, encoding="utf-8-sig", newline="")
    reader = csv.reader(text, strict=True)
    number = 0
    start = 1
    try:
        header = next(reader, None)
        if header is None:
            raise _fail(name, "", "file is empty: no header row")
        header = [column.strip() for column in header]
        _check_header(name, header)
        if on_header is not None:
            on_header(name, header)
        width = len(header)
        start = reader.line_num + 1  # where the next record begins (a quoted field may span lines)
        for record in reader:
            start = reader.line_num + 1
            if len(record) != width:
                if not record:  # a blank line
                    continue
                where = f"row {number + 1} (line {reader.line_num})"
                raise _fail(name, where, f"has {len(record)} fields but the header has {width}")
            number += 1
            if "" in record:
                yield number, dict(zip(header, map(_EMPTY_TO_NONE, record, record), strict=False))
            else:
                yield number, dict(zip(header, record, strict=False))
    except csv.Error as exc:
        # Name the line where the bad record starts (an unterminated quote is only noticed at end of file).
        line, row = (start, f" (row {number + 1})") if start > 1 else (reader.line_num, "")
        raise _fail(name, f"line {line}", f"malformed CSV: {exc}{row}") from None
    except _GZIP_ERRORS as exc:
        raise _gzip_error(name, reader.line_num, exc) from None


def _json_type(value: Any) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    return "a number"


def _iter_jsonl(name: str, stream: IO[bytes]) -> Iterator[Row]:
    number = 0
    line_no = 0
    loads = json.loads
    try:
        for line_no, line in enumerate(stream, 1):
            if line.isspace():
                continue
            try:
                obj = loads(line)
            except ValueError as exc:  # JSONDecodeError, or bytes that are not UTF-8
                raise _fail(name, f"line {line_no}", f"not valid JSON: {exc}") from None
            if type(obj) is not dict:
                raise _fail(name, f"line {line_no}", f"expected a JSON object, got {_json_type(obj)}")
            number += 1
            yield number, obj
    except _GZIP_ERRORS as exc:
        raise _gzip_error(name, line_no, exc) from None


def _iter_json_array(name: str, stream: IO[bytes]) -> Iterator[Row]:
    """Decode a JSON array of objects incrementally: at most about one chunk plus one object in memory."""
    text = io.TextIOWrapper(stream, encoding="utf-8-sig")
    decode = json.JSONDecoder().raw_decode
    buf, pos, line, eof, number = "", 0, 1, False, 0
    want = JSON_CHUNK_CHARS

    def more() -> bool:
        """Drop what was consumed, read the next chunk; ``False`` at end of file."""
        nonlocal buf, pos, line, eof
        try:
            chunk = text.read(want)
        except _GZIP_ERRORS as exc:
            raise _gzip_error(name, line + buf.count("\n", 0, pos) - 1, exc) from None
        line += buf.count("\n", 0, pos)
        buf, pos = buf[pos:] + chunk, 0
        eof = not chunk
        return not eof

    def skip_ws() -> str:
        """Return the next non-whitespace character ('' at end of file)."""
        nonlocal pos
        while True:
            pos = _JSON_WS.match(buf, pos).end()  # type: ignore[union-attr]
            if pos < len(buf):
                return buf[pos]
            if not more():
                return ""

    def where(at: int | None = None) -> str:
        return f"line {line + buf.count(chr(10), 0, pos if at is None else at)}"

    char = skip_ws()
    if char == "":
        raise _fail(name, "", "file is empty: expected a JSON array of objects")
    if char != "[":
        raise _fail(name, where(), "expected a JSON array of objects (one object per line is .jsonl)")
    pos += 1
    char = skip_ws()
    while char != "]":
        if char == "":
            raise _fail(name, where(), f"unexpected end of file after row {number}: the array is not closed")
        while True:
            try:
                obj, end = decode(buf, pos)
                break
            except json.JSONDecodeError as exc:
                if not more():
                    raise _fail(name, where(exc.pos), f"row {number + 1} is not valid JSON: {exc.msg}") from None
                want = min(want * 2, 1 << 26)  # a big object: read bigger chunks, so retries stay few
        want = JSON_CHUNK_CHARS
        if type(obj) is not dict:
            raise _fail(name, where(), f"row {number + 1}: expected a JSON object, got {_json_type(obj)}")
        pos = end
        number += 1
        yield number, obj
        char = skip_ws()
        if char == ",":
            pos += 1
            char = skip_ws()
            if char == "]":
                raise _fail(name, where(), f"trailing comma after row {number}")
        elif char not in ("]", ""):
            raise _fail(name, where(), f"expected ',' or ']' after row {number}")
    pos += 1
    if skip_ws():
        raise _fail(name, where(), "unexpected data after the closing ']' of the array")


def _iter_parquet(
    name: str, opener: Callable[[], IO[bytes]], local: str | None, on_header: HeaderCheck | None = None
) -> Iterator[Row]:
    """Yield the rows of the batch reader's record batches (:data:`PARQUET_BATCH_ROWS` rows each), as dicts.

    Opening, the schema's names for ``on_header`` and the errors are
    :func:`~airflow_provider_hubcomm.batch.parquet.read_batches`' (an error names the rows already yielded).
    """
    from airflow_provider_hubcomm.batch.parquet import read_batches

    pa = importlib.import_module("pyarrow")  # an optional dependency without type information
    for first, batch in read_batches(name, opener, local, on_header, PARQUET_BATCH_ROWS):
        try:
            rows = batch.to_pylist()
        except pa.ArrowException as exc:  # as an error of the reader: the rows before this batch were read
            where = "" if first == 1 else f"after row {first - 1}"
            raise _fail(name, where, f"not a valid Parquet file: {exc}") from None
        yield from enumerate(rows, first)
