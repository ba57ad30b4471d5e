"""JSON lines in the vectorised validation pass: chunks of lines parsed by ``pyarrow.json``, the row path as fallback.

:func:`validate_jsonl` is :func:`~airflow_provider_hubcomm.batch.spool.validate_rows` over
:func:`~airflow_provider_hubcomm.batch.sources.iter_rows` for a JSON lines file (``.jsonl`` / ``.ndjson``,
plain or ``.gz``; local, URL or ``ObjectStoragePath``), done by
:func:`~airflow_provider_hubcomm.batch.columnar.validate_parquet` over the record batches of
:func:`jsonl_batches`. The results are the row path's exactly: the same rows, row numbers, spooled rows,
counts, errors and messages (``tests/batch/test_jsonbatches.py`` runs both on the same files).

The file is read in chunks of whole lines (:data:`JSONL_CHUNK_BYTES`, then the rest of the last line), each
parsed by ``pyarrow.json.read_json`` on its own (its streaming reader fixes the columns and their types at the
first block and refuses anything new later; parsing chunks is also faster). At most one chunk and its table are
in memory. Arrow cannot tell an absent key from an explicit ``null``, nor hold a column of mixed JSON types, and
it parses some lines the ``json`` module refuses (two objects on a line, an object over two lines, a line
``null``, which even crashes it), so the pass is **all or nothing**: the vectorised result is kept only for a
file where it is certainly the row path's, and any of the following raises :class:`JsonFallback` first:

* a line that, blanks (space, tab, carriage return) stripped, is neither empty nor ``{...}`` (checked on the
  bytes before Arrow sees them: counted in C for the usual ``{...}`` lines ending in LF or CRLF), bytes that are
  not UTF-8 (Arrow does not check them), a byte-order mark other than one before the first ``{``;
* Arrow giving another number of rows than the chunk has lines with an object (two objects on a line), or
  any Arrow error (duplicate keys, mixed types in a column, a number out of range, invalid JSON ...);
* a nested value (object or array) in any column, or a column the rules read (``column_map``, the partition
  column) that is not text, an integer (int64: a larger one is a float to Arrow), a boolean or all null;
* **any invalid row**: invalid rows are rare, and the row path then makes the callbacks with its own raw
  dicts, so ``on_invalid_row`` is never called during the attempt and no callback is held back;
* a ``column_map`` key not seen in any row (the message lists the columns seen, in the row path's order).
  With a partition, a key counts as seen only where a row of this partition has a value for it (Arrow
  cannot tell whether a null-valued cell's key was in the row).

Valid but unusual rows (a subscription given by name, a padded or non-ASCII address) go through the
:class:`~airflow_provider_hubcomm.batch.rows.RowValidator` inside ``validate_parquet`` as Parquet's do: their
dict holds every column of the chunk (``None`` where the key was absent), which the validator treats as the
row path's dict (``None`` counts as absent; an unknown column makes a row invalid, hence a fallback).

On :class:`JsonFallback`, :func:`validate_jsonl` discards the spool and validates the whole file again with
the row path, which raises today's errors (the file and line named) or accepts the file. Nothing is sent
during validation.
"""

from __future__ import annotations

import contextlib
import gzip
import importlib
import logging
from collections.abc import Callable, Generator, Iterable, Mapping
from typing import IO, TYPE_CHECKING, Any, Final

from airflow_provider_hubcomm.batch.csvbatches import validate_by_rows
from airflow_provider_hubcomm.batch.files import GZIP_ERRORS, open_input, vectorised_input

if TYPE_CHECKING:
    from airflow_provider_hubcomm.batch.rows import RowError, RowValidator
    from airflow_provider_hubcomm.batch.spool import ValidationPass
    from airflow_provider_hubcomm.sync.partition import PartitionFilter

__all__ = ["JSONL_CHUNK_BYTES", "JsonFallback", "jsonl_batches", "validate_jsonl"]

log = logging.getLogger(__name__)

#: Bytes read per chunk (then the rest of the chunk's last line): one ``read_json`` and one record batch each,
#: about 60,000 rows of a typical file.
JSONL_CHUNK_BYTES: Final = 8 << 20
#: A line longer than this is left to the row path (it would be a chunk of its own).
JSONL_LINE_LIMIT: Final = 64 << 20
_BOM: Final = b"\xef\xbb\xbf"
_BLANKS: Final = b" \t\r"

InvalidRowHandler = Callable[[int, Mapping[str, Any], list["RowError"]], None]


class JsonFallback(Exception):
    """The vectorised reader cannot reproduce the row path exactly for this file: read it row by row."""


def jsonl_batches(
    inputs: Any,
    *,
    file_format: str | None = None,
    read_columns: Iterable[str] = (),
    chunk_bytes: int = JSONL_CHUNK_BYTES,
) -> Generator[tuple[int, Any], None, None] | None:
    """Return the record batches of a JSON lines file input, or ``None`` when ``inputs`` is not one (or no pyarrow).

    Each item is ``(row number of the batch's first row, pyarrow.RecordBatch)``, with the columns of that chunk
    of lines; row numbers are those :func:`~airflow_provider_hubcomm.batch.sources.iter_rows` gives the same
    rows. Reading raises :class:`JsonFallback` where the row path may read the file differently (see the
    module's docstring).

    :param inputs: what the run was given.
    :param file_format: as for :func:`~airflow_provider_hubcomm.batch.sources.iter_rows`.
    :param read_columns: columns whose values the rules read: text, int64, boolean or null only.
    :param chunk_bytes: bytes per chunk of lines (and record batch).
    :raises HubCommValidationError: as ``iter_rows`` does for a missing file or an unknown format.
    """
    found = vectorised_input(inputs, file_format, "jsonl", "pyarrow.json")
    if found is None:
        return None
    name, opener, compressed = found
    return _jsonl_batches(name, opener, compressed, frozenset(read_columns), chunk_bytes)


def _jsonl_batches(
    name: str, opener: Callable[[], IO[bytes]], compressed: bool, read_columns: frozenset[str], chunk_bytes: int
) -> Generator[tuple[int, Any], None, None]:
    pa = importlib.import_module("pyarrow")
    pj = importlib.import_module("pyarrow.json")
    number = 0
    first = True
    with contextlib.ExitStack() as stack:
        stream: IO[bytes] = stack.enter_context(open_input(name, opener))
        if compressed:
            stream = stack.enter_context(gzip.GzipFile(fileobj=stream, mode="rb"))  # type: ignore[arg-type]
        while True:
            chunk = _read_chunk(stream, chunk_bytes)
            if not chunk:
                return
            if first and chunk.startswith(_BOM + b"{"):  # the row path decodes the first line as utf-8-sig
                chunk = chunk[len(_BOM) :]
            first = False
            if not chunk.endswith(b"\n"):  # the last line, without its line end
                chunk += b"\n"
            rows = count_objects(chunk)
            if not rows:
                continue
            try:
                table = pj.read_json(
                    pa.BufferReader(chunk),
                    read_options=pj.ReadOptions(use_threads=False, block_size=len(chunk) + 1),
                )
            except pa.ArrowException as exc:
                raise JsonFallback(f"pyarrow after row {number}: {exc}") from None
            if table.num_rows != rows:
                raise JsonFallback(f"after row {number}: {table.num_rows} objects on {rows} lines")
            _check_types(pa, table.schema, read_columns)
            for batch in table.to_batches():
                if batch.num_rows:
                    yield number + 1, batch
                    number += batch.num_rows


def _read_chunk(stream: IO[bytes], size: int) -> bytes:
    """Return about ``size`` bytes ending at a line end (or the end of the file); ``b""`` at the end."""
    try:
        data = stream.read(size)
        if not data or data.endswith(b"\n"):
            return data
        rest = stream.readline(JSONL_LINE_LIMIT)
    except GZIP_ERRORS as exc:
        raise JsonFallback(f"gzip: {exc}") from None
    if len(rest) == JSONL_LINE_LIMIT and not rest.endswith(b"\n"):
        raise JsonFallback(f"a line longer than {JSONL_LINE_LIMIT} bytes")
    return data + rest


def count_objects(chunk: bytes) -> int:
    """Return how many lines of ``chunk`` hold an object; raise :class:`JsonFallback` at a line of anything else.

    A line with an object is ``{...}`` once the blanks the ``json`` module skips around a value (space, tab,
    carriage return) are stripped; a line of such blanks only is skipped, as by the row path. Together with
    Arrow finding as many objects as lines, this proves each line holds exactly one object: a line that ends
    with ``}`` followed by one that starts with ``{`` cannot be inside one JSON value (a raw line end is invalid
    in a string).

    :param chunk: whole lines, the last one ending with a line end.
    :raises JsonFallback: on a line that is not an object nor blank, or bytes that are not UTF-8.
    """
    if not chunk.isascii():
        try:
            chunk.decode("utf-8")  # Arrow takes any bytes in a string; the row path refuses them
        except UnicodeDecodeError as exc:
            raise JsonFallback(f"not UTF-8: {exc.reason}") from None
    lines = chunk.count(b"\n")
    # The usual shapes, counted in C (~1 ms per MB): every line is "{...}" and ends with LF, or every one with CRLF.
    if chunk.startswith(b"{"):
        for end in (b"}\n", b"}\r\n"):
            if chunk.endswith(end) and chunk.count(end + b"{") == lines - 1:
                return lines
    objects = 0
    for line in chunk.split(b"\n"):
        text = line.strip(_BLANKS)
        if not text:
            continue
        if not (text.startswith(b"{") and text.endswith(b"}")):
            raise JsonFallback("a line that is not a JSON object")
        objects += 1
    return objects


def _check_types(pa: Any, schema: Any, read_columns: frozenset[str]) -> None:
    """Raise :class:`JsonFallback` at a nested column, or a column the rules read holding other values."""
    types = pa.types
    for field in schema:
        kind = field.type
        if types.is_nested(kind):
            raise JsonFallback(f"column {field.name!r} holds objects or arrays")
        if field.name in read_columns and not (
            types.is_string(kind) or types.is_int64(kind) or types.is_boolean(kind) or types.is_null(kind)
        ):
            raise JsonFallback(f"column {field.name!r} is {kind}, not text, an integer or a boolean")


def _refuse_invalid(number: int, raw: Mapping[str, Any], errors: list[RowError]) -> None:
    raise JsonFallback(f"row {number} is invalid")


def _seen_in_partition(
    batches: Iterable[tuple[int, Any]], partition: PartitionFilter, unseen: set[str]
) -> Generator[tuple[int, Any], None, None]:
    """Pass the batches on; drop from ``unseen`` the keys that some row of the partition has a value for."""
    from airflow_provider_hubcomm.sync.partition import PartitionFilter

    pa = importlib.import_module("pyarrow")
    column = partition.column
    probe = PartitionFilter(partition.partition, partition.partitions, column)  # its count is thrown away
    for first, batch in batches:
        names = unseen.intersection(batch.schema.names)
        if names:
            present = column is not None and column in batch.schema.names
            values = batch.column(column).to_pylist() if present else [None] * batch.num_rows
            keep = pa.array(probe.mask(values), pa.bool_())
            for name in names:
                kept = batch.column(name).filter(keep)
                if kept.null_count < len(kept):
                    unseen.discard(name)
        yield first, batch


def validate_jsonl(
    inputs: Any,
    validator: RowValidator,
    *,
    stop_at_invalid: bool,
    file_format: str | None = None,
    on_invalid_row: InvalidRowHandler | None = None,
    partition: PartitionFilter | None = None,
    spool_dir: str | None = None,
    chunk_bytes: int = JSONL_CHUNK_BYTES,
) -> ValidationPass | None:
    """Validate a JSON lines file input with the vectorised pass, or the row path where only it gives the result.

    Returns ``None`` when ``inputs`` is not a JSON lines file (or pyarrow is missing): the caller takes the row
    path. Arguments and result are those of :func:`~airflow_provider_hubcomm.batch.spool.validate_rows` (see
    the module's docstring for the fallback; ``on_invalid_row`` is only ever called by the row path).

    :param inputs: what the run was given.
    :param validator: the row validator.
    :param stop_at_invalid: after the first invalid row, only validate and count; the spool is then dropped.
    :param file_format: as for :func:`~airflow_provider_hubcomm.batch.sources.iter_rows`.
    :param on_invalid_row: called with each invalid row and its errors (``on_invalid="skip"``).
    :param partition: keep only this partition's rows (row numbers stay the input's).
    :param spool_dir: where to create the spool.
    :param chunk_bytes: bytes per chunk of lines.
    """
    read_columns = {source for source in validator.sources.values() if source is not None}
    if partition is not None and partition.column is not None:
        read_columns.add(partition.column)
    batches = jsonl_batches(inputs, file_format=file_format, read_columns=read_columns, chunk_bytes=chunk_bytes)
    if batches is None:
        return None
    from airflow_provider_hubcomm.batch.columnar import validate_parquet

    pa = importlib.import_module("pyarrow")
    outside = 0 if partition is None else partition.rows_outside
    unseen = set(validator.column_map)
    try:
        checked = validate_parquet(
            batches if partition is None or not unseen else _seen_in_partition(batches, partition, unseen),
            validator,
            stop_at_invalid=stop_at_invalid,
            on_invalid_row=_refuse_invalid,
            partition=partition,
            spool_dir=spool_dir,
        )
        if checked.columns_unseen or (partition is not None and unseen):
            if checked.spool is not None:
                checked.spool.close()
            raise JsonFallback("a column_map key that no row has")
        return checked
    except (JsonFallback, pa.ArrowException) as exc:  # nothing was sent, no callback made: start again
        why = exc
    finally:
        batches.close()
    log.info("Validating the JSON lines file row by row (%s).", why)
    return validate_by_rows(
        inputs,
        validator,
        stop_at_invalid=stop_at_invalid,
        file_format=file_format,
        on_header=None,
        on_invalid_row=on_invalid_row,
        partition=partition,
        outside=outside,
        spool_dir=spool_dir,
    )
