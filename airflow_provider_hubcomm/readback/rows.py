"""The rows a read-back checks: the writer's summary, its written rows (inline or a file) and their selection.

HubSpot cannot be polled for a batch operation (no endpoint, no batch id), so "done" is established by
reading statuses back. This module turns the writer's summary
(:class:`~airflow_provider_hubcomm.contracts.BatchSummary`) into :class:`ReadbackRow` s and picks the rows to
check (every row of a non-``COMPLETE`` operation, plus all rows or a seeded sample of the others);
:mod:`~airflow_provider_hubcomm.readback.loop` plans the reads and :mod:`~airflow_provider_hubcomm.readback.state`
keeps what they found.
"""

from __future__ import annotations

import ast
import gzip
import io
import itertools
import json
import random
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any, Final, cast

from airflow_provider_hubcomm.readback.errors import BatchSummaryError

if TYPE_CHECKING:
    from airflow_provider_hubcomm.contracts import BatchSummary, RowReport, WrittenRecord

__all__ = [
    "COMPLETE",
    "DEFAULT_READ_BATCH_SIZE",
    "DEFAULT_SAMPLE_SIZE",
    "INLINE_ROWS_MAX",
    "MISMATCH_CONFIRMATIONS",
    "OPTED_OUT",
    "VERIFY_MODES",
    "Key",
    "ReadbackRow",
    "iter_blocks",
    "iter_path_rows",
    "iter_written_rows",
    "parse_summary",
    "rows_to_check",
    "select_rows",
    "wide_brand",
    "wide_code",
]

VERIFY_MODES: Final = ("all", "sample", "none")
COMPLETE: Final = "COMPLETE"
NOT_SPECIFIED: Final = "NOT_SPECIFIED"
DEFAULT_SAMPLE_SIZE: Final = 1000
DEFAULT_READ_BATCH_SIZE: Final = 100
#: Consecutive identical disagreeing reads that turn a row of a COMPLETE operation into a mismatch.
MISMATCH_CONFIRMATIONS: Final = 2
#: ReadbackRow lists in the XCom result are capped so the result stays small.
MISMATCHES_CAP: Final = 1000
PENDING_ROWS_CAP: Final = 100
#: At most this many rows travel inline (trigger kwargs); larger sets are re-read from the summary's file.
INLINE_ROWS_MAX: Final = 5000
#: Rows are pulled from the written-rows stream in blocks of this size.
BLOCK_SIZE: Final = 5000


Key = tuple[str, int]
#: What an opt-out row (``BatchUnsubscribeAllOperator``) expects to read back: opted out of all e-mail.
OPTED_OUT: Final = "UNSUBSCRIBED"


def wide_code(brand: int) -> int:
    """Return the pseudo subscription id of "all e-mail of ``brand``" (negative: never a real subscription).

    :param brand: the brand (``businessUnitId``).
    """
    return -(brand + 1)


def wide_brand(subscription: int) -> int | None:
    """Return the brand of an opt-out row's pseudo subscription id, or ``None`` for a real subscription.

    :param subscription: a row's ``subscription``.
    """
    return -subscription - 1 if subscription < 0 else None


@dataclass(frozen=True, slots=True)
class ReadbackRow:
    """One written row: what was written, and the status of its batch operation at write time."""

    subscriber: str
    subscription: int
    expected: str
    operation: int
    op_status: str

    @property
    def key(self) -> Key:
        """``(lower-cased subscriber, subscription id)``: HubSpot matches addresses case-insensitively."""
        return self.subscriber.lower(), self.subscription

    @property
    def complete_at_write(self) -> bool:
        """Whether HubSpot reported this row's operation ``COMPLETE`` in the write answer."""
        return self.op_status == COMPLETE

    @classmethod
    def from_record(cls, record: WrittenRecord) -> ReadbackRow:
        """Build a row from a written-rows record of either run (``subscriberIdString``, ``subscriptionId`` …).

        :param record: one JSON-lines record or ``written_rows`` entry.
        """
        try:
            if "subscriptionId" in record:
                subscription, expected = int(record["subscriptionId"]), str(record["statusState"]).upper()
            else:  # an opt-out of all e-mail of a brand
                subscription, expected = wide_code(int(record["businessUnitId"])), OPTED_OUT
            return cls(
                str(record["subscriberIdString"]).strip(),
                subscription,
                expected,
                int(record.get("operation", -1)),
                str(record.get("operationStatus") or COMPLETE).upper(),
            )
        except (KeyError, TypeError, ValueError) as err:
            raise BatchSummaryError(f"written-rows record {dict(record)!r} is not usable: {err!r}") from None

    def describe(self, actual: str | None = None) -> RowReport:
        """Return the row as a JSON-able report entry.

        :param actual: the status last read back (``None``: not read or not found).
        """
        brand = wide_brand(self.subscription)
        return {
            "subscriber": self.subscriber,
            "subscription": self.subscription if brand is None else f"all e-mail of brand {brand}",
            "expected": self.expected,
            "actual": actual,
            "operation": self.operation,
            "operationStatus": self.op_status,
        }


# -- the summary and its rows ------------------------------------------------------------------------------


def parse_summary(batch: Any) -> BatchSummary:
    """Return the batch run's summary (accepts a dict, or its JSON / Python-literal rendering).

    Only what the read-back cannot do without is checked: a summary that reports written rows must say where
    they are. Other keys are read with ``.get`` (an older or hand-made summary may lack them).

    :param batch: the rendered ``batch`` argument of the sensor.
    """
    value = batch
    if isinstance(value, str | bytes):
        text = value.decode() if isinstance(value, bytes) else value
        try:
            value = json.loads(text)
        except ValueError:
            try:
                value = ast.literal_eval(text)
            except (ValueError, SyntaxError):
                raise BatchSummaryError(f"batch is neither JSON nor a dict literal: {text[:200]!r}") from None
    if not isinstance(value, Mapping):
        raise BatchSummaryError(
            f"batch must be the summary dict returned by BatchWriteStatusesOperator, got {type(value).__name__}"
        )
    summary = cast("BatchSummary", dict(value))
    written = int(summary.get("written") or 0)
    if written and summary.get("written_rows") is None and not summary.get("written_rows_path"):
        raise BatchSummaryError(
            f"the summary reports {written} written rows but has neither 'written_rows' nor 'written_rows_path'"
        )
    return summary


def _open_text(path: str) -> IO[str]:
    """Open a JSON-lines file: a local path, or an ObjectStoragePath URL (``s3://…``, ``file://…``)."""
    raw: IO[bytes]
    if "://" in path:
        from airflow.providers.common.compat.sdk import ObjectStoragePath

        raw = ObjectStoragePath(path).open("rb")
    else:
        raw = open(path, "rb")  # noqa: SIM115 - closed by the caller through the wrapper
    if path.endswith(".gz"):
        raw = gzip.GzipFile(fileobj=raw)  # type: ignore[assignment]
    return io.TextIOWrapper(raw, encoding="utf-8")


def iter_path_rows(path: str) -> Iterator[ReadbackRow]:
    """Stream the rows of a written-rows JSON-lines file (blank lines are skipped).

    :param path: local path or ObjectStoragePath URL.
    """
    with _open_text(path) as handle:
        for line in handle:
            if line.strip():
                yield ReadbackRow.from_record(json.loads(line))


def iter_written_rows(summary: BatchSummary) -> Iterator[ReadbackRow]:
    """Stream every written row of a summary: inline ``written_rows`` if present, else its file.

    :param summary: the parsed summary.
    """
    inline = summary.get("written_rows")
    if inline is not None:
        yield from (ReadbackRow.from_record(r) for r in inline)
    elif path := summary.get("written_rows_path"):
        yield from iter_path_rows(str(path))


def select_rows(rows: Iterable[ReadbackRow], verify: str, sample_size: int, seed: int) -> list[ReadbackRow]:
    """Pick the rows to read back: every row of a non-COMPLETE operation, plus per ``verify``.

    ``"all"``: every row. ``"sample"``: a seeded reservoir sample of ``sample_size`` rows among the rows of
    COMPLETE operations (one pass, memory bounded by the sample). ``"none"``: no COMPLETE row. The same
    input, mode, size and seed always give the same rows in the same order.

    :param rows: the written rows, streamed.
    :param verify: ``"all"``, ``"sample"`` or ``"none"``.
    :param sample_size: reservoir size for ``"sample"``.
    :param seed: seed of the sampling random generator.
    """
    rng = random.Random(seed)
    forced: list[ReadbackRow] = []
    reservoir: list[ReadbackRow] = []
    seen_complete = 0
    for row in rows:
        if not row.complete_at_write or verify == "all":
            forced.append(row)
            continue
        if verify != "sample":
            continue
        seen_complete += 1
        if len(reservoir) < sample_size:
            reservoir.append(row)
        else:
            j = rng.randrange(seen_complete)
            if j < sample_size:
                reservoir[j] = row
    chosen: dict[Key, ReadbackRow] = {}
    for row in itertools.chain(forced, reservoir):
        chosen[row.key] = row  # a duplicate (subscriber, subscription) is checked once
    return list(chosen.values())


def rows_to_check(rows: Iterator[ReadbackRow], verify: str, sample_size: int, seed: int) -> Iterable[ReadbackRow]:
    """Return the rows a first check reads back: streamed for ``"all"``, a selected list otherwise.

    :param rows: the written rows, streamed (:func:`iter_written_rows` or :func:`iter_path_rows`).
    :param verify: ``"all"``, ``"sample"`` or ``"none"``.
    :param sample_size: reservoir size for ``"sample"``.
    :param seed: sampling seed.
    """
    return rows if verify == "all" else select_rows(rows, verify, sample_size, seed)


def iter_blocks(rows: Iterable[ReadbackRow], size: int = BLOCK_SIZE) -> Iterator[list[ReadbackRow]]:
    """Cut a row stream into lists of at most ``size`` rows.

    :param rows: the rows.
    :param size: block size.
    """
    it = iter(rows)
    while block := list(itertools.islice(it, size)):
        yield block
