"""The validation pass of a Parquet input, vectorised: whole columns checked at once, Python only for odd rows.

:func:`validate_parquet` is :func:`~airflow_provider_hubcomm.batch.spool.validate_rows` for a Parquet file
(local, URL or ``ObjectStoragePath``), one record batch (65,536 rows) at a time:

1. The rule's common valid shapes are checked on whole columns with ``pyarrow.compute``: an ASCII e-mail
   address without blanks (a strict subset of :data:`~airflow_provider_hubcomm.rules.EMAIL_RE`, so strip and
   lower-casing are plain ASCII), a positive integer or digit-string subscription id, the enum spellings of
   :data:`~airflow_provider_hubcomm.rules.SPELLINGS`, the legal-basis pair and the defaults, the same way
   :meth:`~airflow_provider_hubcomm.batch.rows.RowValidator.validate` does on its fast path.
2. Every row those checks do not accept (an unusual but valid value such as a subscription *name* or a
   non-ASCII address, or an invalid row) goes through the :class:`RowValidator` itself, as a dict exactly as
   :func:`~airflow_provider_hubcomm.batch.sources.iter_rows` would give it: errors, messages, ``on_invalid``
   handling and the rows accepted are the row path's own. Vectorised checks only ever accept rows the row
   path accepts, with the same canonical values (``tests/batch/test_columnar.py`` cross-checks both passes).
3. Valid rows are appended to a Parquet spool (:class:`~airflow_provider_hubcomm.batch.parquet.ParquetSpool`,
   in input order). Duplicates are found
   exactly (full keys) by DuckDB when the rows are read back, or by the sync diff, which reads the spool
   directly (no export, no Python per row); a run with a state reads back only the rows it has to send.

A CSV file goes through the same pass (:func:`~airflow_provider_hubcomm.batch.csvbatches.validate_csv`: its
record batches hold text columns), and so does a JSON lines file
(:func:`~airflow_provider_hubcomm.batch.jsonbatches.validate_jsonl`: each chunk of lines has its own columns,
and the checks follow them). Other inputs (in-memory rows, a JSON array) keep the row path.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Final

from airflow_provider_hubcomm.batch.parquet import ParquetSpool
from airflow_provider_hubcomm.batch.rows import RowError, RowValidator, WriteRow
from airflow_provider_hubcomm.batch.spool import KEEP_COLUMNS, KEEP_ERROR_ROWS, ValidationPass
from airflow_provider_hubcomm.constants import INT64_MAX
from airflow_provider_hubcomm.rules import (
    CHANNEL,
    DEFAULT_CHANNEL,
    EMAIL_MAX_LEN,
    LEGAL_BASIS,
    LEGAL_BASIS_EXPLANATION,
    SPELLINGS,
    STATUS_STATE,
    SUBSCRIBER_ID_STRING,
    SUBSCRIPTION_ID,
)

if TYPE_CHECKING:
    from airflow_provider_hubcomm.sync.partition import PartitionFilter

__all__ = ["DIGITS_FAST", "EMAIL_FAST", "validate_parquet"]

#: An e-mail address the vectorised check accepts: printable ASCII without blanks, one ``@``, a dot in the
#: domain. Every such string fully matches :data:`~airflow_provider_hubcomm.rules.EMAIL_RE` (each class
#: here is a subset of the one there) and is its own ``strip()``; anything else takes the row path.
EMAIL_FAST: Final = r"^[!-?A-~]{1,64}@[!-?A-~]+\.[!--/-?A-~]+$"
#: A subscription id given as text that the vectorised check accepts (18 digits stay below 2**63).
DIGITS_FAST: Final = r"^[0-9]{1,18}$"

InvalidRowHandler = Callable[[int, Mapping[str, Any], list[RowError]], None]


def _modules() -> tuple[Any, Any, Any]:
    """Import pyarrow lazily (an optional dependency without type information)."""
    return (
        importlib.import_module("pyarrow"),
        importlib.import_module("pyarrow.compute"),
        importlib.import_module("pyarrow.parquet"),
    )


class _Checks:
    """The vectorised checks of one validator, applied to one record batch at a time."""

    def __init__(self, validator: RowValidator, names: list[str]) -> None:
        self.pa, self.pc, _ = _modules()
        pa = self.pa
        self.sources = validator.sources
        self.names = set(names)
        defaults = validator.defaults
        self.d_id: int | None = defaults.get(SUBSCRIPTION_ID)
        self.d_state: str | None = defaults.get(STATUS_STATE)
        self.d_channel: str | None = defaults.get(CHANNEL, DEFAULT_CHANNEL)
        self.d_basis: str | None = defaults.get(LEGAL_BASIS)
        self.d_expl: str | None = defaults.get(LEGAL_BASIS_EXPLANATION)
        # A column that is not accepted makes every row an error under extra_columns="fail": the row path says so.
        self.columns_ok = validator.extra_columns == "ignore" or self.names <= set(validator.accepted_columns)
        self.enums = {
            field: (pa.array(list(SPELLINGS[field])), pa.array(list(SPELLINGS[field].values())))
            for field in (STATUS_STATE, CHANNEL, LEGAL_BASIS)
        }

    def column(self, batch: Any, field: str) -> Any:
        """Return the field's column (dictionaries decoded), or ``None`` when no column gives it."""
        source = self.sources.get(field)
        if source is None or source not in self.names:
            return None
        array = batch.column(source)
        if self.pa.types.is_dictionary(array.type):
            array = array.dictionary_decode()
        if self.pa.types.is_null(array.type):
            return None
        return array

    def _is_text(self, array: Any) -> bool:
        types = self.pa.types
        return bool(types.is_string(array.type) or types.is_large_string(array.type))

    def _absent(self, rows: int, default: Any, kind: Any) -> tuple[Any, Any]:
        """Return a field without a column: the default everywhere (not accepted when there is none)."""
        pa = self.pa
        values = pa.nulls(rows, kind) if default is None else pa.repeat(pa.scalar(default, kind), rows)
        return values, pa.repeat(pa.scalar(default is not None), rows)

    def enum(self, array: Any, field: str, default: str | None, rows: int) -> tuple[Any, Any]:
        """Canonical enum values and where they were accepted (a ``None`` cell takes the default)."""
        pa, pc = self.pa, self.pc
        if array is None:
            return self._absent(rows, default, pa.string())
        if not self._is_text(array):
            values, ok = self._absent(rows, default, pa.string())
            return values, pc.and_(ok, pc.is_null(array))
        keys, canonical = self.enums[field]
        values = pc.take(canonical, pc.index_in(array, value_set=keys))
        if default is not None:
            values = pc.if_else(pc.is_null(array), pa.scalar(default, pa.string()), values)
        return values, pc.is_valid(values)

    def subscription_id(self, array: Any, rows: int) -> tuple[Any, Any]:
        """Canonical ids (int64) and where they were accepted."""
        pa, pc = self.pa, self.pc
        if array is None:
            return self._absent(rows, self.d_id, pa.int64())
        types = pa.types
        if types.is_integer(array.type):  # scalars of the column's own type: no cast of a uint64 past int64
            ok = pc.greater(array, pa.scalar(0, array.type))
            if types.is_uint64(array.type):
                ok = pc.and_(ok, pc.less_equal(array, pa.scalar(INT64_MAX, array.type)))
            values = pc.cast(pc.if_else(ok, array, pa.scalar(1, array.type)), pa.int64())
        elif self._is_text(array):
            digits = pc.fill_null(pc.match_substring_regex(array, DIGITS_FAST), False)
            values = pc.cast(pc.if_else(digits, array, "0"), pa.int64())
            ok = pc.and_(digits, pc.greater(values, 0))
        else:  # floats, decimals, booleans: the row path's rules (pydantic's int parser) decide
            values, ok = self._absent(rows, self.d_id, pa.int64())
            return values, pc.and_(ok, pc.is_null(array))
        ok = pc.fill_null(ok, False)
        if self.d_id is not None:
            missing = pc.is_null(array)
            values = pc.if_else(missing, pa.scalar(self.d_id, pa.int64()), values)
            ok = pc.or_(ok, missing)
        return values, ok

    def apply(self, batch: Any) -> tuple[dict[str, Any], Any]:
        """Return the canonical columns of the batch and the mask of the rows they are valid for."""
        pa, pc = self.pa, self.pc
        rows = batch.num_rows
        false = pa.repeat(pa.scalar(False), rows)
        sub = self.column(batch, SUBSCRIBER_ID_STRING)
        if not self.columns_ok or sub is None or not self._is_text(sub):
            return {}, false
        ok = pc.fill_null(
            pc.and_(pc.match_substring_regex(sub, EMAIL_FAST), pc.less_equal(pc.utf8_length(sub), EMAIL_MAX_LEN)),
            False,
        )
        sid, sid_ok = self.subscription_id(self.column(batch, SUBSCRIPTION_ID), rows)
        state, state_ok = self.enum(self.column(batch, STATUS_STATE), STATUS_STATE, self.d_state, rows)
        channel, channel_ok = self.enum(self.column(batch, CHANNEL), CHANNEL, self.d_channel, rows)
        basis_raw = self.column(batch, LEGAL_BASIS)
        expl_raw = self.column(batch, LEGAL_BASIS_EXPLANATION)
        if expl_raw is not None and not self._is_text(expl_raw):
            return {}, false
        basis_null = pa.repeat(pa.scalar(True), rows) if basis_raw is None else pc.is_null(basis_raw)
        expl_null = pa.repeat(pa.scalar(True), rows) if expl_raw is None else pc.is_null(expl_raw)
        neither = pc.and_(basis_null, expl_null)
        basis, _ = self.enum(basis_raw, LEGAL_BASIS, None, rows)
        expl = pa.nulls(rows, pa.string()) if expl_raw is None else pc.cast(expl_raw, pa.string())
        # Given: a non-empty explanation and a basis spelled right. Neither: the defaults' pair (or none).
        given = pc.and_(pc.fill_null(pc.greater(pc.utf8_length(expl), 0), False), pc.is_valid(basis))
        pair_ok = pc.or_(neither, given)
        basis = pc.if_else(neither, pa.scalar(self.d_basis, pa.string()), basis)
        expl = pc.if_else(neither, pa.scalar(self.d_expl, pa.string()), expl)
        for mask in (sid_ok, state_ok, channel_ok, pair_ok):
            ok = pc.and_(ok, mask)
        sub = pc.cast(sub, pa.string())
        columns = {"sb": sub, "s": sid, "st": state, "ch": channel, "lb": basis, "ex": expl}
        return columns, ok


def validate_parquet(
    batches: Iterator[tuple[int, Any]],
    validator: RowValidator,
    *,
    stop_at_invalid: bool,
    on_invalid_row: InvalidRowHandler | None = None,
    partition: PartitionFilter | None = None,
    spool_dir: str | None = None,
) -> ValidationPass:
    """Validate a Parquet (or CSV) input batch by batch; spool the valid rows (see the module's docstring).

    :param batches: ``(first row number, record batch)`` pairs
        (:func:`~airflow_provider_hubcomm.batch.parquet.parquet_batches`,
        :func:`~airflow_provider_hubcomm.batch.csvbatches.csv_batches`,
        :func:`~airflow_provider_hubcomm.batch.jsonbatches.jsonl_batches`); the column names may change from one
        batch to the next.
    :param validator: the row validator (its rules, and the row path for the rows the vectorised checks leave).
    :param stop_at_invalid: after the first invalid row, only validate and count; the spool is then dropped.
    :param on_invalid_row: called with each invalid row and its errors (``on_invalid="skip"``).
    :param partition: keep only this partition's rows (row numbers stay the input's).
    :param spool_dir: where to create the spool's folder.
    """
    pa, pc, pq = _modules()
    result = ValidationPass()
    spool = ParquetSpool(spool_dir)
    writer = pq.ParquetWriter(str(spool.path), spool.schema, compression="snappy")
    validate = validator.validate
    errors = result.errors
    unseen = result.columns_unseen
    unseen.update(validator.column_map)
    checks: _Checks | None = None
    checked_names: list[str] = []
    valid = invalid = 0
    spooling = True
    try:
        for first, batch in batches:
            if checks is None or batch.schema.names != checked_names:  # JSON lines: a chunk's own columns
                checked_names = batch.schema.names
                checks = _Checks(validator, checked_names)
            rows = batch.num_rows
            if rows == 0:
                continue
            numbers = pa.array(range(first, first + rows), pa.int64())
            if partition is not None:
                keep = partition.mask(_raw_values(batch, partition.column))
                batch, numbers = batch.filter(keep), numbers.filter(keep)
                rows = batch.num_rows
                if rows == 0:
                    continue
            if unseen:
                names = batch.schema.names
                if len(result.columns_seen) < KEEP_COLUMNS:
                    result.columns_seen.update(dict.fromkeys(str(n) for n in names[:KEEP_COLUMNS]))
                unseen.difference_update(names)
            columns, ok = checks.apply(batch)
            accepted = pc.sum(ok).as_py() or 0 if columns else 0
            parts = []
            if accepted:
                kept = {name: column.filter(ok) for name, column in columns.items()}
                parts.append(
                    pa.table({"r": numbers.filter(ok), "k": pc.ascii_lower(kept["sb"]), **kept}, schema=spool.schema)
                )
            if accepted < rows:
                odd = pc.invert(ok)
                found: list[tuple[int, WriteRow]] = []
                for number, raw in zip(numbers.filter(odd).to_pylist(), batch.filter(odd).to_pylist(), strict=True):
                    write = validate(number, raw)
                    if isinstance(write, list):
                        invalid += 1
                        if invalid <= KEEP_ERROR_ROWS:
                            errors.extend(write)
                        if on_invalid_row is not None:
                            on_invalid_row(number, raw, write)
                        if stop_at_invalid:
                            spooling = False
                    else:
                        found.append((number, write))
                if found:
                    parts.append(_table(pa, spool.schema, found))
                accepted += len(found)
            valid += accepted
            if spooling and parts:
                table = parts[0] if len(parts) == 1 else pa.concat_tables(parts).sort_by("r")
                writer.write_table(table)
    except BaseException:
        writer.close()
        spool.close()
        raise
    writer.close()
    # Arrow's allocator keeps what the batches used (~400 MB after 100M rows); give it back before DuckDB's diff.
    pa.default_memory_pool().release_unused()
    result.rows_read, result.valid, result.invalid = valid + invalid, valid, invalid
    spool.rows = valid
    if spooling:
        result.spool = spool
    else:
        spool.close()
    return result


def _raw_values(batch: Any, column: str | None) -> list[Any]:
    """Return the raw values of one column as the row path sees them (``None`` everywhere when absent)."""
    if column is None or column not in batch.schema.names:
        return [None] * batch.num_rows
    return list(batch.column(column).to_pylist())


def _table(pa: Any, schema: Any, found: list[tuple[int, WriteRow]]) -> Any:
    """Return the rows the row path accepted as spool rows (the key lower-cased by Python, as there)."""
    columns: dict[str, list[Any]] = {name: [] for name in schema.names}
    for number, (sub, sid, state, channel, basis, expl) in found:
        for name, value in zip(schema.names, (number, sub.lower(), sub, sid, state, channel, basis, expl), strict=True):
            columns[name].append(value)
    return pa.table(columns, schema=schema)
