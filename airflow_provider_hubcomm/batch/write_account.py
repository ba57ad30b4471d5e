"""Accounting of a status write (``BatchWriteStatusesOperator``): the shared tally, with the write's own rows.

:class:`RunAccount` adds to :class:`~airflow_provider_hubcomm.batch.summary.Tally` what only a status write has:
rows (:class:`~airflow_provider_hubcomm.batch.rows.WriteRow`), skips of valid rows (duplicates, unchanged,
re-subscribe refused, unknown or inactive subscriptions), chunk results, and its summary
(:class:`~airflow_provider_hubcomm.contracts.RunSummary`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from json.encoder import encode_basestring as _esc
from typing import TYPE_CHECKING, Any, Protocol

from airflow_provider_hubcomm.batch.reasons import NOT_FINAL
from airflow_provider_hubcomm.batch.summary import LISTED_SKIPS, Tally

if TYPE_CHECKING:
    from airflow_provider_hubcomm.batch.outputs import JsonLinesSink
    from airflow_provider_hubcomm.batch.reasons import ChunkResult, Reason
    from airflow_provider_hubcomm.batch.rows import RowError, WriteRow
    from airflow_provider_hubcomm.contracts import RunMode, RunPlan, RunSummary

__all__ = ["AnswerRecorder", "RunAccount"]

_COMPLETE = "COMPLETE"
_RESUBSCRIBE = "resubscribe_not_allowed"


class AnswerRecorder(Protocol):
    """Told HubSpot's answer for every row sent (the sync state's journal implements it)."""

    def record(self, write: WriteRow, confirmed: bool) -> None:
        """Note a row sent: ``confirmed`` when its batch operation was ``COMPLETE``, else failed or pending."""

    def refused(self, write: WriteRow) -> None:
        """Note a row the re-subscribe guard refused (not sent)."""


class RunAccount(Tally):
    """The accounting of a status write (:class:`~airflow_provider_hubcomm.batch.engine.BatchWriteEngine`).

    :param failed_sink: the failed-rows file.
    :param written_sink: the written-rows manifest (``None`` in a dry run).
    :param redact: removes secrets from server text (the hook's ``redact``) before it is stored.
    :param recorder: told every written or failed row (``None``: nobody).
    """

    def __init__(
        self,
        failed_sink: JsonLinesSink,
        written_sink: JsonLinesSink | None,
        redact: Callable[[str], str] | None = None,
        recorder: AnswerRecorder | None = None,
    ) -> None:
        super().__init__(failed_sink, written_sink, redact)
        self.recorder = recorder

    def skip_invalid(self, row: int, raw: Mapping[str, Any], errors: list[RowError]) -> None:
        """Count an invalid row (``on_invalid="skip"``) and list it in the failed-rows file.

        :param row: row number.
        :param raw: the row as read.
        :param errors: why it was refused.
        """
        message = "; ".join(str(e) for e in errors)
        self._skip_listed(row, dict(raw), "invalid", message, [e.to_dict() for e in errors])

    def skip(self, row: int, write: WriteRow, reason: str, message: str | None = None, *, record: bool = True) -> None:
        """Count a skipped valid row; rows of :data:`LISTED_SKIPS` are also listed in the failed-rows file.

        :param row: row number.
        :param write: the row.
        :param reason: one of :data:`~airflow_provider_hubcomm.contracts.SKIP_REASONS`.
        :param message: why, for the failed-rows file (default: the subscription reads ``UNSUBSCRIBED``).
        :param record: tell the recorder (the sync state) of a ``resubscribe_not_allowed`` row; ``False`` for a
            refusal the state already holds.
        """
        if reason not in LISTED_SKIPS:
            self.skipped[reason] += 1
            return
        if message is None:
            message = (
                f"{write.subscriber} is UNSUBSCRIBED from subscription {write.subscription_id} in HubSpot; "
                "not re-subscribed (allow_resubscribe=False)"
            )
        self._skip_listed(row, write.to_api(), reason, self.redact(message))
        if record and reason == _RESUBSCRIBE and self.recorder is not None:
            self.recorder.refused(write)

    def fail(self, row: int, write: WriteRow, reason: Reason) -> None:
        """Count a failed row and list it in the failed-rows file.

        :param row: row number.
        :param write: the row.
        :param reason: why it failed.
        """
        self._fail(row, write.to_api(), reason)
        if self.recorder is not None:
            self.recorder.record(write, False)

    def write(self, row: int, write: WriteRow, operation: int, status: str) -> None:
        """Count a written row and add it to the manifest.

        :param row: row number.
        :param write: the row.
        :param operation: index of the batch operation that wrote it.
        :param status: that operation's status (``COMPLETE``, ``PENDING`` or ``PROCESSING``).
        """
        self._written(
            {
                "row": row,
                "subscriberIdString": write.subscriber,
                "subscriptionId": write.subscription_id,
                "statusState": write.state,
                "operation": operation,
                "operationStatus": status,
            }
        )
        if self.recorder is not None:
            self.recorder.record(write, status == _COMPLETE)

    def apply(self, result: ChunkResult) -> None:
        """Account for every row of a finished chunk and for its batch operation.

        :param result: the chunk's outcome.
        """
        for op in result.operations:
            self.operation(
                result.index, op["status"], op["rows"], op["requestedAt"], op["startedAt"], op["completedAt"]
            )
        if self.written_inline is None and self.recorder is None:
            self._write_many(result.written, result.index)
        else:
            for row, write, status in result.written:
                self.write(row, write, result.index, status)
        for row, write, reason in result.failed:
            self.fail(row, write, reason)

    def _write_many(self, written: Sequence[tuple[int, WriteRow, str]], operation: int) -> None:
        """:meth:`write` for a chunk's rows at once, once the summary's inline list is full and nobody records.

        The manifest lines are encoded here, byte for byte as :meth:`JsonLinesSink.write` encodes the records
        :meth:`write` builds (compact, ``ensure_ascii=False``), and written in one call.
        """
        if not written:
            return
        self.written += len(written)
        self.unconfirmed += sum(1 for _, _, status in written if status in NOT_FINAL)
        if self.written_sink is not None:
            text = "".join(
                [
                    f'{{"row":{row:d},"subscriberIdString":{_esc(w[0])},"subscriptionId":{w[1]:d},'
                    f'"statusState":{_esc(w[2])},"operation":{operation:d},"operationStatus":{_esc(status)}}}\n'
                    for row, w, status in written
                ]
            )
            self.written_sink.write_lines(text, len(written))

    def summary(
        self,
        *,
        conn_id: str,
        channel: str,
        dry_run: bool,
        only_changes: bool,
        allow_resubscribe: bool,
        mode: RunMode,
        requests: int,
        retries: int,
        duration: float,
        plan: RunPlan,
        written_rows_path: str | None,
        failed_rows_path: str | None,
    ) -> RunSummary:
        """Return the run's summary (the operator's XCom).

        :param conn_id: the connection used.
        :param channel: the channel written.
        :param dry_run: nothing was sent.
        :param only_changes: rows whose state was already set were skipped.
        :param allow_resubscribe: the re-subscribe guard was off.
        :param mode: ``batch``, or ``single`` after a fallback.
        :param requests: HTTP answers received (retried attempts included).
        :param retries: retries made.
        :param duration: seconds the run took.
        :param plan: what was (or would be) sent.
        :param written_rows_path: the manifest's location.
        :param failed_rows_path: the failed-rows file's location.
        """
        return {
            "conn_id": conn_id,
            "channel": channel,
            "dry_run": dry_run,
            "only_changes": only_changes,
            "allow_resubscribe": allow_resubscribe,
            "mode": mode,
            **self.counts(),
            "unchanged": self.skipped["unchanged"],
            "requests": requests,
            "retries": retries,
            "duration_seconds": round(duration, 3),
            "rows_per_second": round(self.rows_read / duration, 1) if duration > 0 else 0.0,
            "plan": plan,
            "written_rows_path": written_rows_path,
            "failed_rows_path": failed_rows_path,
        }
