"""The single-call tier of a batch run, for accounts without HubSpot's batch scopes.

Batch endpoints need Marketing Hub Enterprise; smaller accounts get ``403 MISSING_SCOPES``. The engine then
sends the same rows one ``POST /statuses/{subscriber}`` each (:func:`send_single`, after the engine's own
guard, so ``allow_resubscribe=True`` here) and reads statuses one subscriber at a time (see
:mod:`~airflow_provider_hubcomm.batch.guard`). Accounting, thresholds and outputs are the same as in batch
mode. Single calls cost one request per row instead of per ``batch_size`` rows: :func:`fallback_plan`
estimates the requests and time the rest of the run needs, and refuses when that exceeds the day's budget.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow_provider_hubcomm.batch.reasons import (
    EMPTY_ANSWER,
    NOT_FINAL,
    ChunkResult,
    Reason,
    Row,
    classify_error,
    not_sent,
)
from airflow_provider_hubcomm.constants import DEFAULT_REQUESTS_PER_10S, RATE_LIMIT_WINDOW
from airflow_provider_hubcomm.models import BatchStatus, StatusUpdate

if TYPE_CHECKING:
    from airflow_provider_hubcomm.hooks.hubcomm import HubCommHook

__all__ = ["DEFAULT_DAILY_REQUEST_BUDGET", "EMPTY_ANSWER", "fallback_plan", "send_single"]

#: HubSpot's smallest daily limit (private apps on Free and Starter accounts).
DEFAULT_DAILY_REQUEST_BUDGET = 250_000
_COMPLETE = BatchStatus.COMPLETE.value


def send_single(hook: HubCommHook, index: int, rows: list[Row]) -> ChunkResult:
    """Write each row with its own request (worker thread); never raises but on interrupts.

    A 2xx answer confirms a row when its ``results`` hold the row's subscription; a ``PENDING``/``PROCESSING``
    answer without results counts it written and unconfirmed; any other answer (``{}``, no results) fails
    it, saying what came back.

    :param hook: the hook (thread-safe).
    :param index: the chunk's number (the ``operation`` of its written rows).
    :param rows: the rows, already screened by the guard.
    """
    result = ChunkResult(index, rows)
    for n, (row, write) in enumerate(rows):
        update = StatusUpdate.model_validate({k: v for k, v in write.to_api().items() if k != "subscriberIdString"})
        try:
            answer = hook.set_status(write.subscriber, update, allow_resubscribe=True)
        except BaseException as err:
            fatal, reason = classify_error(err)
            result.failed.append((row, write, reason))
            if fatal:
                result.failed.extend((r, w, not_sent(reason)) for r, w in rows[n + 1 :])
                result.fatal = err
                if not isinstance(err, Exception):
                    raise
                return result
            continue
        status = (answer.status or "").upper()
        if any(s.subscription_id == write.subscription_id for s in answer.results):
            result.written.append((row, write, status if status in NOT_FINAL else _COMPLETE))
        elif not answer.results and status in NOT_FINAL:
            result.written.append((row, write, status))
        else:
            got = f"status {answer.status!r} with {len(answer.results)} results" if answer.status else "no status"
            message = f"HubSpot's answer confirms nothing ({got}, none for subscription {write.subscription_id})"
            result.failed.append((row, write, Reason(EMPTY_ANSWER, message, answer.correlation_id)))
    return result


def fallback_plan(
    writes: int,
    reads: int,
    *,
    requests_per_10s: int | None,
    budget: int,
    used: int,
    daily_remaining: int | None = None,
) -> tuple[bool, str]:
    """Estimate what finishing the run with single calls costs; return ``(fits, message)``.

    :param writes: rows still to write (one request each).
    :param reads: single status reads still needed, at most.
    :param requests_per_10s: the connection's rate budget (``None``: the hook's default).
    :param budget: the daily request budget (``daily_request_budget``).
    :param used: requests this run already made.
    :param daily_remaining: HubSpot's ``X-HubSpot-RateLimit-Daily-Remaining`` when an answer carried it; it
        wins over the configured budget when smaller (other apps of the account spend the same day).
    """
    needed = writes + reads
    rate = requests_per_10s or DEFAULT_REQUESTS_PER_10S
    seconds = needed * RATE_LIMIT_WINDOW / rate
    left = max(budget - used, 0)
    source = f"daily request budget left: {left} of {budget}"
    if daily_remaining is not None and daily_remaining < left:
        left = max(daily_remaining, 0)
        source = f"HubSpot's daily remaining: {left}"
    message = (
        f"at most {needed} single requests ({writes} writes, up to {reads} status reads), about "
        f"{seconds / 60:.1f} min at {rate} requests per 10 s; {source}"
    )
    return needed <= left, message
