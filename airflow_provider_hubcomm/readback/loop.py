"""The one read-back loop, shared by ``BatchStatusSensor`` (sync hook) and ``BatchStatusTrigger`` (async hook).

:meth:`ReadBackLoop.check` is a pure planner: a generator that yields :class:`ReadRequest` s (one brand, at
most ``read_batch_size`` subscribers, the rows they cover) and receives, for each, the statuses read
(``{(subscriber, subscription): status}``), which it records in the
:class:`~airflow_provider_hubcomm.readback.state.VerificationState`. It does no I/O besides streaming the
written-rows file. :func:`run_sync` drives it with a blocking reader (the sensor's
:func:`~airflow_provider_hubcomm.readback.reads.read_sync`); :func:`run_async` drives it with an async reader
(the trigger's :func:`~airflow_provider_hubcomm.readback.reads.read_async`) and advances the planner in a
worker thread, so its CPU work (selection, planning, recording) never holds the triggerer's event loop.

**Brands.** HubSpot's ``businessUnitId`` filters a status read to one brand, so rows are grouped by the brand
of their subscription (from the hook's subscription catalog) and each read carries that brand. A row whose
subscription is in no brand the connection knows could never be seen: :class:`UnreadableRowsError`.

How one request is read (batch or single reads, sync or async): :mod:`~airflow_provider_hubcomm.readback.reads`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Generator, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from airflow_provider_hubcomm.readback.errors import UnreadableRowsError
from airflow_provider_hubcomm.readback.rows import DEFAULT_READ_BATCH_SIZE, Key, ReadbackRow, iter_blocks, wide_brand

if TYPE_CHECKING:
    from airflow_provider_hubcomm.readback.state import VerificationState

__all__ = ["Answer", "BrandLookup", "Check", "ReadBackLoop", "ReadRequest", "plan_reads", "run_async", "run_sync"]

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
