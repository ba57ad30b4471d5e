"""CSV in the vectorised validation pass: record batches read by ``pyarrow.csv``, the row path as the fallback.

:func:`validate_csv` is :func:`~airflow_provider_hubcomm.batch.spool.validate_rows` over
:func:`~airflow_provider_hubcomm.batch.sources.iter_rows` for a CSV file (plain or ``.gz``; local, URL or
``ObjectStoragePath``), done by :func:`~airflow_provider_hubcomm.batch.columnar.validate_parquet` over the
record batches of :func:`csv_batches`. The results are the row path's exactly: the same rows and row numbers,
the same raw rows (column -> text, an empty cell ``None``; "NULL", "NA" or "nan" stay text), errors and
messages (``tests/batch/test_csvbatches.py`` runs both on the same files).

How the batches match the row path's reader (``csv`` module, ``strict=True``, UTF-8 with an optional BOM):

* The header is the row path's: the first line, decoded and parsed by the ``csv`` module, names stripped,
  checked the same way; ``on_header`` sees the same names. ``pyarrow.csv`` reads what follows, with those
  names, every column as text (never an inferred type), ``null_values=[""]`` only, quoted values that may span
  lines, blank lines skipped.
* What ``pyarrow.csv`` would read differently from the ``csv`` module is caught: a wrong field count, invalid
  UTF-8 and a row larger than a block are Arrow errors; a quoted field closed by something else than a
  delimiter or a line end (``"ab"c``), or not closed at all, which Arrow would take silently, is found by a
  scan of the bytes as Arrow reads them (:class:`_QuoteCheck`, a regular expression: 0.04 s per 80 MB
  without quotes). Anything else unusual (a header on several lines, a BOM after the header, bad gzip data)
  ends the same way: :class:`CsvFallback`.
* On :class:`CsvFallback` (or any Arrow error), :func:`validate_csv` discards the spool and validates the
  whole file again with the row path, which raises today's errors (the file, row and line named) or accepts
  the file. Nothing is sent during validation; the invalid-row callbacks of the vectorised attempt are held
  back (:class:`_Deferred`, spilled to a temporary file past a few thousand rows) and made only once it
  succeeded, so a row's callback is made once either way. ``on_header`` may then be called a second time
  with the same names.
"""

from __future__ import annotations

import contextlib
import csv
import gzip
import importlib
import io
import logging
import pickle
import re
import tempfile
from collections.abc import Callable, Generator, Mapping
from typing import IO, TYPE_CHECKING, Any, Final

from airflow_provider_hubcomm.batch.files import GZIP_ERRORS, HeaderCheck, check_names, open_input, vectorised_input
from airflow_provider_hubcomm.exceptions import HubCommValidationError

if TYPE_CHECKING:
    from airflow_provider_hubcomm.batch.rows import RowError, RowValidator
    from airflow_provider_hubcomm.batch.spool import ValidationPass
    from airflow_provider_hubcomm.sync.partition import PartitionFilter

__all__ = ["CSV_BLOCK_BYTES", "CsvFallback", "csv_batches", "validate_by_rows", "validate_csv"]

log = logging.getLogger(__name__)

#: Bytes per block of ``pyarrow.csv`` (one record batch each: about 60,000 rows of a typical file). A row
#: larger than a block is an Arrow error, so such a file takes the row path.
CSV_BLOCK_BYTES: Final = 4 << 20
#: Invalid-row callbacks held in memory before they are spilled to a temporary file.
DEFERRED_ROWS: Final = 4096
_NEWLINE: Final = re.compile(rb"\r\n|\r|\n")
_BOM: Final = b"\xef\xbb\xbf"
#: A quoted field (``""`` inside is one quote), possessive: no backtracking.
_QUOTED: Final = rb'"[^"]*+(?:""[^"]*+)*+"'
#: Runs of CSV the ``csv`` module reads as ``pyarrow.csv`` does: text without quotes, a quoted field that opens
#: a field and is followed by delimiters or line ends, a quote inside an unquoted field (literal).
_GOOD: Final = re.compile(rb"(?:(?<![^,\r\n])" + _QUOTED + rb'[,\r\n]++|[^"]++|(?<=[^,\r\n])")*+')
#: The same at the end of the file, where a quoted field may end the last line.
_GOOD_AT_END: Final = re.compile(rb"(?:(?<![^,\r\n])" + _QUOTED + rb'(?:[,\r\n]++|\Z)|[^"]++|(?<=[^,\r\n])")*+')
_FIELD: Final = re.compile(_QUOTED)

InvalidRowHandler = Callable[[int, Mapping[str, Any], list["RowError"]], None]


class CsvFallback(Exception):
    """The vectorised reader cannot reproduce the row path exactly for this file: read it row by row."""


def csv_batches(
    inputs: Any,
    *,
    file_format: str | None = None,
    on_header: HeaderCheck | None = None,
    block_size: int = CSV_BLOCK_BYTES,
) -> Generator[tuple[int, Any], None, None] | None:
    """Return the record batches of a CSV file input, or ``None`` when ``inputs`` is not one (or no pyarrow).

    Each item is ``(row number of the batch's first row, pyarrow.RecordBatch)``, every column ``string``; row
    numbers are those :func:`~airflow_provider_hubcomm.batch.sources.iter_rows` gives the same rows. Reading
    raises :class:`CsvFallback` where the row path may read the file differently (see the module's docstring).

    :param inputs: what the run was given.
    :param file_format: as for :func:`~airflow_provider_hubcomm.batch.sources.iter_rows`.
    :param on_header: called with the file name and the header's column names before the first batch.
    :param block_size: bytes per block (and record batch) of ``pyarrow.csv``.
    :raises HubCommValidationError: as ``iter_rows`` does for a missing file or an unknown format.
    """
    found = vectorised_input(inputs, file_format, "csv", "pyarrow.csv")
    if found is None:
        return None
    name, opener, compressed = found
    return _csv_batches(name, opener, compressed, on_header, block_size)


def _csv_batches(
    name: str, opener: Callable[[], IO[bytes]], compressed: bool, on_header: HeaderCheck | None, block_size: int
) -> Generator[tuple[int, Any], None, None]:
    pa = importlib.import_module("pyarrow")
    pcsv = importlib.import_module("pyarrow.csv")
    with contextlib.ExitStack() as stack:
        stream: IO[bytes] = stack.enter_context(open_input(name, opener))
        if compressed:
            stream = stack.enter_context(gzip.GzipFile(fileobj=stream, mode="rb"))  # type: ignore[arg-type]
        header, rest, eof = _read_header(name, stream, block_size)
        if on_header is not None:
            on_header(name, header)
        if eof and not rest.strip(b"\r\n"):
            return  # a header alone (and blank lines): no rows
        checked = _QuoteCheck(stream, rest, eof, 2 * block_size)
        number = 0
        try:
            reader = pcsv.open_csv(
                pa.PythonFile(checked, mode="r"),
                read_options=pcsv.ReadOptions(column_names=header, block_size=block_size),
                parse_options=pcsv.ParseOptions(newlines_in_values=True, ignore_empty_lines=True),
                convert_options=pcsv.ConvertOptions(
                    column_types=dict.fromkeys(header, pa.string()), null_values=[""], strings_can_be_null=True
                ),
            )
            for batch in reader:
                if batch.num_rows:
                    yield number + 1, batch
                    number += batch.num_rows
        except pa.ArrowException as exc:
            raise CsvFallback(f"pyarrow after row {number}: {exc}") from None
        checked.finish()


def _read_header(name: str, stream: IO[bytes], limit: int) -> tuple[list[str], bytes, bool]:
    """Return the header's names (as the row path gives them), the bytes read after its line, and end of file."""
    data, eof = b"", False
    while True:
        try:
            chunk = stream.read(limit)
        except GZIP_ERRORS as exc:
            raise CsvFallback(f"gzip: {exc}") from None
        eof = not chunk
        data += chunk
        found = _NEWLINE.search(data)
        if eof or (found is not None and found.end() < len(data)):
            break
        if len(data) > limit:
            raise CsvFallback("no line end in the first block")
    end = len(data) if found is None else found.end()
    try:
        records = list(csv.reader(io.StringIO(data[:end].decode("utf-8-sig"), newline=""), strict=True))
    except (UnicodeDecodeError, csv.Error) as exc:
        raise CsvFallback(f"header: {exc}") from None
    if len(records) != 1 or not records[0]:
        raise CsvFallback("no header on the first line")
    header = [column.strip() for column in records[0]]
    try:
        check_names(name, header)
    except HubCommValidationError as exc:
        raise CsvFallback(str(exc)) from None
    rest = data[end:]
    if rest.startswith(_BOM):  # Arrow would drop it at the start of its stream; the row path keeps it
        raise CsvFallback("a byte-order mark after the header")
    return header, rest, eof


class _QuoteCheck:
    """A binary stream for Arrow that scans what it hands out for quoting the ``csv`` module refuses.

    ``pyarrow.csv`` takes ``"ab"c`` as ``abc`` and an unclosed quote as running to the end of the file; the
    ``csv`` module (``strict=True``) refuses both. The scan matches complete runs of good CSV (:data:`_GOOD`)
    and carries an unfinished quoted field over to the next read; a quoted field followed by anything else,
    or one still open at the end, raises :class:`CsvFallback` (through Arrow, which re-raises it).

    :param stream: the file's bytes after the header line.
    :param rest: bytes already read after the header line (handed out first).
    :param eof: ``stream`` is at its end.
    :param limit: the longest unfinished quoted field carried over (longer: Arrow refuses the row anyway).
    """

    def __init__(self, stream: IO[bytes], rest: bytes, eof: bool, limit: int) -> None:
        self.stream = stream
        self.pending = rest
        self.eof = eof
        self.limit = limit
        self.previous = b"\n"  # the header's line end: the scan starts at a record's start
        self.carry = b""
        self.closed = False
        self.done = False

    def read(self, size: int = -1) -> bytes:
        """Return the next bytes (the pending ones first), scanned; ``b""`` at the end."""
        if self.pending:
            data, self.pending = self.pending, b""
        elif self.eof:
            data = b""
        else:
            try:
                data = self.stream.read(size if size > 0 else CSV_BLOCK_BYTES)
            except GZIP_ERRORS as exc:
                raise CsvFallback(f"gzip: {exc}") from None
            self.eof = not data
        self._scan(data)
        return data

    def _scan(self, data: bytes) -> None:
        if self.done:
            return
        final = not data
        buf = self.previous + self.carry + data
        end = (_GOOD_AT_END if final else _GOOD).match(buf, 1).end()  # type: ignore[union-attr]
        if end == len(buf):
            self.previous, self.carry = buf[-1:], b""
            self.done = final
            return
        field = _FIELD.match(buf, end)
        if final or (field is not None and field.end() < len(buf)):
            raise CsvFallback("a quoted field not closed, or closed by something else than ',' or a line end")
        self.previous, self.carry = buf[end - 1 : end], buf[end:]
        if len(self.carry) > self.limit:
            raise CsvFallback("a quoted field longer than a block")

    def finish(self) -> None:
        """Check the end of the file was scanned (Arrow reads to the end; this makes sure)."""
        while not self.done:
            self.read()


class _Deferred:
    """Invalid-row callbacks held back until the vectorised attempt succeeded, past a few thousand on disk."""

    def __init__(self) -> None:
        self.block: list[tuple[int, Mapping[str, Any], list[RowError]]] = []
        self.file: IO[bytes] | None = None

    def add(self, number: int, raw: Mapping[str, Any], errors: list[RowError]) -> None:
        """Hold one callback's arguments."""
        self.block.append((number, raw, errors))
        if len(self.block) >= DEFERRED_ROWS:
            if self.file is None:
                self.file = tempfile.TemporaryFile(prefix="hubcomm-invalid-")  # noqa: SIM115
            pickle.dump(self.block, self.file, protocol=pickle.HIGHEST_PROTOCOL)
            self.block = []

    def replay(self, handler: InvalidRowHandler) -> None:
        """Make the held callbacks, in row order."""
        if self.file is not None:
            self.file.seek(0)
            while True:
                try:
                    block = pickle.load(self.file)
                except EOFError:
                    break
                for number, raw, errors in block:
                    handler(number, raw, errors)
        for number, raw, errors in self.block:
            handler(number, raw, errors)

    def close(self) -> None:
        """Drop what is held."""
        self.block = []
        if self.file is not None:
            self.file.close()


def validate_csv(
    inputs: Any,
    validator: RowValidator,
    *,
    stop_at_invalid: bool,
    file_format: str | None = None,
    on_header: HeaderCheck | None = None,
    on_invalid_row: InvalidRowHandler | None = None,
    partition: PartitionFilter | None = None,
    spool_dir: str | None = None,
    block_size: int = CSV_BLOCK_BYTES,
) -> ValidationPass | None:
    """Validate a CSV file input with the vectorised pass, or the row path where only it reads the file right.

    Returns ``None`` when ``inputs`` is not a CSV file (or pyarrow is missing): the caller takes the row path.
    Arguments and result are those of :func:`~airflow_provider_hubcomm.batch.spool.validate_rows` (see the
    module's docstring for the fallback and when the invalid-row callbacks are made).

    :param inputs: what the run was given.
    :param validator: the row validator.
    :param stop_at_invalid: after the first invalid row, only validate and count; the spool is then dropped.
    :param file_format: as for :func:`~airflow_provider_hubcomm.batch.sources.iter_rows`.
    :param on_header: called with the file name and the header's column names before the first row.
    :param on_invalid_row: called with each invalid row and its errors (``on_invalid="skip"``).
    :param partition: keep only this partition's rows (row numbers stay the input's).
    :param spool_dir: where to create the spool.
    :param block_size: bytes per block of ``pyarrow.csv``.
    """
    batches = csv_batches(inputs, file_format=file_format, on_header=on_header, block_size=block_size)
    if batches is None:
        return None
    from airflow_provider_hubcomm.batch.columnar import validate_parquet

    pa = importlib.import_module("pyarrow")
    deferred = _Deferred()
    outside = 0 if partition is None else partition.rows_outside
    try:
        checked = validate_parquet(
            batches,
            validator,
            stop_at_invalid=stop_at_invalid,
            on_invalid_row=None if on_invalid_row is None else deferred.add,
            partition=partition,
            spool_dir=spool_dir,
        )
        if on_invalid_row is not None:
            try:
                deferred.replay(on_invalid_row)
            except BaseException:
                if checked.spool is not None:
                    checked.spool.close()
                raise
        return checked
    except (CsvFallback, pa.ArrowException) as exc:  # nothing was sent, no callback made: start again
        why = exc
    finally:
        batches.close()
        deferred.close()
    log.info("Validating the CSV file row by row (%s).", why)
    return validate_by_rows(
        inputs,
        validator,
        stop_at_invalid=stop_at_invalid,
        file_format=file_format,
        on_header=on_header,
        on_invalid_row=on_invalid_row,
        partition=partition,
        outside=outside,
        spool_dir=spool_dir,
    )


def validate_by_rows(
    inputs: Any,
    validator: RowValidator,
    *,
    stop_at_invalid: bool,
    file_format: str | None,
    on_header: HeaderCheck | None,
    on_invalid_row: InvalidRowHandler | None,
    partition: PartitionFilter | None,
    outside: int,
    spool_dir: str | None,
) -> ValidationPass:
    """Validate the whole file again with the row path (the fallback of a vectorised attempt; nothing was sent).

    :param inputs: what the run was given.
    :param validator: the row validator.
    :param stop_at_invalid: as for :func:`~airflow_provider_hubcomm.batch.spool.validate_rows`.
    :param file_format: as for :func:`~airflow_provider_hubcomm.batch.sources.iter_rows`.
    :param on_header: as for ``iter_rows``.
    :param on_invalid_row: called with each invalid row and its errors.
    :param partition: keep only this partition's rows.
    :param outside: the partition's count of other partitions' rows before the attempt (they are counted again).
    :param spool_dir: where to create the spool.
    """
    from airflow_provider_hubcomm.batch.sources import iter_rows
    from airflow_provider_hubcomm.batch.spool import validate_rows

    rows = iter_rows(inputs, file_format=file_format, on_header=on_header)
    if partition is not None:
        partition.rows_outside = outside
        rows = partition.filter(rows)
    return validate_rows(
        rows, validator, stop_at_invalid=stop_at_invalid, on_invalid_row=on_invalid_row, spool_dir=spool_dir
    )
