"""One chunk of a batch run: optional status read, one batch write, and per-row reconciliation.

:func:`send_chunk` runs in a worker thread and never raises: every outcome, including a fatal error, is
returned as a :class:`ChunkResult` that the engine accounts for in its own thread.

Reconciliation of a 200/207 answer: a row is written when ``results`` holds a status with its subscriber
(case-insensitive) and subscription id. Otherwise it failed, with the reason of the error whose ``context``
names its subscriber and subscription id, else the error naming its subscriber (without a subscription id),
else the answer's first error, else "missing from HubSpot's results". Rows of a ``CANCELED`` operation fail.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

from airflow_provider_hubcomm.exceptions import (
    HubCommAPIError,
    HubCommAuthError,
    HubCommConnectionError,
    HubCommError,
    HubCommRateLimitError,
)
from airflow_provider_hubcomm.models import BatchStatus, StatusState

if TYPE_CHECKING:
    from airflow_provider_hubcomm.batch.rows import WriteRow
    from airflow_provider_hubcomm.hooks.hubcomm import HubCommHook
    from airflow_provider_hubcomm.models import BatchReadResponse, BatchWriteAck, BatchWriteResponse, StandardError

__all__ = [
    "CANCELED_REASON",
    "MISSING_REASON",
    "ChunkResult",
    "Reason",
    "classify_error",
    "reconcile",
    "send_chunk",
]

MISSING_REASON = "missing from HubSpot's results"
CANCELED_REASON = "batch operation CANCELED by HubSpot"
_SUBSCRIBED = StatusState.SUBSCRIBED.value
_UNSUBSCRIBED = StatusState.UNSUBSCRIBED.value
_KNOWN_STATUSES = frozenset(s.value for s in BatchStatus)

Row = tuple[int, "WriteRow"]


class Reason(NamedTuple):
    """Why a row failed: HubSpot's category (or our own), message and correlation id."""

    category: str | None
    message: str
    correlation_id: str | None = None

    @property
    def key(self) -> str:
        """The ``failed_by_reason`` key: ``"<CATEGORY>: <message>"``."""
        return f"{self.category}: {self.message}" if self.category else self.message


@dataclass(slots=True)
class ChunkResult:
    """Outcome of one chunk, for every row it held.

    :param index: the chunk's number in send order (the ``operation`` of its written rows).
    :param rows: the rows of the chunk.
    """

    index: int
    rows: list[Row]
    written: list[Row] = field(default_factory=list)
    failed: list[tuple[int, WriteRow, Reason]] = field(default_factory=list)
    skipped: list[tuple[int, WriteRow, str]] = field(default_factory=list)
    operation: dict[str, Any] | None = None
    fatal: BaseException | None = None


def classify_error(err: BaseException) -> tuple[bool, Reason]:
    """Return ``(fatal, reason)`` for an exception raised by a chunk's request.

    Fatal (the run aborts): 401/403 (no later request can succeed), a 429 of the ``DAILY`` policy (the
    budget resets at midnight), and any non-HubComm exception (a bug must not be swallowed row by row).
    Everything else (400, 404, 5xx or no answer after the hook's retries, a burst 429 after retries, a
    malformed answer) fails only the chunk's rows.

    :param err: the exception.
    """
    if isinstance(err, HubCommAPIError):
        category = err.category or f"HTTP {err.status_code}"
        reason = Reason(category, err.hubspot_message or str(err), err.correlation_id)
        daily = isinstance(err, HubCommRateLimitError) and (err.policy_name or "").upper() == "DAILY"
        return isinstance(err, HubCommAuthError) or daily, reason
    if isinstance(err, HubCommConnectionError):
        return False, Reason("NO_ANSWER", str(err))
    if isinstance(err, HubCommError):
        return False, Reason(type(err).__name__, str(err))
    return True, Reason(type(err).__name__, str(err) or repr(err))


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, list | tuple | set):
        return [str(v) for v in value]
    return [str(value)]


def _error_reason(error: StandardError, correlation_id: str | None = None) -> Reason:
    return Reason(error.category, error.message or "no message", correlation_id)


def reconcile(
    rows: Sequence[Row], response: BatchWriteResponse | BatchWriteAck
) -> tuple[list[Row], list[tuple[int, Any, Reason]]]:
    """Split a chunk's rows into written and failed from HubSpot's answer.

    :param rows: the rows sent, in request order.
    :param response: HubSpot's 200/207 answer.
    :return: ``(written, failed)``; together they hold every row exactly once.
    """
    done = {
        (s.subscriber_id_string.lower(), s.subscription_id)
        for s in response.results
        if s.subscriber_id_string is not None and s.subscription_id is not None
    }
    by_pair: dict[tuple[str, str], Reason] = {}
    by_subscriber: dict[str, Reason] = {}
    for error in response.errors:
        reason = _error_reason(error, response.correlation_id)
        subscribers = [s.strip().lower() for s in _as_list(error.context.get("subscriberIdString"))]
        ids = _as_list(error.context.get("subscriptionId"))
        for sub in subscribers:
            if ids:
                for text_id in ids:
                    by_pair.setdefault((sub, text_id.strip()), reason)
            else:
                by_subscriber.setdefault(sub, reason)
    fallback = (
        _error_reason(response.errors[0], response.correlation_id)
        if response.errors
        else Reason(None, MISSING_REASON, response.correlation_id)
    )
    written: list[Row] = []
    failed: list[tuple[int, Any, Reason]] = []
    for row, write in rows:
        sub, sid = write.key
        if (sub, sid) in done:
            written.append((row, write))
        else:
            reason = by_pair.get((sub, str(sid))) or by_subscriber.get(sub) or fallback
            failed.append((row, write, reason))
    return written, failed


def _current_states(hook: HubCommHook, rows: Sequence[Row]) -> tuple[dict[tuple[str, int], str], dict[str, Reason]]:
    """Batch-read the chunk's subscribers: ``{(subscriber, id): status}`` and unreadable subscribers."""
    current: dict[tuple[str, int], str] = {}
    unreadable: dict[str, Reason] = {}
    by_channel: dict[str, dict[str, str]] = {}
    for _, write in rows:
        by_channel.setdefault(write.channel, {}).setdefault(write.subscriber.lower(), write.subscriber)
    for channel, subscribers in by_channel.items():
        answer: BatchReadResponse = hook.batch_read(list(subscribers.values()), channel=channel)
        for entry in answer.results:
            if entry.subscriber_id_string is None:
                continue
            sub = entry.subscriber_id_string.lower()
            for status in entry.statuses:
                if status.subscription_id is not None and status.status is not None:
                    current[(sub, status.subscription_id)] = status.status.upper()
        for error in answer.errors:
            for sub in _as_list(error.context.get("subscriberIdString")):
                unreadable.setdefault(sub.strip().lower(), _error_reason(error))
    return current, unreadable


def _screen(result: ChunkResult, hook: HubCommHook, only_changes: bool, allow_resubscribe: bool) -> list[Row]:
    """Apply ``only_changes`` and the re-subscribe guardrail; return the rows still to send."""
    guard = not allow_resubscribe and any(w.state == _SUBSCRIBED for _, w in result.rows)
    if not (only_changes or guard):
        return result.rows
    current, unreadable = _current_states(hook, result.rows)
    to_send: list[Row] = []
    for row, write in result.rows:
        key = write.key
        state = current.get(key)
        if guard and write.state == _SUBSCRIBED:
            if state == _UNSUBSCRIBED:
                result.skipped.append((row, write, "resubscribe_not_allowed"))
                continue
            if state is None and key[0] in unreadable:
                why = unreadable[key[0]]
                message = f"current status unreadable, not re-subscribing blindly: {why.message}"
                result.failed.append((row, write, Reason(why.category, message)))
                continue
        if only_changes and state == write.state:
            result.skipped.append((row, write, "unchanged"))
            continue
        to_send.append((row, write))
    return to_send


def _operation(response: BatchWriteResponse | BatchWriteAck, rows: int) -> dict[str, Any]:
    status = (response.status or "").upper()
    return {
        "status": status if status in _KNOWN_STATUSES else BatchStatus.COMPLETE.value,
        "reported_status": response.status,
        "requestedAt": response.requested_at,
        "startedAt": response.started_at,
        "completedAt": response.completed_at,
        "rows": rows,
    }


def _fail_all(result: ChunkResult, rows: Iterable[Row], reason: Reason) -> None:
    result.failed.extend((row, write, reason) for row, write in rows)


def send_chunk(
    hook: HubCommHook, index: int, rows: list[Row], *, only_changes: bool, allow_resubscribe: bool
) -> ChunkResult:
    """Send one chunk and account for each of its rows (never raises; see :attr:`ChunkResult.fatal`).

    :param hook: the hook (thread-safe).
    :param index: the chunk's number.
    :param rows: ``(row_number, write_row)`` pairs, no two with the same key.
    :param only_changes: read current statuses first and skip rows whose state is already set.
    :param allow_resubscribe: when false, read current statuses first if a row is ``SUBSCRIBED`` and skip
        rows that would re-subscribe an ``UNSUBSCRIBED`` subscription.
    """
    result = ChunkResult(index, rows)
    stage = "status read before write"
    try:
        to_send = _screen(result, hook, only_changes, allow_resubscribe)
        if not to_send:
            return result
        stage = "batch write"
        body = '{"inputs":[' + ",".join([write.to_json() for _, write in to_send]) + "]}"
        response = hook.batch_write_serialized(body.encode())
    except BaseException as err:
        fatal, reason = classify_error(err)
        if stage != "batch write":
            reason = reason._replace(message=f"{stage} failed: {reason.message}")
        done = {row for row, _, _ in result.failed} | {row for row, _, _ in result.skipped}
        _fail_all(result, (r for r in rows if r[0] not in done), reason)
        if fatal:
            result.fatal = err
        if not isinstance(err, Exception):
            raise
        return result
    result.operation = _operation(response, len(to_send))
    if result.operation["status"] == BatchStatus.CANCELED.value:
        _fail_all(result, to_send, Reason(None, CANCELED_REASON))
        return result
    written, failed = reconcile(to_send, response)
    result.written.extend(written)
    result.failed.extend(failed)
    return result
