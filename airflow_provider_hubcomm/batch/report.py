"""Reporting of a batch run: progress lines, the final log, thresholds and the summary as text."""

from __future__ import annotations

import json
import logging
import time
from typing import TYPE_CHECKING, Any

from airflow_provider_hubcomm.exceptions import HubCommThresholdError

if TYPE_CHECKING:
    from airflow_provider_hubcomm.batch.summary import RunAccount

__all__ = ["Progress", "check_thresholds", "log_summary", "summary_text"]

log = logging.getLogger("airflow_provider_hubcomm.batch.engine")


def summary_text(summary: dict[str, Any]) -> str:
    """Render a summary for an exception message or a log line (without the per-row and per-operation lists).

    :param summary: a run summary.
    """
    short = {k: v for k, v in summary.items() if k != "written_rows"}
    ops = dict(short.get("operations") or {})
    for key in ("not_complete", "canceled"):
        if isinstance(ops.get(key), list):
            ops[key] = f"<{len(ops[key])} entries>"
    short["operations"] = ops
    return json.dumps(short, default=str)


def log_summary(summary: dict[str, Any]) -> None:
    """Log the outcome of a run: counts, failure reasons, unfinished operations, output files.

    :param summary: the run summary.
    """
    log.info(
        "Batch %s (%s mode): %d rows read, %d written (%d unconfirmed), %d failed, %d skipped %s; %d requests, "
        "%d retries, %.1f s.",
        "dry run" if summary["dry_run"] else "run",
        summary.get("mode", "batch"),
        summary["rows_read"],
        summary["written"],
        summary.get("unconfirmed", 0),
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
    for key in ("failed_rows_path", "written_rows_path"):
        if summary[key]:
            log.info("%s: %s", key, summary[key])
    if summary["dry_run"]:
        plan = summary["plan"]
        log.info(
            "Dry run: would send %d rows in %d requests of up to %d rows; nothing was sent.",
            plan["rows_to_send"],
            plan["chunks"],
            plan["batch_size"],
        )


def check_thresholds(summary: dict[str, Any], max_failed_rows: int | None, max_failed_ratio: float | None) -> None:
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

    def __init__(self, account: RunAccount, interval: float) -> None:
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
