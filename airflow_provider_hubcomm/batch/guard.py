"""The status reads of a batch run: the re-subscribe guard and ``only_changes``, packed and brand-aware.

HubSpot's ``businessUnitId`` filters a status read to one brand, so each row is read with its subscription's
brand (from the subscription catalog). Only rows that need a read go through here: rows writing
``SUBSCRIBED`` while ``allow_resubscribe`` is false (the guard), or every row with ``only_changes``.

:class:`Packer` gathers such rows per brand and channel until a read request is full (``batch_size``
distinct subscribers), so a run sends about one read per ``batch_size`` guarded *subscribers* instead of
one per write chunk. A :class:`ReadJob` is read in a worker thread (:func:`read_job`: one ``batch/read``,
or single reads in the fallback mode) and decided in the engine's thread (:func:`decide`):

* status read: a guarded row whose subscription reads ``UNSUBSCRIBED`` is skipped
  (``resubscribe_not_allowed``); one reading ``SUBSCRIBED`` passes; any other (``NOT_SPECIFIED``, no
  status) needs the opt-out-of-all ("wide") read, gathered the same way; an unreadable subscriber fails
  its guarded rows (never re-subscribed blindly). With ``only_changes``, a row whose state is already set
  is skipped ``unchanged``.
* wide read: a subscriber opted out of all e-mail of the brand (or portal-wide) is not re-subscribed either.

A status read answers every subscription of the subscriber's brand, so :class:`ReadCache` keeps the answers
of the last :data:`CACHE_SUBSCRIBERS` subscribers per brand: a second row of the same subscriber (another
subscription) costs no read. That is safe within a run: duplicates are resolved before the send pass, so a
row's own subscription is never written earlier in the same run, and the run sends no unsubscribe-all.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from airflow_provider_hubcomm.batch.chunk import as_list, error_reason
from airflow_provider_hubcomm.batch.reasons import Reason, Row, classify_error, is_too_large
from airflow_provider_hubcomm.models import StatusState

if TYPE_CHECKING:
    from airflow_provider_hubcomm.batch.chunk import BatchSize
    from airflow_provider_hubcomm.batch.options import BatchWriteOptions
    from airflow_provider_hubcomm.batch.rows import WriteRow
    from airflow_provider_hubcomm.hooks.hubcomm import HubCommHook

__all__ = [
    "RESUBSCRIBE",
    "Packer",
    "ReadCache",
    "ReadJob",
    "Verdict",
    "decide",
    "needs_read",
    "read_job",
    "remembered_refusal",
]

_SUBSCRIBED = StatusState.SUBSCRIBED.value
_UNSUBSCRIBED = StatusState.UNSUBSCRIBED.value
#: Subscribers whose read answers are kept (per kind, oldest dropped first).
CACHE_SUBSCRIBERS = 10_000
RESUBSCRIBE = "resubscribe_not_allowed"
UNCHANGED = "unchanged"

Kind = Literal["status", "wide"]
CacheKey = tuple[str, int | None]
#: ``(row, write, verdict, detail)``: ``write`` (send it), ``wide`` (needs the opt-out-of-all read),
#: ``skip`` (detail: ``(reason, message)``) or ``fail`` (detail: a :class:`Reason`).
Verdict = tuple[int, "WriteRow", str, object]


def needs_read(write: WriteRow, options: BatchWriteOptions) -> bool:
    """Return whether a row waits for a status read before its write.

    :param write: the row.
    :param options: the run's options: the guard is on unless ``allow_resubscribe``; ``only_changes`` reads
        every row.
    """
    return options.only_changes or (not options.allow_resubscribe and write.state == _SUBSCRIBED)


@dataclass(slots=True)
class ReadJob:
    """One read request (or, in single mode, one read per subscriber) and the rows waiting for it.

    :param kind: ``status`` (``batch/read``) or ``wide`` (``batch/unsubscribe-all/read``).
    :param brand: the ``businessUnitId`` to read with.
    :param channel: the channel.
    """

    kind: Kind
    brand: int | None
    channel: str
    subscribers: dict[str, str] = field(default_factory=dict)
    rows: list[Row] = field(default_factory=list)
    states: dict[tuple[str, int], str] = field(default_factory=dict)
    opted_out: dict[str, str] = field(default_factory=dict)
    unreadable: dict[str, Reason] = field(default_factory=dict)
    error: BaseException | None = None
    single: bool = False


class Packer:
    """Gathers rows into full read requests per brand and channel.

    A row whose subscriber is already waiting for a read (in an open or an in-flight job of its brand) joins
    that job instead of being read again; :meth:`done` forgets a job's subscribers once it is applied.

    :param kind: what the jobs read.
    :param size: the run's batch size (distinct subscribers per request).
    """

    def __init__(self, kind: Kind, size: BatchSize) -> None:
        self.kind = kind
        self.size = size
        self.open: dict[tuple[int | None, str], ReadJob] = {}
        self.waiting: dict[tuple[str, int | None, str], ReadJob] = {}

    def __bool__(self) -> bool:
        return bool(self.open)

    def add(self, brand: int | None, row: int, write: WriteRow) -> ReadJob | None:
        """Add a row; return a full job when this row's subscriber does not fit into the open one.

        :param brand: the row's subscription's brand.
        :param row: row number.
        :param write: the row.
        """
        sub = write.subscriber.lower()
        joined = self.waiting.get((sub, brand, write.channel))
        if joined is not None:
            joined.rows.append((row, write))
            return None
        key = (brand, write.channel)
        job = self.open.get(key)
        full = None
        if job is not None and sub not in job.subscribers and len(job.subscribers) >= self.size.current:
            full = job
            job = None
        if job is None:
            job = self.open[key] = ReadJob(self.kind, brand, write.channel)
        job.subscribers[sub] = write.subscriber
        job.rows.append((row, write))
        self.waiting[(sub, brand, write.channel)] = job
        return full

    def done(self, job: ReadJob) -> None:
        """Forget a finished job's subscribers (later rows of theirs need the cache or a new read).

        :param job: the job, applied.
        """
        for sub in job.subscribers:
            if self.waiting.get((sub, job.brand, job.channel)) is job:
                del self.waiting[(sub, job.brand, job.channel)]

    def flush(self) -> list[ReadJob]:
        """Return (and forget) every partly filled job."""
        jobs = list(self.open.values())
        self.open.clear()
        return jobs


class ReadCache:
    """The read answers of recently read subscribers, per brand (bounded).

    :param limit: subscribers kept per kind.
    """

    def __init__(self, limit: int = CACHE_SUBSCRIBERS) -> None:
        self.limit = limit
        self._status: OrderedDict[tuple[str, int | None], dict[int, str]] = OrderedDict()
        self._wide: OrderedDict[tuple[str, int | None], str | None] = OrderedDict()

    def remember(self, job: ReadJob) -> None:
        """Keep the answers of a successful job's readable subscribers.

        :param job: the job, read.
        """
        readable = [sub for sub in job.subscribers if sub not in job.unreadable]
        if job.kind == "status":
            found: dict[str, dict[int, str]] = {sub: {} for sub in readable}
            for (sub, sid), state in job.states.items():
                if sub in found:
                    found[sub][sid] = state
            for sub, states in found.items():
                self._put(self._status, (sub, job.brand), states)
        else:
            for sub in readable:
                self._put(self._wide, (sub, job.brand), job.opted_out.get(sub))

    def _put(self, store: OrderedDict[CacheKey, Any], key: CacheKey, value: object) -> None:
        store[key] = value
        store.move_to_end(key)
        if len(store) > self.limit:
            store.popitem(last=False)

    def answer(self, kind: Kind, brand: int | None, row: int, write: WriteRow) -> ReadJob | None:
        """Return a job already answered from the cache for one row, or ``None`` when it needs a read.

        :param kind: what the row needs.
        :param brand: its subscription's brand.
        :param row: row number.
        :param write: the row.
        """
        sub = write.subscriber.lower()
        key = (sub, brand)
        job = ReadJob(kind, brand, write.channel, {sub: write.subscriber}, [(row, write)])
        if kind == "status":
            states = self._status.get(key)
            if states is None:
                return None
            job.states = {(sub, sid): state for sid, state in states.items()}
        else:
            if key not in self._wide:
                return None
            opted_out = self._wide[key]
            if opted_out is not None:
                job.opted_out[sub] = opted_out
        return job


def _counts(brand: int | None, wide_type: str | None, wide_brand: int | None) -> bool:
    return (wide_type or "").upper() == "PORTAL_WIDE" or wide_brand is None or wide_brand == brand


def _batch_read(hook: HubCommHook, job: ReadJob, subs: list[str]) -> None:
    if job.kind == "status":
        answer = hook.batch_read(subs, channel=job.channel, business_unit_id=job.brand)
        for entry in answer.results:
            if entry.subscriber_id_string is None:
                continue
            sub = entry.subscriber_id_string.lower()
            for status in entry.statuses:
                if status.subscription_id is not None and status.status is not None:
                    job.states[(sub, status.subscription_id)] = status.status.upper()
        errors, correlation = answer.errors, answer.correlation_id
    else:
        wide = hook.batch_read_wide(subs, channel=job.channel, business_unit_id=job.brand)
        for item in wide.results:
            if item.subscriber_id_string is None:
                continue
            for wide_status in item.wide_statuses:
                if (wide_status.status or "").upper() != _SUBSCRIBED and _counts(
                    job.brand, wide_status.wide_status_type, wide_status.business_unit_id
                ):
                    job.opted_out[item.subscriber_id_string.lower()] = wide_status.wide_status_type or "opted out"
        errors, correlation = wide.errors, wide.correlation_id
    for error in errors:
        for sub in as_list(error.context.get("subscriberIdString")):
            job.unreadable.setdefault(sub.strip().lower(), error_reason(error, correlation))


def _single_read(hook: HubCommHook, job: ReadJob, sub: str, given: str) -> None:
    try:
        if job.kind == "status":
            answer = hook.get_statuses(given, channel=job.channel, business_unit_id=job.brand)
            for status in answer.results:
                if status.subscription_id is not None and status.status is not None:
                    job.states[(sub, status.subscription_id)] = status.status.upper()
        else:
            wide = hook.get_unsubscribe_all_status(given, channel=job.channel, business_unit_id=job.brand)
            for item in wide.results:
                if (item.status or "").upper() != _SUBSCRIBED and _counts(
                    job.brand, item.wide_status_type, item.business_unit_id
                ):
                    job.opted_out[sub] = item.wide_status_type or "opted out"
    except Exception as err:
        fatal, reason = classify_error(err)
        if fatal:
            raise
        job.unreadable[sub] = reason


def read_job(hook: HubCommHook, job: ReadJob, size: BatchSize) -> ReadJob:
    """Read what ``job`` needs (worker thread); never raises but on interrupts (see :attr:`ReadJob.error`).

    :param hook: the hook (thread-safe).
    :param job: the job; filled in place.
    :param size: the run's batch size (a read HubSpot calls too large is resent in halves).
    """
    try:
        if job.single:
            for sub, given in job.subscribers.items():
                _single_read(hook, job, sub, given)
            return job
        pieces = [list(job.subscribers.values())]
        while pieces:
            piece = pieces.pop()
            try:
                _batch_read(hook, job, piece)
            except Exception as err:
                if not is_too_large(err) or len(piece) < 2:
                    raise
                half = (len(piece) + 1) // 2
                size.reduce(half, hook.redact(str(err)))
                pieces.extend((piece[half:], piece[:half]))
    except Exception as err:
        job.error = err
    return job


def _unreadable(why: Reason) -> Reason:
    return Reason(
        why.category, f"current status unreadable, not re-subscribing blindly: {why.message}", why.correlation_id
    )


def remembered_refusal(write: WriteRow) -> str:
    """Return the failed-rows message of a row the guard refused in an earlier run, unchanged since.

    :param write: the row.
    """
    return (
        f"{write.subscriber} was not re-subscribed to subscription {write.subscription_id} in an earlier run "
        "(opted out in HubSpot) and this row has not changed since; not read or sent again "
        "(allow_resubscribe=False; full_resync=True checks it again)"
    )


def decide(job: ReadJob, options: BatchWriteOptions) -> Iterator[Verdict]:
    """Yield the verdict of each row of a finished, successful job (engine thread).

    :param job: the job, read.
    :param options: the run's options: the guard is on unless ``allow_resubscribe``; ``only_changes`` skips
        rows whose state is already set.
    """
    guard, only_changes = not options.allow_resubscribe, options.only_changes
    for row, write in job.rows:
        sub = write.subscriber.lower()
        guarded = guard and write.state == _SUBSCRIBED
        if job.kind == "wide":
            if sub in job.opted_out:
                message = (
                    f"{write.subscriber} opted out of all e-mail in HubSpot ({job.opted_out[sub]}, brand {job.brand}); "
                    f"not re-subscribed to subscription {write.subscription_id} (allow_resubscribe=False)"
                )
                yield row, write, "skip", (RESUBSCRIBE, message)
            elif sub in job.unreadable:
                yield row, write, "fail", _unreadable(job.unreadable[sub])
            else:
                yield row, write, "write", None
            continue
        state = job.states.get(write.key)
        if guarded and state == _UNSUBSCRIBED:
            yield row, write, "skip", (RESUBSCRIBE, None)
        elif only_changes and state == write.state:
            yield row, write, "skip", (UNCHANGED, None)
        elif guarded and state is None and sub in job.unreadable:
            yield row, write, "fail", _unreadable(job.unreadable[sub])
        elif guarded and state != _SUBSCRIBED:
            yield row, write, "wide", None
        else:
            yield row, write, "write", None
