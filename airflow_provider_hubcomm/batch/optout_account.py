"""Accounting of a bulk unsubscribe-all run: the shared :class:`~.summary.Tally`, with opt-out rows and summary.

Every row read ends in exactly one bucket: ``written`` (``unconfirmed`` when its operation was not final),
``failed`` (with HubSpot's reason, redacted) or ``skipped`` (``invalid``, ``duplicate``, ``dry_run``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow_provider_hubcomm.batch.summary import Tally

if TYPE_CHECKING:
    from collections.abc import Mapping

    from airflow_provider_hubcomm.batch.outputs import JsonLinesSink
    from airflow_provider_hubcomm.batch.reasons import Reason
    from airflow_provider_hubcomm.contracts import OptOutSummary, RunMode, RunPlan
    from airflow_provider_hubcomm.hooks.hubcomm import HubCommHook

__all__ = ["OptOutAccount"]

#: The skip reasons of an opt-out run.
OPT_OUT_SKIPS = ("invalid", "duplicate", "dry_run")


class OptOutAccount(Tally):
    """Counts and output lines of one opt-out run (used from the run's thread only).

    :param hook: redacts every text that came from HubSpot before it is stored.
    :param failed_sink: the failed-rows file.
    :param written_sink: the written-rows file (``None`` in a dry run).
    :param business_unit_id: the brand, recorded on each written row.
    """

    def __init__(
        self, hook: HubCommHook, failed_sink: JsonLinesSink, written_sink: JsonLinesSink | None, business_unit_id: int
    ) -> None:
        super().__init__(failed_sink, written_sink, hook.redact, OPT_OUT_SKIPS)
        self.business_unit_id = business_unit_id

    def invalid(self, row: int, raw: Mapping[str, Any], message: str) -> None:
        """Skip an invalid row and list it in the failed-rows file."""
        self._skip_listed(row, dict(raw), "invalid", message)

    def fail(self, row: int, subscriber: str, reason: Reason) -> None:
        """Count a failed row (HubSpot's text redacted) and list it in the failed-rows file."""
        self._fail(row, {"subscriberIdString": subscriber}, reason)

    def write(self, row: int, subscriber: str, operation: int, status: str) -> None:
        """Count a written row (unconfirmed when its operation is not final) and list it."""
        self._written(
            {
                "row": row,
                "subscriberIdString": subscriber,
                "businessUnitId": self.business_unit_id,
                "operation": operation,
                "operationStatus": status,
            }
        )

    def summary(
        self,
        *,
        conn_id: str,
        channel: str,
        mode: RunMode,
        dry_run: bool,
        requests: int,
        retries: int,
        duration: float,
        plan: RunPlan,
    ) -> OptOutSummary:
        """Return the run's summary; the operator fills in the output files' locations when it closes them.

        :param conn_id: the connection used.
        :param channel: the channel.
        :param mode: ``batch``, or ``single`` after a fallback.
        :param dry_run: nothing was sent.
        :param requests: HTTP answers received (retried attempts included).
        :param retries: retries made.
        :param duration: seconds the run took.
        :param plan: what was (or would be) sent.
        """
        return {
            "kind": "unsubscribe_all",
            "conn_id": conn_id,
            "channel": channel,
            "business_unit_id": self.business_unit_id,
            "mode": mode,
            "dry_run": dry_run,
            **self.counts(),
            "requests": requests,
            "retries": retries,
            "duration_seconds": round(duration, 3),
            "plan": plan,
            "written_rows_path": None,
            "failed_rows_path": None,
        }
