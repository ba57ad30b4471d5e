"""How one read request of the read-back is read: batch or single reads, through the sync or the async hook.

:func:`hook_reads` plans the hook calls of one :class:`~airflow_provider_hubcomm.readback.loop.ReadRequest` and
maps their answers to statuses, without I/O; :func:`read_sync` (the sensor) and :func:`read_async` (the trigger)
make the calls, the only part that differs.

**Single reads.** Accounts without Marketing Hub Enterprise have no batch scopes. When the writer's summary
says ``"mode": "single"``, or a ``batch/read`` answers ``403 MISSING_SCOPES``, :class:`StatusReader` reads
each subscriber with ``GET /statuses/{id}`` (paced by the hook's rate limiter) and says why, once.

**Opt-out rows** (written by ``BatchUnsubscribeAllOperator``) are read with the opt-out-of-all ("wide") reads.
"""

from __future__ import annotations

import logging
from collections.abc import Generator, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from airflow_provider_hubcomm.exceptions import HubCommAPIError, HubCommNotFoundError, is_missing_scopes
from airflow_provider_hubcomm.readback.rows import OPTED_OUT, Key, wide_brand, wide_code

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
    from airflow_provider_hubcomm.readback.loop import Answer, ReadRequest

__all__ = [
    "HookRead",
    "StatusReader",
    "actuals_from_response",
    "actuals_from_single",
    "actuals_from_wide",
    "actuals_from_wide_single",
    "hook_reads",
    "read_async",
    "read_sync",
]


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


@dataclass(frozen=True, slots=True)
class HookRead:
    """One hook call a read request needs: the sync method (its async twin is ``"a" + method``) and its subject."""

    method: Literal["batch_read", "batch_read_wide", "get_statuses", "get_unsubscribe_all_status"]
    #: the subscriber ids of a batch read, or the one subscriber of a single read.
    subject: list[str] | str


def hook_reads(reader: StatusReader, request: ReadRequest) -> Generator[HookRead, Any, Answer]:
    """Plan the hook calls of one request and map their answers (no I/O: :func:`read_sync`/:func:`read_async` call).

    Yields the calls and is sent their answers; an error a call raised is thrown in. A batch read refused for
    missing scopes switches ``reader`` to single reads; a subscriber a single read does not find reads nothing.

    :param reader: the read mode.
    :param request: the request.
    """
    wide = bool(request.rows) and wide_brand(request.rows[0].subscription) is not None
    if reader.mode == "batch":
        try:
            if wide:
                return actuals_from_wide(request, (yield HookRead("batch_read_wide", request.subscriber_ids)))
            return actuals_from_response((yield HookRead("batch_read", request.subscriber_ids)))
        except HubCommAPIError as err:
            if not reader.fall_back(err):
                raise
    actual: dict[Key, str] = {}
    for sub in request.subscriber_ids:
        try:
            found = yield HookRead("get_unsubscribe_all_status" if wide else "get_statuses", sub)
        except HubCommNotFoundError:
            continue
        actual.update(actuals_from_wide_single(sub, request.brand, found) if wide else actuals_from_single(sub, found))
    return actual


def read_sync(hook: HubCommHook, reader: StatusReader, request: ReadRequest) -> Answer:
    """Execute one request with the sync hook (the calls of :func:`hook_reads`).

    :param hook: the hook.
    :param reader: the read mode.
    :param request: the request.
    """
    reads = hook_reads(reader, request)
    try:
        call = next(reads)
        while True:
            try:
                answer = getattr(hook, call.method)(
                    call.subject, channel=reader.channel, business_unit_id=request.brand
                )
            except Exception as err:
                call = reads.throw(err)
            else:
                call = reads.send(answer)
    except StopIteration as done:
        result: Answer = done.value
        return result


async def read_async(hook: HubCommHook, reader: StatusReader, request: ReadRequest) -> Answer:
    """Execute one request with the async hook (the calls of :func:`hook_reads`, through the ``a…`` twins).

    :param hook: the hook.
    :param reader: the read mode.
    :param request: the request.
    """
    reads = hook_reads(reader, request)
    try:
        call = next(reads)
        while True:
            try:
                send = getattr(hook, f"a{call.method}")
                answer = await send(call.subject, channel=reader.channel, business_unit_id=request.brand)
            except Exception as err:
                call = reads.throw(err)
            else:
                call = reads.send(answer)
    except StopIteration as done:
        result: Answer = done.value
        return result
