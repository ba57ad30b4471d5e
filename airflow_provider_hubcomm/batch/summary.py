"""Per-row accounting of a batch run and the summary it returns (schema: ``docs/dev/CONTRACTS.md``).

Every row read ends in exactly one bucket: ``written``, ``failed`` or ``skipped`` (by reason: ``invalid``,
``duplicate``, ``unchanged``, ``resubscribe_not_allowed``, and ``dry_run`` for the rows a dry run would have
sent, ``unknown_subscription``/``inactive_subscription`` for rows the definitions preflight refused with
``on_invalid="skip"``). ``unconfirmed`` counts written rows whose batch operation HubSpot answered
``PENDING``/``PROCESSING`` (part of ``written``, like ``unchanged`` is part of ``skipped``; the sensor verifies
them). :meth:`RunAccount.summary` asserts ``written + failed + skipped == rows_read``.

Files (see :mod:`~airflow_provider_hubcomm.batch.outputs`):

* the failed-rows file lists every row that needs attention: failed rows (``"outcome": "failed"``) and rows
  skipped as ``invalid``, ``resubscribe_not_allowed``, ``unknown_subscription`` or ``inactive_subscription``
  (``"outcome": "skipped"``, with ``"reason"``). Every text that came from HubSpot goes through the hook's
  redactor before it is counted or written.
  Duplicates and unchanged rows need nothing and are only counted;
* the written-rows manifest lists every written row with the operation (chunk) that wrote it.

Additions to the contract's schema (all optional for readers): ``allow_resubscribe``; ``plan``
(``rows_to_send``, ``chunks``, ``batch_size``, ``max_concurrency``: what a dry run would send);
``skipped_by_reason.dry_run``; ``operations.canceled_truncated``; ``row`` (input row number) in manifest
lines; ``reason`` and ``errors`` in failed-rows lines of skipped rows. ``requests`` counts HTTP answers
received (batch writes, status reads and retried attempts that got an answer); ``retries`` counts retries.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from airflow_provider_hubcomm.batch.reasons import CANCELED_REASON, NOT_FINAL
from airflow_provider_hubcomm.models import BatchStatus

if TYPE_CHECKING:
    from airflow_provider_hubcomm.batch.outputs import JsonLinesSink
    from airflow_provider_hubcomm.batch.reasons import ChunkResult, Reason
    from airflow_provider_hubcomm.batch.rows import RowError, WriteRow

__all__ = ["SKIP_REASONS", "RunAccount"]

SKIP_REASONS = (
    "invalid",
    "duplicate",
    "unchanged",
    "resubscribe_not_allowed",
    "unknown_subscription",
    "inactive_subscription",
    "dry_run",
)
#: Skipped rows that need attention: listed in the failed-rows file.
LISTED_SKIPS = frozenset({"resubscribe_not_allowed", "unknown_subscription", "inactive_subscription"})
_CATEGORIES = {
    "resubscribe_not_allowed": "RESUBSCRIBE_NOT_ALLOWED",
    "unknown_subscription": "UNKNOWN_SUBSCRIPTION",
    "inactive_subscription": "INACTIVE_SUBSCRIPTION",
}
MAX_REASONS = 20
OTHER = "other"
MAX_NOT_COMPLETE = 1000
MAX_INLINE_WRITTEN = 1000
_COMPLETE = BatchStatus.COMPLETE.value
_CANCELED = BatchStatus.CANCELED.value


class RunAccount:
    """Counts, reasons, operations and output lines of one run (used from one thread only).

    :param failed_sink: the failed-rows file.
    :param written_sink: the written-rows manifest (``None`` in a dry run).
    :param redact: removes secrets from server text (the hook's ``redact``) before it is stored.
    """

    def __init__(
        self,
        failed_sink: JsonLinesSink,
        written_sink: JsonLinesSink | None,
        redact: Callable[[str], str] | None = None,
    ) -> None:
        self.failed_sink = failed_sink
        self.written_sink = written_sink
        self.redact = redact or (lambda text: text)
        self.rows_read = 0
        self.written = 0
        self.unconfirmed = 0
        self.failed = 0
        self.skipped: Counter[str] = Counter({reason: 0 for reason in SKIP_REASONS})
        self.failed_by_reason: dict[str, int] = {}
        self.written_inline: list[dict[str, Any]] | None = []
        self.operations = 0
        self.by_status: Counter[str] = Counter({s.value: 0 for s in BatchStatus})
        self.first_requested_at: str | None = None
        self.last_completed_at: str | None = None
        self.not_complete: list[dict[str, Any]] = []
        self.not_complete_total = 0
        self.canceled: list[dict[str, Any]] = []
        self.canceled_total = 0

    # -- buckets -------------------------------------------------------------------------------------------

    @property
    def skipped_total(self) -> int:
        """Rows skipped, all reasons together."""
        return sum(self.skipped.values())

    @property
    def processed(self) -> int:
        """Rows whose outcome is known."""
        return self.written + self.failed + self.skipped_total

    def skip_invalid(self, row: int, raw: Mapping[str, Any], errors: list[RowError]) -> None:
        """Count an invalid row (``on_invalid="skip"``) and list it in the failed-rows file.

        :param row: row number.
        :param raw: the row as read.
        :param errors: why it was refused.
        """
        self.skipped["invalid"] += 1
        self.failed_sink.write(
            {
                "row": row,
                "input": dict(raw),
                "outcome": "skipped",
                "reason": "invalid",
                "category": "INVALID_ROW",
                "message": "; ".join(str(e) for e in errors),
                "errors": [e.to_dict() for e in errors],
                "correlationId": None,
            }
        )

    def skip(self, row: int, write: WriteRow, reason: str, message: str | None = None) -> None:
        """Count a skipped valid row; rows of :data:`LISTED_SKIPS` are also listed in the failed-rows file.

        :param row: row number.
        :param write: the row.
        :param reason: one of :data:`SKIP_REASONS`.
        :param message: why, for the failed-rows file (default: the subscription reads ``UNSUBSCRIBED``).
        """
        self.skipped[reason] += 1
        if reason in LISTED_SKIPS:
            if message is None:
                message = (
                    f"{write.subscriber} is UNSUBSCRIBED from subscription {write.subscription_id} in HubSpot; "
                    "not re-subscribed (allow_resubscribe=False)"
                )
            self.failed_sink.write(
                {
                    "row": row,
                    "input": write.to_api(),
                    "outcome": "skipped",
                    "reason": reason,
                    "category": _CATEGORIES[reason],
                    "message": self.redact(message),
                    "correlationId": None,
                }
            )

    def fail(self, row: int, write: WriteRow, reason: Reason) -> None:
        """Count a failed row and list it in the failed-rows file.

        :param row: row number.
        :param write: the row.
        :param reason: why it failed.
        """
        self.failed += 1
        redact = self.redact
        category = None if reason.category is None else redact(reason.category)
        message = redact(reason.message)
        key = f"{category}: {message}" if category else message
        if key not in self.failed_by_reason and len(self.failed_by_reason) >= MAX_REASONS + (
            OTHER in self.failed_by_reason
        ):
            key = OTHER
        self.failed_by_reason[key] = self.failed_by_reason.get(key, 0) + 1
        self.failed_sink.write(
            {
                "row": row,
                "input": write.to_api(),
                "outcome": "failed",
                "category": category,
                "message": message,
                "correlationId": reason.correlation_id,
            }
        )

    def write(self, row: int, write: WriteRow, operation: int, status: str) -> None:
        """Count a written row and add it to the manifest.

        :param row: row number.
        :param write: the row.
        :param operation: index of the batch operation that wrote it.
        :param status: that operation's status (``COMPLETE``, ``PENDING`` or ``PROCESSING``).
        """
        self.written += 1
        if status in NOT_FINAL:
            self.unconfirmed += 1
        record = {
            "row": row,
            "subscriberIdString": write.subscriber,
            "subscriptionId": write.subscription_id,
            "statusState": write.state,
            "operation": operation,
            "operationStatus": status,
        }
        if self.written_sink is not None:
            self.written_sink.write(record)
        if self.written_inline is not None:
            if len(self.written_inline) < MAX_INLINE_WRITTEN:
                self.written_inline.append(record)
            else:
                self.written_inline = None

    # -- chunks ----------------------------------------------------------------------------------------------

    def apply(self, result: ChunkResult) -> None:
        """Account for every row of a finished chunk and for its batch operation.

        :param result: the chunk's outcome.
        """
        for op in result.operations:
            self._operation(result.index, op)
        for row, write, status in result.written:
            self.write(row, write, result.index, status)
        for row, write, reason in result.failed:
            self.fail(row, write, reason)

    def _operation(self, index: int, op: dict[str, Any]) -> None:
        self.operations += 1
        status = op["status"]
        self.by_status[status] += 1
        if op["requestedAt"] and (self.first_requested_at is None or op["requestedAt"] < self.first_requested_at):
            self.first_requested_at = op["requestedAt"]
        if op["completedAt"] and (self.last_completed_at is None or op["completedAt"] > self.last_completed_at):
            self.last_completed_at = op["completedAt"]
        if status == _CANCELED:
            self.canceled_total += 1
            if len(self.canceled) < MAX_NOT_COMPLETE:
                self.canceled.append({"index": index, "rows": op["rows"], "reason": CANCELED_REASON})
        elif status != _COMPLETE:
            self.not_complete_total += 1
            if len(self.not_complete) < MAX_NOT_COMPLETE:
                entry = {k: op[k] for k in ("status", "requestedAt", "startedAt", "completedAt", "rows")}
                self.not_complete.append({"index": index, **entry})

    # -- result ------------------------------------------------------------------------------------------------

    def summary(self, header: dict[str, Any], **tail: Any) -> dict[str, Any]:
        """Return the JSON-able run summary; assert that every row read is accounted for exactly once.

        :param header: leading keys (``conn_id``, ``channel``, ``dry_run``, ``only_changes`` …).
        :param tail: trailing keys (``requests``, ``retries``, timings, ``plan``, paths …).
        """
        skipped = self.skipped_total
        if self.written + self.failed + skipped != self.rows_read:
            raise AssertionError(
                f"batch accounting broken: written {self.written} + failed {self.failed} + skipped {skipped} "
                f"!= rows_read {self.rows_read}"
            )
        return {
            **header,
            "rows_read": self.rows_read,
            "written": self.written,
            "unconfirmed": self.unconfirmed,
            "failed": self.failed,
            "skipped": skipped,
            "unchanged": self.skipped["unchanged"],
            "skipped_by_reason": dict(self.skipped),
            "failed_by_reason": dict(self.failed_by_reason),
            "operations": {
                "total": self.operations,
                "by_status": dict(self.by_status),
                "first_requested_at": self.first_requested_at,
                "last_completed_at": self.last_completed_at,
                "not_complete": self.not_complete,
                "not_complete_truncated": self.not_complete_total > len(self.not_complete),
                "canceled": self.canceled,
                "canceled_truncated": self.canceled_total > len(self.canceled),
            },
            "written_rows": self.written_inline,
            **tail,
        }
