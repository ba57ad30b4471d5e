"""Trigger that waits, in the triggerer, until a batch write's rows read back as written."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable
from typing import TYPE_CHECKING, Any, TypeVar

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_hubcomm.constants import DEFAULT_CONN_ID
from airflow_provider_hubcomm.exceptions import HubCommAPIError, HubCommConnectionError, HubCommError

# Imported at module level, not in run(): an import is CPU work that would hold the triggerer's event loop.
from airflow_provider_hubcomm.hooks.hubcomm import HubCommHook
from airflow_provider_hubcomm.readback.loop import ReadBackLoop, run_async
from airflow_provider_hubcomm.readback.reads import StatusReader, read_async
from airflow_provider_hubcomm.readback.rows import DEFAULT_READ_BATCH_SIZE, iter_path_rows, rows_to_check
from airflow_provider_hubcomm.readback.state import (
    VerificationState,
    build_result,
    check_line,
    mismatch_message,
    timeout_message,
)

if TYPE_CHECKING:
    import httpx

    from airflow_provider_hubcomm.contracts import (
        EventStatus,
        HandOverState,
        ReadBackMeta,
        ReadBackResult,
        TriggerPayload,
    )
    from airflow_provider_hubcomm.readback.loop import BrandLookup

__all__ = ["BatchStatusTrigger"]

T = TypeVar("T")


class _DeadlineReached(Exception):
    """The trigger's deadline passed during a read, or the hook stopped a read at it."""


def _cut_by_deadline(err: HubCommError) -> bool:
    """Whether the hook gave up on a read because of the run's deadline (no attempt or retry fitted before it).

    :param err: an error the hook raised.
    """
    return isinstance(err, HubCommConnectionError | HubCommAPIError) and err.deadline_reached


class BatchStatusTrigger(BaseTrigger):
    """Re-read outstanding rows every ``poke_interval`` seconds until none is pending, or the deadline.

    Used by :class:`~airflow_provider_hubcomm.sensors.hubcomm.BatchStatusSensor` with ``deferrable=True``; it
    reads through the hook's async methods and holds no worker slot. It yields exactly one event:
    ``{"status": "success", "result": …}``, or ``{"status": "mismatch" | "timeout" | "error", "message": …}``
    (with ``result`` when one could be built): a
    :class:`~airflow_provider_hubcomm.contracts.TriggerPayload`. Its texts went through the hook's
    redactor (known secrets and ``Bearer`` patterns), whatever a server echoed.

    The deadline holds: every read runs under ``asyncio.timeout`` until ``deadline``, so a slow or dripping
    server cannot keep the trigger past it; at the deadline the trigger reports ``timeout`` with what it
    knows. The CPU work of a check (selecting and planning rows, recording answers, building the result) runs
    in a worker thread, so a large read-back never holds the triggerer's event loop (shared by every trigger
    of the deployment).

    Its kwargs are JSON and carry no secret: the connection id, and either the verification ``state`` the
    sensor handed over (outstanding rows inline, at most a few thousand) or the summary's ``rows_path``
    from which the same seeded selection is recomputed (reads are idempotent, so starting over is safe, e.g.
    after a triggerer restart).

    The trigger checks first and sleeps after: a condition already true completes at once. The one
    exception is ``next_check_at``: the sensor checks once in the worker before deferring and passes when
    the next check is due, so a hand-over is not followed by an immediate duplicate read. This also keeps
    the trigger from firing a few milliseconds after deferral, which trips a known scheduler race with
    LocalExecutor in Airflow 3.3 (a near-instant trigger can get the task marked failed); when the sensor
    finds everything done in the worker it does not defer at all.

    :param hubcomm_conn_id: the HubSpot connection.
    :param requests_per_10s: the account's rate budget, overriding the connection's.
    :param rate_limit_share: the fraction of the budget this trigger may use.
    :param meta: check settings and the summary's operations
        (:class:`~airflow_provider_hubcomm.contracts.ReadBackMeta`).
    :param poke_interval: seconds between checks.
    :param deadline: epoch seconds after which the trigger reports a timeout.
    :param timeout: the sensor's timeout in seconds (for the message).
    :param read_batch_size: subscribers per ``batch_read`` request.
    :param state: the hand-over state (``VerificationState.to_json()``), or ``None`` to start from the file.
    :param rows_path: the summary's ``written_rows_path`` (used when ``state`` is ``None``).
    :param next_check_at: epoch seconds of the first check, when the sensor just checked.
    :param async_transport: tests only: an ``httpx`` async transport for the hook; never serialized.
    """

    def __init__(
        self,
        *,
        hubcomm_conn_id: str = DEFAULT_CONN_ID,
        requests_per_10s: int | None = None,
        rate_limit_share: float | None = None,
        meta: ReadBackMeta,
        poke_interval: float,
        deadline: float,
        timeout: float,
        read_batch_size: int = DEFAULT_READ_BATCH_SIZE,
        state: HandOverState | None = None,
        rows_path: str | None = None,
        next_check_at: float | None = None,
        async_transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        super().__init__()
        if state is None and not rows_path:
            raise ValueError("BatchStatusTrigger needs a hand-over state or a rows_path")
        self.hubcomm_conn_id = hubcomm_conn_id
        self.requests_per_10s = requests_per_10s
        self.rate_limit_share = rate_limit_share
        self.meta = meta
        self.poke_interval = float(poke_interval)
        self.deadline = float(deadline)
        self.timeout = float(timeout)
        self.read_batch_size = int(read_batch_size)
        self.state = state
        self.rows_path = rows_path
        self.next_check_at = next_check_at
        self._async_transport = async_transport

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """Return the class path and JSON kwargs (no transport, no token)."""
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "hubcomm_conn_id": self.hubcomm_conn_id,
                "requests_per_10s": self.requests_per_10s,
                "rate_limit_share": self.rate_limit_share,
                "meta": self.meta,
                "poke_interval": self.poke_interval,
                "deadline": self.deadline,
                "timeout": self.timeout,
                "read_batch_size": self.read_batch_size,
                "state": self.state,
                "rows_path": self.rows_path,
                "next_check_at": self.next_check_at,
            },
        )

    def _hook(self) -> HubCommHook:
        # The hook gets the trigger's deadline: its retries and Retry-After waits stop there too.
        return HubCommHook(
            self.hubcomm_conn_id,
            async_transport=self._async_transport,
            requests_per_10s=self.requests_per_10s,
            rate_limit_share=self.rate_limit_share,
            deadline=self.deadline,
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Check, sleep, repeat; yield one event. The hook's async client is closed in every case."""
        hook = self._hook()
        event: TriggerPayload
        try:
            event = await self._wait(hook)
        except Exception as err:
            message = hook.redact(f"{type(err).__name__}: {err}")
            self.log.error("Batch verification failed: %s", message)
            event = {"status": "error", "message": message}
        finally:
            await hook.aclose()
        yield TriggerEvent(dict(event))

    def _past_deadline(self) -> bool:
        return time.time() >= self.deadline

    async def _within(self, awaitable: Awaitable[T]) -> T:
        """Await ``awaitable``, but not past the deadline.

        The hook holds the same deadline: it makes no attempt and no retry that would end past it, and raises
        its last outcome instead. Such an error, or no answer by the deadline, ends the trigger the way the
        deadline does (``timeout``, with what it knows), not as a failure; an error HubSpot answered with and
        that a retry could not have fixed (e.g. 400, 401, a daily limit) stays an error.

        :raises _DeadlineReached: the deadline passed, or the hook gave up because of it.
        """
        try:
            async with asyncio.timeout(self.deadline - time.time()) as scope:
                return await awaitable
        except TimeoutError:
            if scope.expired():
                raise _DeadlineReached from None
            raise
        except HubCommError as err:
            no_answer_in_time = isinstance(err, HubCommConnectionError) and self._past_deadline()
            if scope.expired() or no_answer_in_time or _cut_by_deadline(err):
                raise _DeadlineReached from err
            raise

    async def _wait(self, hook: HubCommHook) -> TriggerPayload:
        meta = self.meta
        state: VerificationState | None = None
        if self.state is not None:
            state = await asyncio.to_thread(VerificationState.from_json, self.state)
        try:
            catalog: BrandLookup = await self._within(hook.asubscription_catalog())
        except _DeadlineReached:
            return await self._timed_out(hook, state or VerificationState())
        reader = StatusReader(meta.get("read_mode", "batch"), str(meta.get("channel") or "EMAIL"), self.log)
        if self.next_check_at is not None:
            await self._sleep_until(self.next_check_at)
        while True:
            if self._past_deadline():
                # No read once the deadline has passed (the hook would refuse it): report what is known.
                return await self._timed_out(hook, state or VerificationState(), reader)
            first = None
            if state is None:
                state = VerificationState()
                first = rows_to_check(
                    iter_path_rows(self.rows_path) if self.rows_path else iter(()),
                    str(meta.get("verify") or "sample"),
                    int(meta.get("sample_size") or 0),
                    int(meta.get("sample_seed") or 0),
                )
            check = ReadBackLoop(state, catalog, self.read_batch_size).check(first, confirm_now=False)
            try:
                await run_async(check, lambda request: read_async(hook, reader, request), self._within)
            except _DeadlineReached:
                return await self._timed_out(hook, state, reader)
            result = await self._result(state, reader)
            self.log.info("%s", check_line(result))
            if result["mismatch_count"] and meta.get("fail_on_mismatch", True):
                return await self._redacted(hook, "mismatch", result, mismatch_message(result))
            if not result["pending"]:
                return await self._redacted(hook, "success", result)
            if self._past_deadline():
                return await self._redacted(hook, "timeout", result, timeout_message(result, self.timeout))
            await self._sleep_until(time.time() + self.poke_interval)

    async def _result(self, state: VerificationState, reader: StatusReader | None = None) -> ReadBackResult:
        """Build the result off the event loop (CPU work proportional to the outstanding rows)."""
        meta = self.meta
        if reader is not None:
            meta = {**meta, "read_mode": reader.mode}
        return await asyncio.to_thread(build_result, meta, state)

    async def _timed_out(
        self, hook: HubCommHook, state: VerificationState, reader: StatusReader | None = None
    ) -> TriggerPayload:
        result = await self._result(state, reader)
        return await self._redacted(hook, "timeout", result, timeout_message(result, self.timeout))

    async def _redacted(
        self, hook: HubCommHook, status: EventStatus, result: ReadBackResult, message: str | None = None
    ) -> TriggerPayload:
        """Return the event with its texts redacted (off the loop: the result may hold a thousand rows)."""
        clean: ReadBackResult = await asyncio.to_thread(hook.redactor.redact_value, result)
        payload: TriggerPayload = {"status": status, "result": clean}
        if message is not None:
            payload["message"] = hook.redact(message)
        if status == "timeout":
            payload["pending"] = result["pending"]
        return payload

    async def _sleep_until(self, when: float) -> None:
        delay = min(when, self.deadline) - time.time()
        if delay > 0:
            await asyncio.sleep(delay)
