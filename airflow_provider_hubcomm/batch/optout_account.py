"""Accounting of a bulk unsubscribe-all run: counts, reasons, operations and the output files' lines.

Every row read ends in exactly one bucket: ``written`` (``unconfirmed`` when its operation was not final),
``failed`` (with HubSpot's reason, redacted) or ``skipped`` (``invalid``, ``duplicate``, ``dry_run``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow_provider_hubcomm.batch.reasons import CANCELED_REASON, NOT_FINAL, Reason
from airflow_provider_hubcomm.models import BatchStatus

if TYPE_CHECKING:
    from collections.abc import Mapping

    from airflow_provider_hubcomm.batch.outputs import JsonLinesSink
    from airflow_provider_hubcomm.hooks.hubcomm import HubCommHook

__all__ = ["OptOutAccount"]

MAX_INLINE_WRITTEN = 1000
MAX_REASONS = 20
_COMPLETE = BatchStatus.COMPLETE.value
_CANCELED = BatchStatus.CANCELED.value


class OptOutAccount:
    """Counts and output lines of one opt-out run (used from the run's thread only).

    :param hook: redacts every text that came from HubSpot before it is stored.
    :param failed_sink: the failed-rows file.
    :param written_sink: the written-rows file (``None`` in a dry run).
    :param business_unit_id: the brand, recorded on each written row.
    """

    def __init__(
        self, hook: HubCommHook, failed_sink: JsonLinesSink, written_sink: JsonLinesSink | None, business_unit_id: int
    ) -> None:
        self.hook = hook
        self.failed_sink = failed_sink
        self.written_sink = written_sink
        self.business_unit_id = business_unit_id
        self.rows_read = self.written = self.failed = self.unconfirmed = 0
        self.skipped: dict[str, int] = {"invalid": 0, "duplicate": 0, "dry_run": 0}
        self.failed_by_reason: dict[str, int] = {}
        self.inline: list[dict[str, Any]] | None = []
        self.by_status: dict[str, int] = {s.value: 0 for s in BatchStatus}
        self.not_complete: list[dict[str, Any]] = []
        self.canceled: list[dict[str, Any]] = []

    def invalid(self, row: int, raw: Mapping[str, Any], message: str) -> None:
        """Skip an invalid row and list it in the failed-rows file."""
        self.skipped["invalid"] += 1
        record = {"row": row, "input": dict(raw), "outcome": "skipped", "reason": "invalid", "message": message}
        self.failed_sink.write({**record, "category": "INVALID_ROW", "correlationId": None})

    def fail(self, row: int, subscriber: str, reason: Reason) -> None:
        """Count a failed row (HubSpot's text redacted) and list it in the failed-rows file."""
        reason = Reason(reason.category, self.hook.redact(reason.message), reason.correlation_id)
        self.failed += 1
        key = reason.key
        if key not in self.failed_by_reason and len(self.failed_by_reason) >= MAX_REASONS:
            key = "other"
        self.failed_by_reason[key] = self.failed_by_reason.get(key, 0) + 1
        self.failed_sink.write(
            {
                "row": row,
                "input": {"subscriberIdString": subscriber},
                "outcome": "failed",
                "category": reason.category,
                "message": reason.message,
                "correlationId": reason.correlation_id,
            }
        )

    def write(self, row: int, subscriber: str, operation: int, status: str) -> None:
        """Count a written row (unconfirmed when its operation is not final) and list it."""
        self.written += 1
        self.unconfirmed += status in NOT_FINAL
        record = {
            "row": row,
            "subscriberIdString": subscriber,
            "businessUnitId": self.business_unit_id,
            "operation": operation,
            "operationStatus": status,
        }
        if self.written_sink is not None:
            self.written_sink.write(record)
        if self.inline is not None:
            if len(self.inline) < MAX_INLINE_WRITTEN:
                self.inline.append(record)
            else:
                self.inline = None

    def operation(self, index: int, status: str, rows: int, answer: Any) -> None:
        """Record one batch operation's status."""
        self.by_status[status] = self.by_status.get(status, 0) + 1
        if status == _CANCELED:
            self.canceled.append({"index": index, "rows": rows, "reason": CANCELED_REASON})
        elif status != _COMPLETE:
            times = {"requestedAt": answer.requested_at, "startedAt": answer.started_at, "completedAt": None}
            self.not_complete.append({"index": index, "status": status, "rows": rows, **times})

    @property
    def skipped_total(self) -> int:
        """Rows skipped, all reasons together."""
        return sum(self.skipped.values())
