"""One write chunk of a batch run in batch mode: one ``batch/write`` request, and per-row reconciliation.

:func:`send_chunk` runs in a worker thread and never raises: every outcome, including a fatal error, is
returned as a :class:`ChunkResult` that the engine accounts for in its own thread.

Reconciliation of a 2xx answer (HubSpot's spec declares 200 with ``errors[]``; 207 is accepted alike):

* ``COMPLETE``: a row is written when ``results`` holds a status with its subscriber (case-insensitive) and
  subscription id. Otherwise it failed, with the reason of the error whose ``context`` names its subscriber
  and subscription id, else the error naming its subscriber (without a subscription id), else the answer's
  first error, else "missing from HubSpot's results".
* ``PENDING``/``PROCESSING`` (not final; such answers need not echo any result): a row named by an error
  failed; every other row is written *unconfirmed* (``BatchStatusSensor`` verifies it by read-back).
* ``CANCELED``: every row of the request failed.

Batch size by evidence: a 400 whose message says the batch is too large halves the request and resends
both halves (down to one row); :class:`BatchSize` remembers the working size for the rest of the run, and a
chunk built before HubSpot refused a size is cut to the remembered size before it is sent.
A ``403 MISSING_SCOPES`` returns the rows unsent in :attr:`ChunkResult.requeue` (the engine falls back to
single writes).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from airflow_provider_hubcomm.batch.reasons import (
    CANCELED_REASON,
    MISSING_REASON,
    NOT_FINAL,
    ChunkResult,
    Reason,
    Row,
    classify_error,
    is_missing_scopes,
    is_too_large,
)
from airflow_provider_hubcomm.models import BatchStatus

if TYPE_CHECKING:
    from airflow_provider_hubcomm.hooks.hubcomm import HubCommHook
    from airflow_provider_hubcomm.models import BatchWriteAck, BatchWriteResponse, StandardError

__all__ = ["BatchSize", "ChunkResult", "Row", "as_list", "error_reason", "reconcile", "send_chunk"]

log = logging.getLogger("airflow_provider_hubcomm.batch.engine")

_KNOWN_STATUSES = frozenset(s.value for s in BatchStatus)


class BatchSize:
    """The batch size the run uses, lowered for the rest of the run when HubSpot says a batch is too large.

    :param start: the configured ``batch_size``.
    """

    def __init__(self, start: int) -> None:
        self.start = start
        self.current = start
        self._lock = threading.Lock()

    @property
    def reduced(self) -> bool:
        """Whether HubSpot's answers lowered the size."""
        return self.current < self.start

    def reduce(self, size: int, why: str) -> None:
        """Use at most ``size`` rows per request from now on.

        :param size: the smaller size.
        :param why: HubSpot's message (redacted), for the log.
        """
        with self._lock:
            if size >= self.current:
                return
            self.current = size
        log.warning(
            "HubSpot refused a batch as too large (%s); using batch size %d for the rest of the run.", why, size
        )


def as_list(value: Any) -> list[str]:
    """Return an error ``context`` value as a list of strings.

    :param value: a string, a list of them, or ``None``.
    """
    if value is None:
        return []
    if isinstance(value, list | tuple | set):
        return [str(v) for v in value]
    return [str(value)]


def error_reason(error: StandardError, correlation_id: str | None = None) -> Reason:
    """Return the reason of one per-input error of a batch answer.

    :param error: the error.
    :param correlation_id: the answer's correlation id.
    """
    return Reason(
        error.category or (f"HTTP {error.status}" if error.status else None),
        error.message or "no message",
        correlation_id,
    )


def reconcile(
    rows: Sequence[Row], response: BatchWriteResponse | BatchWriteAck, *, final: bool = True
) -> tuple[list[Row], list[tuple[int, Any, Reason]]]:
    """Split a request's rows into written and failed from HubSpot's answer.

    :param rows: the rows sent, in request order.
    :param response: HubSpot's 2xx answer.
    :param final: the answer's status is ``COMPLETE`` (rows must be in ``results``); otherwise only rows named
        by an error fail.
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
        reason = error_reason(error, response.correlation_id)
        subscribers = [s.strip().lower() for s in as_list(error.context.get("subscriberIdString"))]
        ids = as_list(error.context.get("subscriptionId"))
        for sub in subscribers:
            if ids:
                for text_id in ids:
                    by_pair.setdefault((sub, text_id.strip()), reason)
            else:
                by_subscriber.setdefault(sub, reason)
    fallback = (
        error_reason(response.errors[0], response.correlation_id)
        if response.errors
        else Reason(None, MISSING_REASON, response.correlation_id)
    )
    written: list[Row] = []
    failed: list[tuple[int, Any, Reason]] = []
    for row, write in rows:
        sub, sid = write.key
        if final and (sub, sid) in done:
            written.append((row, write))
            continue
        named = by_pair.get((sub, str(sid))) or by_subscriber.get(sub)
        if named is None and not final:
            written.append((row, write))
        else:
            failed.append((row, write, named or fallback))
    return written, failed


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


def _account_answer(result: ChunkResult, piece: list[Row], response: BatchWriteResponse | BatchWriteAck) -> None:
    op = _operation(response, len(piece))
    result.operations.append(op)
    status = op["status"]
    if status == BatchStatus.CANCELED.value:
        _fail_all(result, piece, Reason(None, CANCELED_REASON, response.correlation_id))
        return
    written, failed = reconcile(piece, response, final=status not in NOT_FINAL)
    result.written.extend((row, write, status) for row, write in written)
    result.failed.extend(failed)


def send_chunk(hook: HubCommHook, index: int, rows: list[Row], size: BatchSize) -> ChunkResult:
    """Send one chunk with ``batch/write`` and account for each of its rows (never raises but on interrupts).

    :param hook: the hook (thread-safe).
    :param index: the chunk's number.
    :param rows: ``(row_number, write_row)`` pairs, no two with the same key.
    :param size: the run's batch size; lowered when HubSpot says a request is too large.
    """
    result = ChunkResult(index, rows)
    pieces = [rows]
    while pieces:
        piece = pieces.pop()
        limit = size.current
        if len(piece) > limit:
            # Cut before sending: a size HubSpot refused since this chunk was built is not tried again.
            pieces.extend(reversed([piece[i : i + limit] for i in range(0, len(piece), limit)]))
            continue
        body = '{"inputs":[' + ",".join([write.to_json() for _, write in piece]) + "]}"
        try:
            response = hook.batch_write_serialized(body.encode())
        except BaseException as err:
            if isinstance(err, Exception) and is_too_large(err) and len(piece) > 1:
                half = (len(piece) + 1) // 2
                size.reduce(half, hook.redact(str(err)))
                pieces.extend((piece[half:], piece[:half]))
                continue
            if isinstance(err, Exception) and is_missing_scopes(err):
                result.requeue.extend(piece)
                for rest in pieces:
                    result.requeue.extend(rest)
                result.fatal = err
                return result
            fatal, reason = classify_error(err)
            _fail_all(result, piece, reason)
            if fatal:
                for rest in pieces:
                    _fail_all(result, rest, reason)
                result.fatal = err
                if not isinstance(err, Exception):
                    raise
                return result
            continue
        _account_answer(result, piece, response)
    return result
