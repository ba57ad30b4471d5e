"""The validation pass of a batch run: validate every row once, spool the valid ones, index duplicates.

The input is read exactly once (a generator is consumed once, a file is parsed once). Valid rows are
appended to an anonymous temporary file as pickled blocks of flat values (row number followed by the
:class:`~airflow_provider_hubcomm.batch.rows.WriteRow` fields); the send pass streams that file back. Memory
stays bounded whatever the row count: one block of rows, a fixed 8 MB bitmap and a small dictionary.

Duplicates (same subscriber, case-insensitive, and subscription id; the **last** valid row wins) are found
exactly. A bitmap indexed by the low bits of the key's hash records which hashes were seen; only a row whose
bit is already set (a repeat, or a bitmap collision) is entered in ``last`` (full key -> last row number). In
the send pass a row is superseded when ``last`` holds its key with a different row number. A hash collision
(bitmap or full 64-bit) only costs a dictionary entry: keys are compared whole, so two distinct rows can never
be taken for duplicates. A run with a ``state_path`` de-duplicates again, out of core, in its diff
(:mod:`~airflow_provider_hubcomm.sync.diff`).

The pass also notes which ``column_map`` keys appeared in no row (:attr:`ValidationPass.columns_unseen`, a
typo in the DAG): a check per row only until each key was seen once, so a normal run pays one falsy test.
"""

from __future__ import annotations

import pickle
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import IO, Any, Protocol

from airflow_provider_hubcomm.batch.rows import RowError, RowValidator, WriteRow

__all__ = ["Records", "Spool", "ValidationPass", "validate_rows"]

#: Rows per pickled block (bounded memory in both passes).
BLOCK_ROWS = 4096
#: Bits of the first-seen bitmap (2**26 bits = 8 MB; ~1.5 % collisions at a million distinct keys).
BITMAP_BITS = 26
#: How many row errors the pass keeps for the error message (the rest are only counted).
KEEP_ERROR_ROWS = 20
#: How many distinct column names the pass remembers for messages (``columns_seen``).
KEEP_COLUMNS = 64

_WIDTH = 1 + len(WriteRow._fields)
_make_row: Callable[[type[WriteRow], Iterable[Any]], WriteRow] = tuple.__new__

InvalidRowHandler = Callable[[int, Mapping[str, Any], list[RowError]], None]


class Records(Protocol):
    """What reads the valid rows of a run: the :class:`Spool`, or the spool seen through a sync diff."""

    rows: int

    def records(self) -> Iterator[tuple[int, WriteRow, bool]]:
        """Yield ``(row_number, write_row, superseded)`` in input order."""

    def close(self) -> None:
        """Release the rows' storage."""


class Spool:
    """Valid rows of one run in an anonymous temporary file, plus the duplicate index.

    :param directory: where to create the temporary file (``None``: the system default).
    """

    def __init__(self, directory: str | None = None) -> None:
        self._fh: IO[bytes] = tempfile.TemporaryFile(prefix="hubcomm-spool-", dir=directory)  # noqa: SIM115
        self.last: dict[tuple[str, int], int] = {}
        self.rows = 0

    def dump(self, block: list[Any]) -> None:
        """Append one block of flat values (``row, *WriteRow`` repeated).

        :param block: the values.
        """
        pickle.dump(block, self._fh, protocol=pickle.HIGHEST_PROTOCOL)

    def records(self) -> Iterator[tuple[int, WriteRow, bool]]:
        """Yield ``(row_number, write_row, superseded)`` in input order; readable once per call.

        :return: an iterator over every valid row.
        """
        fh = self._fh
        fh.seek(0)
        last = self.last
        load = pickle.load
        while True:
            try:
                block = load(fh)
            except EOFError:
                return
            values = iter(block)  # zip() of one iterator 7 times cuts the flat block into rows in C
            if last:
                for row, sub, sid, state, channel, basis, expl in zip(*(values,) * _WIDTH, strict=True):
                    write = _make_row(WriteRow, (sub, sid, state, channel, basis, expl))
                    yield row, write, last.get((sub.lower(), sid), row) != row
            else:
                for row, sub, sid, state, channel, basis, expl in zip(*(values,) * _WIDTH, strict=True):
                    yield row, _make_row(WriteRow, (sub, sid, state, channel, basis, expl)), False

    def close(self) -> None:
        """Delete the temporary file."""
        self._fh.close()


@dataclass
class ValidationPass:
    """What the validation pass learned.

    :param rows_read: rows read from the input.
    :param valid: rows that passed validation (duplicates included).
    :param invalid: rows refused.
    :param errors: errors of the first refused rows (:data:`KEEP_ERROR_ROWS` rows at most).
    :param spool: the valid rows; ``None`` when the pass stopped spooling (``stop_at_invalid``).
    :param columns_unseen: ``column_map`` keys that no row had as a column.
    :param columns_seen: column names of the rows read while a ``column_map`` key was still unseen (at most
        :data:`KEEP_COLUMNS`; for the message naming the unseen keys).
    """

    rows_read: int = 0
    valid: int = 0
    invalid: int = 0
    errors: list[RowError] = field(default_factory=list)
    spool: Records | None = None
    columns_unseen: set[str] = field(default_factory=set)
    columns_seen: dict[str, None] = field(default_factory=dict)


def validate_rows(
    rows: Iterable[tuple[int, Mapping[str, Any]]],
    validator: RowValidator,
    *,
    stop_at_invalid: bool,
    on_invalid_row: InvalidRowHandler | None = None,
    spool_dir: str | None = None,
) -> ValidationPass:
    """Validate every row; spool the valid ones and index duplicates (the hot path: keep it lean).

    :param rows: ``(row_number, raw_row)`` pairs, read once.
    :param validator: the row validator.
    :param stop_at_invalid: after the first invalid row, only validate and count (``on_invalid="fail"``:
        nothing will be sent, so spooling is wasted work); the spool is then dropped.
    :param on_invalid_row: called with each invalid row and its errors (``on_invalid="skip"``).
    :param spool_dir: directory of the temporary spool file.
    """
    spool = Spool(spool_dir)
    result = ValidationPass(spool=spool)
    validate = validator.validate
    errors = result.errors
    bitmap = bytearray(1 << (BITMAP_BITS - 3))
    mask = (1 << BITMAP_BITS) - 1
    last = spool.last
    block: list[Any] = []
    append, extend = block.append, block.extend
    in_block = spooled = unspooled = invalid = 0
    spooling = True
    unseen = result.columns_unseen
    unseen.update(validator.column_map)
    columns = result.columns_seen
    try:
        for row_number, raw in rows:
            if unseen:
                unseen.difference_update(raw.keys())
                if len(columns) < KEEP_COLUMNS:
                    columns.update(dict.fromkeys(str(k) for k in list(raw)[:KEEP_COLUMNS]))
            write = validate(row_number, raw)
            if write.__class__ is list:
                invalid += 1
                if invalid <= KEEP_ERROR_ROWS:
                    errors.extend(write)
                if on_invalid_row is not None:
                    on_invalid_row(row_number, raw, write)
                if stop_at_invalid:
                    spooling = False
                continue
            if not spooling:
                unspooled += 1
                continue
            # write.key, inlined: this loop is the CPU budget of a run.
            key = (write[0].lower(), write[1])  # type: ignore[union-attr]
            i = hash(key) & mask
            j = i >> 3
            seen = bitmap[j]
            bit = 1 << (i & 7)
            if seen & bit:
                last[key] = row_number  # type: ignore[index]
            else:
                bitmap[j] = seen | bit
            append(row_number)
            extend(write)
            in_block += 1
            if in_block == BLOCK_ROWS:
                spool.dump(block)
                block.clear()
                spooled += in_block
                in_block = 0
        if in_block and spooling:
            spool.dump(block)
        spooled += in_block
    except BaseException:
        spool.close()
        raise
    valid = spooled + unspooled
    result.rows_read, result.valid, result.invalid = valid + invalid, valid, invalid
    spool.rows = valid
    if not spooling:
        spool.close()
        result.spool = None
    return result
