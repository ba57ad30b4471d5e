"""Per-row accounting of a batch run (the counts of its summary), and how a summary is reported.

The shapes (summary, output lines) are :mod:`~airflow_provider_hubcomm.contracts`; this module fills them.

Every row read ends in exactly one bucket: ``written``, ``failed`` or ``skipped`` (by reason: ``invalid``,
``duplicate``, ``unchanged``, ``resubscribe_not_allowed``, and ``dry_run`` for the rows a dry run would have
sent, ``unknown_subscription``/``inactive_subscription`` for rows the definitions preflight refused with
``on_invalid="skip"``). ``unconfirmed`` counts written rows whose batch operation HubSpot answered
``PENDING``/``PROCESSING`` (part of ``written``, like ``unchanged`` is part of ``skipped``; the sensor verifies
them). :meth:`Tally.counts` asserts ``written + failed + skipped == rows_read``.

Files (see :mod:`~airflow_provider_hubcomm.batch.outputs`):

* the failed-rows file lists every row that needs attention: failed rows (``"outcome": "failed"``) and rows
  skipped as ``invalid``, ``resubscribe_not_allowed``, ``unknown_subscription`` or ``inactive_subscription``
  (``"outcome": "skipped"``, with ``"reason"``). Every text that came from HubSpot goes through the hook's
  redactor before it is counted or written. Duplicates and unchanged rows need nothing and are only counted;
* the written-rows manifest lists every written row with the operation (chunk) that wrote it.

:class:`Tally` is what both runs count; each run adds its own rows and summary keys
(:class:`~airflow_provider_hubcomm.batch.write_account.RunAccount` for a status write,
:class:`~airflow_provider_hubcomm.batch.optout_account.OptOutAccount` for an opt-out). Reporting a summary:
:func:`log_summary`, :func:`check_thresholds`, :func:`summary_text`, and :class:`Progress` lines during a run.
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from airflow_provider_hubcomm.batch.reasons import CANCELED_REASON, NOT_FINAL, Reason
from airflow_provider_hubcomm.contracts import (
    MAX_FAILED_REASONS,
    MAX_INLINE_WRITTEN,
    MAX_LISTED_OPERATIONS,
    OTHER_REASON,
    SKIP_REASONS,
)
from airflow_provider_hubcomm.exceptions import HubCommThresholdError
from airflow_provider_hubcomm.models import BatchStatus

if TYPE_CHECKING:
    from airflow_provider_hubcomm.batch.outputs import JsonLinesSink
    from airflow_provider_hubcomm.contracts import (
        BatchSummary,
        CanceledOperation,
        FailedRecord,
        NotCompleteOperation,
        RunCounts,
        WrittenRecord,
    )

__all__ = ["LISTED_SKIPS", "SKIP_REASONS", "Progress", "Tally", "check_thresholds", "log_summary", "summary_text"]

log = logging.getLogger("airflow_provider_hubcomm.batch.engine")

#: Skipped rows that need attention: listed in the failed-rows file.
LISTED_SKIPS = frozenset({"resubscribe_not_allowed", "unknown_subscription", "inactive_subscription"})
_CATEGORIES = {
    "invalid": "INVALID_ROW",
    "resubscribe_not_allowed": "RESUBSCRIBE_NOT_ALLOWED",
    "unknown_subscription": "UNKNOWN_SUBSCRIPTION",
    "inactive_subscription": "INACTIVE_SUBSCRIPTION",
}
_COMPLETE = BatchStatus.COMPLETE.value
_CANCELED = BatchStatus.CANCELED.value


class Tally:
    """What both batch runs count: buckets, failure reasons, batch operations and the output files' lines.

    Used from the run's thread only.

    :param failed_sink: the failed-rows file.
    :param written_sink: the written-rows manifest (``None`` in a dry run).
    :param redact: removes secrets from server text (the hook's ``redact``) before it is stored.
    :param skip_reasons: the run's skip reasons (each listed in ``skipped_by_reason``, zero or not).
    """

    def __init__(
        self,
        failed_sink: JsonLinesSink,
        written_sink: JsonLinesSink | None,
        redact: Callable[[str], str] | None = None,
        skip_reasons: Iterable[str] = SKIP_REASONS,
    ) -> None:
        self.failed_sink = failed_sink
        self.written_sink = written_sink
        self.redact = redact or (lambda text: text)
        self.rows_read = 0
        self.written = 0
        self.unconfirmed = 0
        self.failed = 0
        self.skipped: Counter[str] = Counter(dict.fromkeys(skip_reasons, 0))
        self.failed_by_reason: dict[str, int] = {}
        self.written_inline: list[WrittenRecord] | None = []
        self.by_status: Counter[str] = Counter({s.value: 0 for s in BatchStatus})
        self.first_requested_at: str | None = None
        self.last_completed_at: str | None = None
        self.not_complete: list[NotCompleteOperation] = []
        self.not_complete_total = 0
        self.canceled: list[CanceledOperation] = []
        self.canceled_total = 0

    @property
    def skipped_total(self) -> int:
        """Rows skipped, all reasons together."""
        return sum(self.skipped.values())

    @property
    def processed(self) -> int:
        """Rows whose outcome is known."""
        return self.written + self.failed + self.skipped_total

    def _skip_listed(
        self,
        row: int,
        given: dict[str, Any],
        reason: str,
        message: str,
        errors: list[dict[str, Any]] | None = None,
    ) -> None:
        """Count a skipped row that needs attention and list it in the failed-rows file."""
        self.skipped[reason] += 1
        line: FailedRecord = {
            "row": row,
            "input": given,
            "outcome": "skipped",
            "reason": reason,
            "category": _CATEGORIES[reason],
            "message": message,
            "correlationId": None,
        }
        if errors is not None:
            line["errors"] = errors
        self.failed_sink.write(line)

    def _fail(self, row: int, given: dict[str, Any], reason: Reason) -> None:
        """Count a failed row under its (redacted) reason and list it in the failed-rows file."""
        self.failed += 1
        category = None if reason.category is None else self.redact(reason.category)
        message = self.redact(reason.message)
        key = f"{category}: {message}" if category else message
        if key not in self.failed_by_reason and len(self.failed_by_reason) >= MAX_FAILED_REASONS + (
            OTHER_REASON in self.failed_by_reason
        ):
            key = OTHER_REASON
        self.failed_by_reason[key] = self.failed_by_reason.get(key, 0) + 1
        line: FailedRecord = {
            "row": row,
            "input": given,
            "outcome": "failed",
            "category": category,
            "message": message,
            "correlationId": reason.correlation_id,
        }
        self.failed_sink.write(line)

    def _written(self, record: WrittenRecord) -> None:
        """Count a written row (unconfirmed when its operation is not final) and add it to the manifest."""
        self.written += 1
        if record["operationStatus"] in NOT_FINAL:
            self.unconfirmed += 1
        if self.written_sink is not None:
            self.written_sink.write(record)
        if self.written_inline is not None:
            if len(self.written_inline) < MAX_INLINE_WRITTEN:
                self.written_inline.append(record)
            else:
                self.written_inline = None

    def operation(
        self, index: int, status: str, rows: int, requested: str | None, started: str | None, completed: str | None
    ) -> None:
        """Record one batch operation (one request) and HubSpot's status for it.

        :param index: the operation's number (the ``operation`` of its written rows).
        :param status: its status (``COMPLETE``, ``PENDING``, ``PROCESSING`` or ``CANCELED``).
        :param rows: the rows it held.
        :param requested: HubSpot's ``requestedAt``.
        :param started: HubSpot's ``startedAt``.
        :param completed: HubSpot's ``completedAt``.
        """
        self.by_status[status] += 1
        if requested and (self.first_requested_at is None or requested < self.first_requested_at):
            self.first_requested_at = requested
        if completed and (self.last_completed_at is None or completed > self.last_completed_at):
            self.last_completed_at = completed
        if status == _CANCELED:
            self.canceled_total += 1
            if len(self.canceled) < MAX_LISTED_OPERATIONS:
                self.canceled.append({"index": index, "rows": rows, "reason": CANCELED_REASON})
        elif status != _COMPLETE:
            self.not_complete_total += 1
            if len(self.not_complete) < MAX_LISTED_OPERATIONS:
                self.not_complete.append(
                    {
                        "index": index,
                        "status": status,
                        "requestedAt": requested,
                        "startedAt": started,
                        "completedAt": completed,
                        "rows": rows,
                    }
                )

    def counts(self) -> RunCounts:
        """Return the summary's counts, operations and inline rows; assert every row read is counted once."""
        skipped = self.skipped_total
        if self.written + self.failed + skipped != self.rows_read:
            raise AssertionError(
                f"batch accounting broken: written {self.written} + failed {self.failed} + skipped {skipped} "
                f"!= rows_read {self.rows_read}"
            )
        return {
            "rows_read": self.rows_read,
            "written": self.written,
            "unconfirmed": self.unconfirmed,
            "failed": self.failed,
            "skipped": skipped,
            "skipped_by_reason": dict(self.skipped),
            "failed_by_reason": dict(self.failed_by_reason),
            "operations": {
                "total": sum(self.by_status.values()),
                "by_status": dict(self.by_status),
                "first_requested_at": self.first_requested_at,
                "last_completed_at": self.last_completed_at,
                "not_complete": self.not_complete,
                "not_complete_truncated": self.not_complete_total > len(self.not_complete),
                "canceled": self.canceled,
                "canceled_truncated": self.canceled_total > len(self.canceled),
            },
            "written_rows": self.written_inline,
        }


# -- reporting -------------------------------------------------------------------------------------------------


def summary_text(summary: BatchSummary) -> str:
    """Render a summary for an exception message or a log line (without the per-row and per-operation lists).

    :param summary: a run summary.
    """
    short: dict[str, Any] = {k: v for k, v in summary.items() if k != "written_rows"}
    ops = summary["operations"]
    short["operations"] = {
        **ops,
        "not_complete": f"<{len(ops['not_complete'])} entries>",
        "canceled": f"<{len(ops['canceled'])} entries>",
    }
    return json.dumps(short, default=str)


def log_summary(summary: BatchSummary) -> None:
    """Log the outcome of a run: counts, failure reasons, unfinished operations, output files.

    :param summary: the run summary.
    """
    log.info(
        "Batch %s (%s mode): %d rows read, %d written (%d unconfirmed), %d failed, %d skipped %s; %d requests, "
        "%d retries, %.1f s.",
        "dry run" if summary["dry_run"] else "run",
        summary["mode"],
        summary["rows_read"],
        summary["written"],
        summary["unconfirmed"],
        summary["failed"],
        summary["skipped"],
        {k: v for k, v in summary["skipped_by_reason"].items() if v},
        summary["requests"],
        summary["retries"],
        summary["duration_seconds"],
    )
    if summary["failed_by_reason"]:
        log.warning("Failed rows by reason: %s", summary["failed_by_reason"])
    ops = summary["operations"]
    if ops["not_complete"]:
        log.warning(
            "%d batch operations were not COMPLETE when answered (rows counted written; HubSpot may still "
            "apply them; BatchStatusSensor verifies): %s",
            len(ops["not_complete"]),
            ops["not_complete"][:5],
        )
    for key, path in (
        ("failed_rows_path", summary["failed_rows_path"]),
        ("written_rows_path", summary["written_rows_path"]),
    ):
        if path:
            log.info("%s: %s", key, path)
    if summary["dry_run"]:
        plan = summary["plan"]
        log.info(
            "Dry run: would send %d rows in %d requests of up to %d rows; nothing was sent.",
            plan["rows_to_send"],
            plan["chunks"],
            plan["batch_size"],
        )


def check_thresholds(summary: BatchSummary, max_failed_rows: int | None, max_failed_ratio: float | None) -> None:
    """Raise when more rows failed than allowed; ``failed / (written + failed)`` is the ratio.

    Skipped rows (invalid, duplicate, unchanged, re-subscribe refused) are not failures.

    :param summary: the run summary.
    :param max_failed_rows: largest acceptable number of failed rows.
    :param max_failed_ratio: largest acceptable share of failed rows among the rows sent.
    :raises HubCommThresholdError: with the summary in the message and in ``.summary``.
    """
    failed, attempted = summary["failed"], summary["written"] + summary["failed"]
    problem = None
    if max_failed_rows is not None and failed > max_failed_rows:
        problem = f"{failed} rows failed, more than max_failed_rows={max_failed_rows}"
    elif max_failed_ratio is not None and attempted and failed / attempted > max_failed_ratio:
        problem = (
            f"{failed} of {attempted} rows sent failed ({failed / attempted:.2%}), more than "
            f"max_failed_ratio={max_failed_ratio}"
        )
    if problem:
        raise HubCommThresholdError(f"{problem}\nSummary: {summary_text(summary)}", summary)


class Progress:
    """Logs ``done/total``, rows per second and ETA every ``interval`` seconds or 10 % of the rows.

    :param account: the run's accounting (``processed`` and ``rows_read`` are read).
    :param interval: seconds between lines.
    """

    def __init__(self, account: Tally, interval: float) -> None:
        self.account = account
        self.interval = interval
        self.start = time.monotonic()
        self.start_done = account.processed
        self.last_time = self.start
        self.last_decile = 0
        self.last_done = -1

    def maybe_log(self, final: bool = False) -> None:
        """Log a progress line if it is due.

        :param final: log now unless this very state was just logged.
        """
        account = self.account
        total = account.rows_read or 1
        done = account.processed
        now = time.monotonic()
        decile = done * 10 // total
        if done == self.last_done or (
            not final and now - self.last_time < self.interval and decile <= self.last_decile
        ):
            return
        self.last_time, self.last_decile, self.last_done = now, decile, done
        elapsed = max(now - self.start, 1e-9)
        rate = (done - self.start_done) / elapsed
        eta = f"{(total - done) / rate:.0f} s" if rate > 0 and done < total else "-"
        log.info(
            "Progress: %d/%d rows (%.0f%%), %.0f rows/s, ETA %s (written %d, failed %d, skipped %d).",
            done,
            account.rows_read,
            100 * done / total,
            rate,
            eta,
            account.written,
            account.failed,
            account.skipped_total,
        )
