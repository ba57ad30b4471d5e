"""Bulk "unsubscribe from all e-mail" (GDPR erasure, suppression lists): the run of ``BatchUnsubscribeAllOperator``.

A run reads the input once (any input :func:`~.sources.iter_rows` accepts), takes each row's subscriber from
``subscriber_column`` (other columns are ignored: a suppression list often carries more), and checks every row
before the first request: a value that is not an e-mail address is invalid (``on_invalid``,
``max_invalid_ratio``: a batch write's rules, :func:`~.thresholds.check_validation`), an address seen before is
a ``duplicate`` (compared case-insensitively; the first row is sent). A ``subscriber_column`` that no row has is
an error, not an empty run.

Valid addresses go out in chunks of ``batch_size`` through ``POST …/statuses/batch/unsubscribe-all`` for one
brand (``business_unit_id``), concurrently, through the hook's rate limiter and retry policy, with the same rules
as a batch write: a per-input error fails its row with HubSpot's reason; a ``PENDING``/``PROCESSING`` answer
writes its rows *unconfirmed* (``BatchStatusSensor`` reads them back through
``batch/unsubscribe-all/read``); a 400 "too large" halves the request; a ``403 MISSING_SCOPES`` (no Marketing
Hub Enterprise) falls back to single ``unsubscribe-all`` calls when the rest of the run fits the daily request
budget (``on_missing_batch_scope``); 401/403 and the daily 429 abort the run. Every row ends written, failed or
skipped, and the summary has the batch write's shape (``kind: "unsubscribe_all"``).
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from airflow_provider_hubcomm.batch.chunk import BatchSize, as_list, error_reason
from airflow_provider_hubcomm.batch.reasons import (
    CANCELED_REASON,
    MISSING_REASON,
    NOT_FINAL,
    Reason,
    classify_error,
    is_missing_scopes,
    is_too_large,
    not_sent,
)
from airflow_provider_hubcomm.batch.single import fallback_plan
from airflow_provider_hubcomm.batch.spool import KEEP_ERROR_ROWS, ValidationPass
from airflow_provider_hubcomm.batch.thresholds import check_validation
from airflow_provider_hubcomm.exceptions import BatchAbortedError, HubCommValidationError
from airflow_provider_hubcomm.models import BatchStatus
from airflow_provider_hubcomm.rules import (
    MISSING_VALUE,
    SUBSCRIBER_ID_STRING,
    Channel,
    Invalid,
    RowError,
    check_subscriber,
)

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping

    from airflow_provider_hubcomm.batch.options import UnsubscribeAllOptions
    from airflow_provider_hubcomm.batch.optout_account import OptOutAccount
    from airflow_provider_hubcomm.batch.outputs import JsonLinesSink
    from airflow_provider_hubcomm.contracts import OptOutSummary
    from airflow_provider_hubcomm.hooks.hubcomm import HubCommHook

__all__ = ["BatchUnsubscribeAllRun"]

log = logging.getLogger("airflow_provider_hubcomm.batch.engine")

Row = tuple[int, str]


@dataclass
class _Outcome:
    """What one job (a chunk, or a run of single calls) did; built in a worker thread, applied in the run's."""

    written: list[tuple[Row, str]] = field(default_factory=list)
    failed: list[tuple[Row, Reason]] = field(default_factory=list)
    operations: list[tuple[str, int, Any]] = field(default_factory=list)
    #: ``(error, rows not sent)`` when the job ended the run (or, with rows, asks for the single-call fallback).
    fatal: tuple[BaseException, list[Row]] | None = None


_COMPLETE = BatchStatus.COMPLETE.value
_CANCELED = BatchStatus.CANCELED.value
_STATUSES = frozenset(s.value for s in BatchStatus)


class BatchUnsubscribeAllRun:
    """Check, de-duplicate and send many subscribers to ``batch/unsubscribe-all``; return the run summary.

    :param hook: the hook whose public methods send the requests.
    :param sinks: ``(failed_sink, written_sink)``; the written sink is ``None`` in a dry run.
    :param options: the run's options (the subscriber column, the brand, batch size, concurrency, ...).
    """

    def __init__(
        self, hook: HubCommHook, sinks: tuple[JsonLinesSink, JsonLinesSink | None], options: UnsubscribeAllOptions
    ) -> None:
        self.hook = hook
        self.sinks = sinks
        self.options = options
        self.size = BatchSize(options.batch_size)
        self.mode: Literal["batch", "single"] = "batch"
        self.chunks = 0

    # -- checking -------------------------------------------------------------------------------------------

    def check(self, rows: Iterator[tuple[int, Mapping[str, Any]]], account: OptOutAccount) -> list[Row]:
        """Read every row once; return the valid, first-seen subscribers; raise before sending on bad input."""
        valid: list[Row] = []
        seen: set[str] = set()
        column, skip = self.options.subscriber_column, self.options.on_invalid == "skip"
        column_seen = False
        checked = ValidationPass()
        for number, raw in rows:
            account.rows_read += 1
            value = raw.get(column)
            column_seen = column_seen or column in raw
            error: RowError | None = None
            if value is None or value == "":
                error = RowError.of(number, SUBSCRIBER_ID_STRING, MISSING_VALUE, column=column)
            else:
                try:
                    address = check_subscriber(value)
                except Invalid as exc:
                    error = RowError.of(number, SUBSCRIBER_ID_STRING, exc.problem, value, column)
            if error is not None:
                checked.invalid += 1
                if checked.invalid <= KEEP_ERROR_ROWS:
                    checked.errors.append(error)
                if skip:
                    account.invalid(number, raw, str(error))
                continue
            key = address.lower()
            if key in seen:
                account.skipped["duplicate"] += 1
                continue
            seen.add(key)
            valid.append((number, address))
        if account.rows_read and not column_seen:
            raise HubCommValidationError(f"subscriber_column={column!r} names no column of the input; nothing was sent")
        checked.rows_read, checked.valid = account.rows_read, account.rows_read - checked.invalid
        check_validation(checked, on_invalid=self.options.on_invalid, max_invalid_ratio=self.options.max_invalid_ratio)
        return valid

    # -- sending --------------------------------------------------------------------------------------------

    def _batch(self, rows: list[Row]) -> _Outcome:
        """Send one chunk (halving on "too large"); never raises but on interrupts."""
        out = _Outcome()
        pieces = [rows]
        while pieces:
            piece = pieces.pop()
            try:
                answer = self.hook.batch_unsubscribe_all(
                    [s for _, s in piece], business_unit_id=self.options.business_unit_id, verbose=self.options.verbose
                )
            except Exception as err:
                if is_too_large(err) and len(piece) > 1:
                    half = (len(piece) + 1) // 2
                    self.size.reduce(half, self.hook.redact(str(err)))
                    pieces.extend((piece[half:], piece[:half]))
                    continue
                if is_missing_scopes(err):
                    out.fatal = (err, [r for p in [piece, *pieces] for r in p])
                    return out
                fatal, reason = classify_error(err)
                out.failed.extend((r, reason) for r in piece)
                if fatal:
                    out.failed.extend((r, not_sent(reason)) for p in pieces for r in p)
                    out.fatal = (err, [])
                    return out
                continue
            status = (answer.status or _COMPLETE).upper()
            status = status if status in _STATUSES else _COMPLETE
            out.operations.append((status, len(piece), answer))
            if status == _CANCELED:
                out.failed.extend((r, Reason(None, CANCELED_REASON, answer.correlation_id)) for r in piece)
                continue
            done = {(e.subscriber_id_string or "").strip().lower() for e in answer.results}
            named: dict[str, Reason] = {}
            for error in answer.errors:
                for sub in as_list(error.context.get("subscriberIdString")):
                    named.setdefault(sub.strip().lower(), error_reason(error, answer.correlation_id))
            first = error_reason(answer.errors[0], answer.correlation_id) if answer.errors else None
            for row in piece:
                key = row[1].lower()
                if key in named:
                    out.failed.append((row, named[key]))
                elif key in done or status in NOT_FINAL:
                    out.written.append((row, status))
                else:
                    out.failed.append((row, first or Reason(None, MISSING_REASON, answer.correlation_id)))
        return out

    def _single(self, rows: list[Row]) -> _Outcome:
        """Send each row as one ``unsubscribe-all`` call (the fallback without batch scopes)."""
        out = _Outcome()
        for n, row in enumerate(rows):
            try:
                answer = self.hook.unsubscribe_all(row[1], business_unit_id=self.options.business_unit_id)
            except Exception as err:
                fatal, reason = classify_error(err)
                out.failed.append((row, reason))
                if fatal:
                    out.failed.extend((r, not_sent(reason)) for r in rows[n + 1 :])
                    out.fatal = (err, [])
                    return out
                continue
            status = (answer.status or _COMPLETE).upper()
            out.written.append((row, status if status in NOT_FINAL else _COMPLETE))
        return out

    def _job(self, rows: list[Row]) -> _Outcome:
        return self._single(rows) if self.mode == "single" else self._batch(rows)

    def _fall_back(self, err: BaseException, remaining: int) -> Reason | None:
        """Switch to single calls after a ``403 MISSING_SCOPES``; return why not when the run must stop."""
        why = self.hook.redact(str(err))
        if self.options.on_missing_batch_scope == "fail":
            return Reason("MISSING_SCOPES", f"batch endpoints refused (on_missing_batch_scope='fail'): {why}")
        fits, plan = fallback_plan(
            remaining,
            0,
            requests_per_10s=self.hook.config.requests_per_10s,
            budget=self.options.daily_request_budget,
            used=self.hook.counters()["requests"],
            daily_remaining=self.hook.rate_limiter.daily_remaining,
        )
        if not fits:
            return Reason("DAILY_BUDGET", f"the account lacks the batch scopes ({why}); single calls need {plan}")
        log.warning("No batch scopes (%s): falling back to single unsubscribe-all calls: %s.", why, plan)
        self.mode = "single"
        return None

    def send(self, rows: list[Row], account: OptOutAccount) -> BaseException | None:
        """Send every row; return the fatal error when the run aborted."""
        self.hook.prepare()
        pending = list(reversed(rows))
        in_flight: dict[Future[_Outcome], int] = {}
        abort: list[Any] = []  # [error, not-sent reason] once the run stops

        def take() -> list[Row]:
            n = self.size.current if self.mode == "batch" else max(1, self.size.current // 10)
            return [pending.pop() for _ in range(min(n, len(pending)))]

        def stop(err: BaseException, reason: Reason, rows: list[Row]) -> None:
            abort.extend((err, not_sent(reason)))
            for row, subscriber in [*rows, *reversed(pending)]:
                account.fail(row, subscriber, abort[1])
            pending.clear()

        concurrency = self.options.max_concurrency
        with ThreadPoolExecutor(concurrency, thread_name_prefix="hubcomm-optout") as pool:
            while pending or in_flight:
                while pending and not abort and len(in_flight) < 2 * concurrency:
                    in_flight[pool.submit(self._job, take())] = self.chunks
                    self.chunks += 1
                done, _ = wait(in_flight, return_when=FIRST_COMPLETED)
                for future in done:
                    index = in_flight.pop(future)
                    out = future.result()
                    for status, size, answer in out.operations:
                        account.operation(
                            index, status, size, answer.requested_at, answer.started_at, answer.completed_at
                        )
                    for (row, subscriber), status in out.written:
                        account.write(row, subscriber, index, status)
                    for (row, subscriber), reason in out.failed:
                        account.fail(row, subscriber, reason)
                    if out.fatal is None:
                        continue
                    err, requeue = out.fatal
                    if abort:
                        for row, subscriber in requeue:
                            account.fail(row, subscriber, abort[1])
                    elif not requeue:
                        stop(err, classify_error(err)[1], [])
                    elif (why := self._fall_back(err, len(requeue) + len(pending))) is None:
                        pending.extend(reversed(requeue))
                    else:
                        stop(err, why, requeue)
        return abort[0] if abort else None

    # -- the run --------------------------------------------------------------------------------------------

    def run(self, rows: Iterator[tuple[int, Mapping[str, Any]]], account: OptOutAccount) -> OptOutSummary:
        """Check, send and account for every row; return the summary (``BatchAbortedError`` on a fatal error)."""
        started = time.monotonic()
        dry_run = self.options.dry_run
        counters0 = self.hook.counters() if not dry_run else {"requests": 0, "retries": 0}
        valid = self.check(rows, account)
        aborted = None
        if dry_run:
            account.skipped["dry_run"] += len(valid)
        else:
            aborted = self.send(valid, account)
        counters1 = self.hook.counters() if not dry_run else counters0
        duration = time.monotonic() - started
        summary = account.summary(
            conn_id=self.hook.hubcomm_conn_id,
            channel=Channel.EMAIL.value,
            mode=self.mode,
            dry_run=dry_run,
            requests=counters1["requests"] - counters0["requests"],
            retries=counters1["retries"] - counters0["retries"],
            duration=duration,
            plan={
                "rows_to_send": len(valid),
                "chunks": self.chunks if not dry_run else -(-len(valid) // self.size.start),
                "batch_size": self.size.start,
                "batch_size_used": self.size.current,
                "batch_size_reduced": self.size.reduced,
                "max_concurrency": self.options.max_concurrency,
            },
        )
        if aborted is not None:
            summary["aborted_by"] = self.hook.redact(f"{type(aborted).__name__}: {aborted}")
            raise BatchAbortedError(f"Opt-out run aborted by {summary['aborted_by']}", summary) from aborted
        return summary
