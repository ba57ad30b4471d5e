"""Parquet in and out of the vectorised validation pass: the input's record batches, the spool of valid rows.

:func:`parquet_batches` reads a Parquet file input (local, URL or ``ObjectStoragePath``) one record batch at a
time for :func:`~airflow_provider_hubcomm.batch.columnar.validate_parquet`; :class:`ParquetSpool` holds the
rows that pass, in input order: the sync diff reads it as it is (DuckDB), the preflight and the send pass read
it back as :class:`~airflow_provider_hubcomm.batch.rows.WriteRow` s, with no Python code per row.
"""

from __future__ import annotations

import csv
import functools
import gc
import importlib
import os
import shutil
from collections.abc import Callable, Iterator
from itertools import repeat
from pathlib import Path
from typing import IO, Any, Final

from airflow_provider_hubcomm.batch.files import (
    HeaderCheck,
    detect_format,
    fail,
    is_storage_path,
    open_input,
    require_pyarrow,
    resolve_file,
)
from airflow_provider_hubcomm.batch.rows import WriteRow
from airflow_provider_hubcomm.workdirs import private_folder

__all__ = ["COLUMNAR_BATCH_ROWS", "READ_ROWS", "ParquetSpool", "parquet_batches", "read_batches"]

#: Parquet rows per record batch of the vectorised validation pass (:func:`parquet_batches`).
COLUMNAR_BATCH_ROWS: Final = 65536
#: Rows read back from the spool at a time.
READ_ROWS: Final = 8192
#: The spool's columns a :class:`WriteRow` is made of, after ``r``.
_FIELDS: Final = ("r", "sb", "s", "st", "ch", "lb", "ex")
#: Text columns read back as dictionaries: enums (a handful of values), so each value is one shared object
#: instead of a new string per row. Not the explanation: free text, and a dictionary of unique values costs
#: 4.7x a plain read (measured: 1M rows, 2.88 s against 0.62 s).
_WORDS: Final = frozenset({"st", "ch", "lb"})
#: ``_make_row(fields)``: a :class:`WriteRow` from a tuple of its fields, in C.
_make_row: Final = functools.partial(tuple.__new__, WriteRow)


def parquet_batches(
    inputs: Any,
    *,
    file_format: str | None = None,
    on_header: HeaderCheck | None = None,
    batch_rows: int = COLUMNAR_BATCH_ROWS,
) -> Iterator[tuple[int, Any]] | None:
    """Return the record batches of a Parquet file input, or ``None`` when ``inputs`` is not one.

    Each item is ``(row number of the batch's first row, pyarrow.RecordBatch)``; row numbers are those
    :func:`~airflow_provider_hubcomm.batch.sources.iter_rows` gives the same rows. For the vectorised pass
    (:mod:`~airflow_provider_hubcomm.batch.columnar`).

    :param inputs: what the run was given.
    :param file_format: as for :func:`~airflow_provider_hubcomm.batch.sources.iter_rows`.
    :param on_header: called with the file name and the schema's column names before the first batch.
    :param batch_rows: rows per record batch.
    :raises HubCommValidationError: as ``iter_rows`` does (a missing file, an unknown format, a bad file).
    :raises HubCommConfigError: pyarrow is not installed.
    """
    if not (isinstance(inputs, str | os.PathLike) or is_storage_path(inputs)):
        return None
    name, opener, local, base = resolve_file(inputs)
    fmt, _ = detect_format(name, base, file_format)
    if fmt != "parquet":
        return None
    require_pyarrow()
    return read_batches(name, opener, local, on_header, batch_rows)


def read_batches(
    name: str, opener: Callable[[], IO[bytes]], local: str | None, on_header: HeaderCheck | None, batch_rows: int
) -> Iterator[tuple[int, Any]]:
    """Yield ``(row number of the batch's first row, record batch)`` of a Parquet file, ``batch_rows`` at a time.

    The one Parquet reader: of the vectorised pass (:func:`parquet_batches`) and, turned into rows, of
    :func:`~airflow_provider_hubcomm.batch.sources.iter_rows`.

    :param name: the file as shown.
    :param opener: opens it.
    :param local: its local path (read directly), or ``None`` (read through the opened stream).
    :param on_header: called with the file name and the schema's column names before the first batch.
    :param batch_rows: rows per record batch.
    :raises HubCommValidationError: not a valid Parquet file (naming the rows read before the problem).
    """
    pa = importlib.import_module("pyarrow")
    pq = importlib.import_module("pyarrow.parquet")
    number = 0
    with open_input(name, opener) as raw:
        try:
            parquet = pq.ParquetFile(local if local is not None else raw)
            if on_header is not None:
                on_header(name, list(parquet.schema_arrow.names))
            for batch in parquet.iter_batches(batch_size=batch_rows):
                yield number + 1, batch
                number += batch.num_rows
        except pa.ArrowException as exc:
            where = "" if number == 0 else f"after row {number}"
            raise fail(name, where, f"not a valid Parquet file: {exc}") from None


def _spool_schema(pa: Any) -> Any:
    return pa.schema(
        [
            ("r", pa.int64()),
            ("k", pa.string()),
            ("sb", pa.string()),
            ("s", pa.int64()),
            ("st", pa.string()),
            ("ch", pa.string()),
            ("lb", pa.string()),
            ("ex", pa.string()),
        ]
    )


def _first_lines(reader: Iterator[list[str]], n: int) -> list[list[str]]:
    """Return the first ``n`` lines of a CSV reader (fewer at its end)."""
    return [line for line, _ in zip(reader, range(n), strict=False)]


def _values(column: Any) -> list[Any]:
    """Return a column as a Python list; each distinct value of a dictionary column is one shared object."""
    if not hasattr(column, "dictionary"):
        return column.to_pylist()
    words = column.dictionary.to_pylist()
    indices = column.indices
    if column.null_count:
        words.append(None)
        indices = importlib.import_module("pyarrow.compute").fill_null(indices, len(words) - 1)
    return list(map(words.__getitem__, indices.to_pylist()))


def _read(path: Path, columns: tuple[str, ...]) -> Iterator[Any]:
    """Yield, per record batch of a spool file: the row numbers, the :class:`WriteRow` s, then any further column.

    Columns become Python lists in C (``to_pylist``) and rows are zipped in C: no Python code per row.
    """
    pq = importlib.import_module("pyarrow.parquet")
    words = [name for name in columns if name in _WORDS]
    for batch in pq.ParquetFile(str(path), read_dictionary=words).iter_batches(
        batch_size=READ_ROWS, columns=list(columns)
    ):
        # Half a million new objects that hold no reference cycle: the cyclic collector, which would run
        # every few hundred of them and walk them all (three quarters of the read's CPU), is held off.
        collecting = gc.isenabled()
        gc.disable()
        try:
            values = [_values(batch.column(i)) for i in range(len(columns))]
            writes = list(map(_make_row, zip(*values[1:7], strict=True)))
        finally:
            if collecting:
                gc.enable()
        yield values[0], writes, *values[7:]


def _groups(folder: Path, rows_sql: str) -> dict[tuple[int, str], list[Any]]:
    """Count rows per (subscription id, state) with DuckDB; each group with its first row as a :class:`WriteRow`.

    :param folder: where DuckDB may spill.
    :param rows_sql: SQL of the rows to count (columns ``r sb s st ch lb ex``).
    :return: ``(subscription id, state) -> [first row, count]``, the shape
        :func:`~airflow_provider_hubcomm.batch.preflight.check_spool` builds when it reads the rows itself.
    """
    from airflow_provider_hubcomm.sync.duck import connect

    con = connect(folder)
    try:
        found = con.execute(
            f"""SELECT s, st, count(*), arg_min(sb, r), arg_min(ch, r), arg_min(lb, r), arg_min(ex, r)
                FROM ({rows_sql}) GROUP BY s, st ORDER BY min(r)"""
        ).fetchall()
    finally:
        con.close()
    return {(sid, st): [_make_row((sb, sid, st, ch, lb, ex)), n] for sid, st, n, sb, ch, lb, ex in found}


class ParquetSpool:
    """The valid rows of a Parquet input, in input order, in a Parquet file of the run's own (0700) folder.

    Columns: ``r`` row number, ``k`` key (the subscriber lower-cased), ``sb`` the subscriber as given, ``s``
    subscription id, ``st`` ``ch`` ``lb`` ``ex`` the fields. What the sync diff reads directly
    (:meth:`rows_sql`), and what the preflight and the send pass read back (:meth:`records`).

    :param directory: where to create the spool's folder (``None``: the system default).
    """

    def __init__(self, directory: str | None = None) -> None:
        pa = importlib.import_module("pyarrow")
        self.folder = private_folder("hubcomm-spool-", directory)
        self.path = self.folder / "rows.parquet"
        self.schema = _spool_schema(pa)
        self.rows = 0
        self._superseded: Path | None = None

    def rows_sql(self) -> str:
        """Return DuckDB SQL of the rows (columns ``r k sb s st ch lb ex``)."""
        from airflow_provider_hubcomm.sync.duck import q

        return f"SELECT * FROM read_parquet({q(self.path)})"

    def _duplicates(self) -> Path:
        """Write (once) the row numbers of the superseded duplicates, in order: exact keys, last row wins."""
        if self._superseded is None:
            from airflow_provider_hubcomm.sync.duck import connect, q

            out = self.folder / "superseded.csv"
            con = connect(self.folder)
            try:
                con.execute(
                    f"""COPY (
                        WITH src AS ({self.rows_sql()}),
                        rep AS (SELECT k, s, max(r) AS m FROM src GROUP BY k, s HAVING count(*) > 1)
                        SELECT i.r, 'd' AS v FROM src i JOIN rep d ON d.k = i.k AND d.s = i.s WHERE i.r <> d.m
                        ORDER BY i.r
                    ) TO {q(out)} (FORMAT csv, HEADER false)"""
                )
            finally:
                con.close()
            self._superseded = out
        return self._superseded

    def records(self) -> Iterator[tuple[int, WriteRow, bool]]:
        """Yield ``(row_number, write_row, superseded)`` in input order."""
        with self._duplicates().open(newline="", encoding="utf-8") as fh:
            superseded = [int(line[0]) for line in _first_lines(csv.reader(fh), 1)]
            if not superseded:  # the common case: no key repeats, no check per row
                for numbers, writes in _read(self.path, _FIELDS):
                    yield from zip(numbers, writes, repeat(False))
                return
            fh.seek(0)
            marks = csv.reader(fh)
            line = next(marks, None)
            at = -1 if line is None else int(line[0])
            for numbers, writes in _read(self.path, _FIELDS):
                for row, write in zip(numbers, writes, strict=True):
                    if row == at:
                        yield row, write, True
                        line = next(marks, None)
                        at = -1 if line is None else int(line[0])
                    else:
                        yield row, write, False

    def groups(self) -> dict[tuple[int, str], list[Any]]:
        """Count the rows that are not superseded per (subscription id, state), in DuckDB (for the preflight)."""
        from airflow_provider_hubcomm.sync.duck import q

        kept = (
            f"SELECT * FROM ({self.rows_sql()}) WHERE r NOT IN (SELECT r FROM read_csv({q(self._duplicates())}, "
            "header=false, auto_detect=false, columns={'r': 'BIGINT', 'v': 'VARCHAR'}))"
        )
        return _groups(self.folder, kept)

    def filtered(self, verdicts: Path) -> _Verdicted:
        """Return the rows the sync diff gave a verdict (to send, or a superseded duplicate), read back alone.

        :param verdicts: the diff's verdicts (``row,verdict`` in row order; rows without one are unchanged).
        """
        return _Verdicted(self, verdicts)

    def close(self) -> None:
        """Delete the spool's folder."""
        shutil.rmtree(self.folder, ignore_errors=True)


class _Verdicted:
    """The spool's rows that have a verdict, joined by DuckDB: a run reads back only what it may send."""

    def __init__(self, spool: ParquetSpool, verdicts: Path) -> None:
        self.spool = spool
        self.verdicts = verdicts
        self.rows = spool.rows

    def _join(self, refused: bool) -> Path:
        """Write (once) the spool's rows with a verdict, ``r`` verdicts (``refused``) or the others, in row order."""
        name = "refused.parquet" if refused else "verdicted.parquet"
        out = self.spool.folder / name
        if not out.exists():
            from airflow_provider_hubcomm.sync.duck import connect, q

            con = connect(self.spool.folder)
            try:
                con.execute(
                    f"""COPY (
                        SELECT p.r, p.sb, p.s, p.st, p.ch, p.lb, p.ex, v.v = 'd' AS dup
                        FROM ({self.spool.rows_sql()}) p
                        JOIN read_csv({q(self.verdicts)}, header=false, auto_detect=false,
                                      columns={{'r': 'BIGINT', 'v': 'VARCHAR'}}) v ON v.r = p.r
                        WHERE {"v.v = 'r'" if refused else "v.v <> 'r'"}
                        ORDER BY p.r
                    ) TO {q(out)} (FORMAT parquet, COMPRESSION uncompressed)"""
                )
            finally:
                con.close()
        return out

    def records(self) -> Iterator[tuple[int, WriteRow, bool]]:
        """Yield ``(row_number, write_row, superseded)`` for the rows to send and the superseded ones, in order."""
        for numbers, writes, dup in _read(self._join(False), (*_FIELDS, "dup")):
            yield from zip(numbers, writes, dup, strict=True)

    def groups(self) -> dict[tuple[int, str], list[Any]]:
        """Count the rows to send per (subscription id, state), in DuckDB (for the preflight)."""
        from airflow_provider_hubcomm.sync.duck import q

        return _groups(self.spool.folder, f"SELECT * FROM read_parquet({q(self._join(False))}) WHERE NOT dup")

    def refused(self) -> Iterator[tuple[int, WriteRow]]:
        """Yield ``(row_number, write_row)`` of the rows the guard refused last time, unchanged since."""
        for numbers, writes, _ in _read(self._join(True), (*_FIELDS, "dup")):
            yield from zip(numbers, writes, strict=True)

    def close(self) -> None:
        """Delete the spool's folder."""
        self.spool.close()
