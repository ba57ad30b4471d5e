"""The one read-back loop, shared by ``BatchStatusSensor`` (sync hook) and ``BatchStatusTrigger`` (async hook).

:meth:`ReadBackLoop.check` is a pure planner: a generator that yields :class:`ReadRequest` s (one brand, at
most ``read_batch_size`` subscribers, the rows they cover) and receives, for each, the statuses read
(``{(subscriber, subscription): status}``), which it records in the
:class:`~airflow_provider_hubcomm.readback.state.VerificationState`. It does no I/O besides streaming the
written-rows file. :func:`run_sync` drives it with the sync hook (:func:`read_sync`); :func:`run_async`
drives it with the async hook (:func:`read_async`) and advances the planner in a worker thread, so its CPU
work (selection, planning, recording) never holds the triggerer's event loop.

**Brands.** HubSpot's ``businessUnitId`` filters a status read to one brand, so rows are grouped by the brand
of their subscription (from the hook's subscription catalog) and each read carries that brand. A row whose
subscription is in no brand the connection knows could never be seen: :class:`UnreadableRowsError`.

**Single reads.** Accounts without Marketing Hub Enterprise have no batch scopes. When the writer's summary
says ``"mode": "single"``, or a ``batch/read`` answers ``403 MISSING_SCOPES``, :class:`StatusReader` reads
each subscriber with ``GET /statuses/{id}`` (paced by the hook's rate limiter) and says why, once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Generator, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from airflow_provider_hubcomm.exceptions import HubCommAPIError, HubCommNotFoundError, is_missing_scopes
from airflow_provider_hubcomm.readback.errors import UnreadableRowsError
from airflow_provider_hubcomm.readback.rows import (
    DEFAULT_READ_BATCH_SIZE,
    OPTED_OUT,
    Key,
    ReadbackRow,
    iter_blocks,
    wide_brand,
    wide_code,
)

if TYPE_CHECKING:
    from airflow_provider_hubcomm.contracts import ReadMode
    from airflow_provider_hubcomm.hooks.hubcomm import HubCommHook
    from airflow_provider_hubcomm.models import (
        BatchReadResponse,
        BatchWideReadResponse,
        PublicWideStatus,
        StatusResponse,
        WideStatusResponse,
    )
    from airflow_provider_hubcomm.readback.state import VerificationState

__all__ = [
    "Answer",
    "Check",
    "ReadBackLoop",
    "ReadRequest",
    "StatusReader",
    "actuals_from_response",
    "actuals_from_single",
    "plan_reads",
    "read_async",
    "read_sync",
    "run_async",
    "run_sync",
]

#: Statuses read: ``(lower-cased subscriber, subscription id) -> status``; absent keys were not found.
Answer = Mapping[Key, str]


@dataclass(frozen=True, slots=True)
class ReadRequest:
    """One read: the subscribers of one brand, and the rows the answer settles."""

    brand: int
    subscriber_ids: list[str]
    rows: list[ReadbackRow]


#: A check in progress: yields read requests, is sent their answers.
Check = Generator[ReadRequest, Answer, None]


class BrandLookup(Protocol):
    """What the loop needs of the hook's ``SubscriptionCatalog``."""

    brands: tuple[int, ...]

    def brand_of(self, subscription_id: int) -> int | None:
        """Return the brand of a subscription, or ``None`` when it is in no known brand."""


def plan_reads(
    rows: Iterable[ReadbackRow], brands: BrandLookup, max_ids: int = DEFAULT_READ_BATCH_SIZE
) -> Iterator[ReadRequest]:
    """Group rows by their subscription's brand, then into reads of at most ``max_ids`` distinct subscribers.

    The rows are checked and ordered at once; the requests are built one at a time, so a block's requests
    do not all live (and age into the collector's oldest generation) while the first ones are read.

    :param rows: the rows to read back (one block).
    :param brands: the subscription catalog.
    :param max_ids: subscribers per request.
    :raises UnreadableRowsError: a row's subscription is in no known brand (checked before any request).
    """
    #: (brand, subscriber) -> order of first appearance; plain tuples of atomic values are cheap to keep.
    order: dict[tuple[int, str], int] = {}
    placed: list[tuple[int, int]] = []  # (order, index in rows) per row
    listed: list[ReadbackRow] = list(rows)
    unknown: dict[int, list[ReadbackRow]] = {}
    for index, row in enumerate(listed):
        brand = wide_brand(row.subscription)
        if brand is None:
            brand = brands.brand_of(row.subscription)
        if brand is None:
            unknown.setdefault(row.subscription, []).append(row)
            continue
        placed.append((order.setdefault((brand, row.key[0]), len(order)), index))
    if unknown:
        text = "; ".join(
            f"subscription {sid}: {len(found)} row(s), e.g. {found[0].subscriber}" for sid, found in unknown.items()
        )
        raise UnreadableRowsError(
            f"Rows of subscriptions in none of the brands this connection knows ({list(brands.brands)}): {text}. "
            "HubSpot filters status reads by brand (businessUnitId), so these rows could never be read back. "
            "Declare the account's brands in the connection's business_unit_ids extra."
        )
    # Brands in order of first appearance, each brand's subscribers in order of first appearance.
    first_of_brand: dict[int, int] = {}
    for brand, _ in order:
        first_of_brand.setdefault(brand, len(first_of_brand))
    keys = list(order)
    placed.sort(key=lambda p: (first_of_brand[keys[p[0]][0]], p[0], p[1]))
    return _requests(listed, keys, placed, max_ids)


def _requests(
    rows: list[ReadbackRow], keys: list[tuple[int, str]], placed: list[tuple[int, int]], max_ids: int
) -> Iterator[ReadRequest]:
    ids: list[str] = []
    chunk: list[ReadbackRow] = []
    brand: int | None = None
    last = -1
    for position, index in placed:
        row_brand = keys[position][0]
        new_subscriber = position != last
        if chunk and (row_brand != brand or (new_subscriber and len(ids) == max_ids)):
            yield ReadRequest(brand if brand is not None else row_brand, ids, chunk)
            ids, chunk = [], []
        brand = row_brand
        if new_subscriber:
            ids.append(rows[index].subscriber)
            last = position
        chunk.append(rows[index])
    if chunk:
        yield ReadRequest(brand if brand is not None else 0, ids, chunk)


class ReadBackLoop:
    """Plan the reads of one check and record their answers in ``state``.

    :param state: the verification state (updated in place).
    :param brands: the subscription catalog (brand of each subscription).
    :param read_batch_size: subscribers per read.
    """

    def __init__(self, state: VerificationState, brands: BrandLookup, read_batch_size: int) -> None:
        self.state = state
        self.brands = brands
        self.read_batch_size = read_batch_size

    def check(self, first_rows: Iterable[ReadbackRow] | None, *, confirm_now: bool) -> Check:
        """Read everything selected (``first_rows``: a first check) or only the outstanding rows; count the check.

        :param first_rows: the rows of a first check (streamed), or ``None`` to re-read the outstanding rows.
        :param confirm_now: re-read at once the rows that disagreed for the first time (no memory between
            checks, e.g. ``reschedule`` mode), so a mismatch can be confirmed within the check.
        """
        state = self.state
        if first_rows is not None:
            yield from self._read(first_rows, first_read=True)
        else:
            yield from self._read(list(state.outstanding.values()), first_read=False)
        if confirm_now and (candidates := state.candidates()):
            yield from self._read(candidates, first_read=False)
        state.checks += 1

    def _read(self, rows: Iterable[ReadbackRow], *, first_read: bool) -> Check:
        for block in iter_blocks(rows):
            for request in plan_reads(block, self.brands, self.read_batch_size):
                answer = yield request
                self.state.observe(request.rows, answer, first_read=first_read)


def run_sync(check: Check, read: Callable[[ReadRequest], Answer]) -> None:
    """Drive a check with a blocking reader (the sensor).

    :param check: from :meth:`ReadBackLoop.check`.
    :param read: executes one request.
    """
    request = next(check, None)
    while request is not None:
        request = _step(check, read(request))


def _step(check: Check, answer: Answer) -> ReadRequest | None:
    try:
        return check.send(answer)
    except StopIteration:
        return None


async def run_async(
    check: Check,
    read: Callable[[ReadRequest], Awaitable[Answer]],
    within: Callable[[Awaitable[Answer]], Awaitable[Answer]] | None = None,
) -> None:
    """Drive a check with an async reader (the trigger); the planner runs in a worker thread.

    :param check: from :meth:`ReadBackLoop.check`.
    :param read: executes one request.
    :param within: wraps each read (e.g. to bound it by a deadline).
    """
    request = await asyncio.to_thread(next, check, None)
    while request is not None:
        pending = read(request)
        answer = await (within(pending) if within is not None else pending)
        request = await asyncio.to_thread(_step, check, answer)


def actuals_from_response(response: BatchReadResponse) -> dict[Key, str]:
    """Map ``(subscriber, subscription)`` to the status HubSpot reports; absent keys were not found.

    :param response: a ``batch_read`` answer (200, or 207 whose errors simply leave keys absent).
    """
    actual: dict[Key, str] = {}
    for entry in response.results:
        subscriber = (entry.subscriber_id_string or "").strip().lower()
        for status in entry.statuses:
            if status.subscription_id is not None and status.status is not None:
                actual[(subscriber, int(status.subscription_id))] = status.status.upper()
    return actual


def actuals_from_single(subscriber: str, response: StatusResponse | None) -> dict[Key, str]:
    """Map the statuses of one ``GET /statuses/{subscriber}`` answer (``None``: not found).

    :param subscriber: the subscriber read.
    :param response: the answer, or ``None`` for a 404.
    """
    key = subscriber.strip().lower()
    actual: dict[Key, str] = {}
    for status in response.results if response is not None else ():
        if status.subscription_id is not None and status.status is not None:
            actual[(key, int(status.subscription_id))] = status.status.upper()
    return actual


def _opted_out(statuses: Iterable[PublicWideStatus], brand: int) -> bool:
    """Whether one of a subscriber's wide statuses opts it out of all e-mail of ``brand`` (or of the portal)."""
    for wide in statuses:
        if (wide.status or "").upper() != OPTED_OUT:
            continue
        if (wide.wide_status_type or "").upper() == "PORTAL_WIDE" or (wide.business_unit_id or 0) == brand:
            return True
    return False


def actuals_from_wide(request: ReadRequest, response: BatchWideReadResponse) -> dict[Key, str]:
    """Map the opt-out rows of ``request`` to ``UNSUBSCRIBED`` where HubSpot reports them opted out of all.

    :param request: a read of opt-out rows (one brand).
    :param response: the ``batch/unsubscribe-all/read`` answer.
    """
    out: dict[Key, str] = {}
    code = wide_code(request.brand)
    for entry in response.results:
        if _opted_out(entry.wide_statuses, request.brand):
            out[((entry.subscriber_id_string or "").strip().lower(), code)] = OPTED_OUT
    return out


def actuals_from_wide_single(subscriber: str, brand: int, response: WideStatusResponse | None) -> dict[Key, str]:
    """Map one ``GET /statuses/{subscriber}/unsubscribe-all`` answer (``None``: not found).

    :param subscriber: the subscriber read.
    :param brand: the brand of the opt-out.
    :param response: the answer.
    """
    if response is None or not _opted_out(response.results, brand):
        return {}
    return {(subscriber.strip().lower(), wide_code(brand)): OPTED_OUT}


class StatusReader:
    """Batch or single reads, and the one-way switch to single reads when batch scopes are missing.

    :param mode: ``"batch"``, or ``"single"`` when the writer ran without batch scopes.
    :param channel: the channel read.
    :param log: where the switch is explained (once).
    """

    def __init__(self, mode: ReadMode, channel: str, log: logging.Logger | logging.LoggerAdapter[logging.Logger]):
        self.mode: ReadMode = mode
        self.channel = channel
        self.log = log
        if mode == "single":
            log.warning(
                "The batch was written with single requests (the account has no batch scopes): reading back with "
                "one status read per subscriber, paced by the rate limit."
            )

    def fall_back(self, err: BaseException) -> bool:
        """Switch to single reads if ``err`` says batch scopes are missing; return whether it did.

        :param err: the error a batch read raised.
        """
        if not is_missing_scopes(err):
            return False
        self.mode = "single"
        self.log.warning(
            "batch/read answered 403 MISSING_SCOPES (batch endpoints need Marketing Hub Enterprise): reading back "
            "with one status read per subscriber from now on, paced by the rate limit."
        )
        return True


def read_sync(hook: HubCommHook, reader: StatusReader, request: ReadRequest) -> Answer:
    """Execute one request with the sync hook.

    :param hook: the hook.
    :param reader: the read mode.
    :param request: the request.
    """
    wide = bool(request.rows) and wide_brand(request.rows[0].subscription) is not None
    ids, channel, brand = request.subscriber_ids, reader.channel, request.brand
    if reader.mode == "batch":
        try:
            if wide:
                return actuals_from_wide(request, hook.batch_read_wide(ids, channel=channel, business_unit_id=brand))
            return actuals_from_response(hook.batch_read(ids, channel=channel, business_unit_id=brand))
        except HubCommAPIError as err:
            if not reader.fall_back(err):
                raise
    actual: dict[Key, str] = {}
    for sub in ids:
        try:
            if wide:
                found = hook.get_unsubscribe_all_status(sub, channel=channel, business_unit_id=brand)
                actual.update(actuals_from_wide_single(sub, brand, found))
                continue
            single = hook.get_statuses(sub, channel=channel, business_unit_id=brand)
        except HubCommNotFoundError:
            continue
        actual.update(actuals_from_single(sub, single))
    return actual


async def read_async(hook: HubCommHook, reader: StatusReader, request: ReadRequest) -> Answer:
    """Execute one request with the async hook (twin of :func:`read_sync`).

    :param hook: the hook.
    :param reader: the read mode.
    :param request: the request.
    """
    wide = bool(request.rows) and wide_brand(request.rows[0].subscription) is not None
    ids, channel, brand = request.subscriber_ids, reader.channel, request.brand
    if reader.mode == "batch":
        try:
            if wide:
                answer = await hook.abatch_read_wide(ids, channel=channel, business_unit_id=brand)
                return actuals_from_wide(request, answer)
            return actuals_from_response(await hook.abatch_read(ids, channel=channel, business_unit_id=brand))
        except HubCommAPIError as err:
            if not reader.fall_back(err):
                raise
    actual: dict[Key, str] = {}
    for sub in ids:
        try:
            if wide:
                found = await hook.aget_unsubscribe_all_status(sub, channel=channel, business_unit_id=brand)
                actual.update(actuals_from_wide_single(sub, brand, found))
                continue
            single = await hook.aget_statuses(sub, channel=channel, business_unit_id=brand)
        except HubCommNotFoundError:
            continue
        actual.update(actuals_from_single(sub, single))
    return actual
