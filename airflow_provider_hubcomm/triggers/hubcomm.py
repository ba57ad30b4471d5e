"""Trigger that waits, in the triggerer, until a batch write's rows read back as written."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_hubcomm.batch.verify import (
    BLOCK_SIZE,
    DEFAULT_READ_BATCH_SIZE,
    Row,
    actuals_from_response,
    plan_reads,
    rows_to_check,
)
from airflow_provider_hubcomm.batch.verify_state import (
    VerificationState,
    build_result,
    mismatch_message,
    timeout_message,
)
from airflow_provider_hubcomm.constants import DEFAULT_CONN_ID

if TYPE_CHECKING:
    import httpx

    from airflow_provider_hubcomm.hooks.hubcomm import HubCommHook

__all__ = ["BatchStatusTrigger"]


class BatchStatusTrigger(BaseTrigger):
    """Re-read outstanding rows every ``poke_interval`` seconds until none is pending, or the deadline.

    Used by :class:`~airflow_provider_hubcomm.sensors.hubcomm.BatchStatusSensor` with ``deferrable=True``; it
    reads through the hook's async methods and holds no worker slot. It yields exactly one event:
    ``{"status": "success", "result": …}``, or ``{"status": "mismatch" | "timeout" | "error", "message": …}``
    (with ``result`` when one could be built).

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
    :param meta: check settings and the summary's operations (see ``batch.verify.build_result``).
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
        meta: dict[str, Any],
        poke_interval: float,
        deadline: float,
        timeout: float,
        read_batch_size: int = DEFAULT_READ_BATCH_SIZE,
        state: dict[str, Any] | None = None,
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
        from airflow_provider_hubcomm.hooks.hubcomm import HubCommHook

        return HubCommHook(
            self.hubcomm_conn_id,
            async_transport=self._async_transport,
            requests_per_10s=self.requests_per_10s,
            rate_limit_share=self.rate_limit_share,
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Check, sleep, repeat; yield one event. The hook's async client is closed in every case."""
        hook = self._hook()
        try:
            event = await self._wait(hook)
        except Exception as err:
            self.log.exception("Batch verification failed")
            event = {"status": "error", "message": f"{type(err).__name__}: {err}"}
        finally:
            await hook.aclose()
        yield TriggerEvent(event)

    async def _wait(self, hook: HubCommHook) -> dict[str, Any]:
        channel = str(self.meta.get("channel") or "EMAIL")
        state = None if self.state is None else VerificationState.from_json(self.state)
        if self.next_check_at is not None:
            await self._sleep_until(self.next_check_at)
        while True:
            if state is None:
                state = VerificationState()
                await self._read(hook, state, await self._first_rows(), channel, first_read=True)
            else:
                await self._read(hook, state, list(state.outstanding.values()), channel, first_read=False)
            state.checks += 1
            result = build_result(self.meta, state)
            self.log.info(
                "Read back %d rows: %d match, %d pending, %d mismatching.",
                result["rows_verified"],
                result["rows_matching"],
                result["pending"],
                result["mismatch_count"],
            )
            if result["mismatch_count"] and self.meta.get("fail_on_mismatch", True):
                return {"status": "mismatch", "message": mismatch_message(result), "result": result}
            if not result["pending"]:
                return {"status": "success", "result": result}
            if time.time() >= self.deadline:
                message = timeout_message(result, self.timeout)
                return {"status": "timeout", "message": message, "pending": result["pending"], "result": result}
            await self._sleep_until(time.time() + self.poke_interval)

    async def _sleep_until(self, when: float) -> None:
        delay = min(when, self.deadline) - time.time()
        if delay > 0:
            await asyncio.sleep(delay)

    async def _first_rows(self) -> list[Row] | _ThreadedRows:
        """Recompute the selection from the rows file, off the event loop (it may be remote storage)."""
        summary = {"written_rows_path": self.rows_path}
        verify = str(self.meta.get("verify") or "sample")
        size = int(self.meta.get("sample_size") or 0)
        seed = int(self.meta.get("sample_seed") or 0)
        if verify != "all":
            return await asyncio.to_thread(lambda: list(rows_to_check(summary, verify, size, seed)))
        return _ThreadedRows(rows_to_check(summary, verify, size, seed))

    async def _read(
        self,
        hook: HubCommHook,
        state: VerificationState,
        rows: Iterable[Row] | _ThreadedRows,
        channel: str,
        *,
        first_read: bool,
    ) -> None:
        blocks: Any = rows.ablocks() if isinstance(rows, _ThreadedRows) else _alist_blocks(rows)
        async for block in blocks:
            for ids, chunk in plan_reads(block, self.read_batch_size):
                answer = await hook.abatch_read(ids, channel=channel)
                state.observe(chunk, actuals_from_response(answer), first_read=first_read)


class _ThreadedRows:
    """A blocking row stream pulled block by block in a worker thread."""

    def __init__(self, rows: Iterable[Row]) -> None:
        self._it: Iterator[Row] = iter(rows)

    async def ablocks(self) -> AsyncIterator[list[Row]]:
        while block := await asyncio.to_thread(lambda: list(itertools.islice(self._it, BLOCK_SIZE))):
            yield block


async def _alist_blocks(rows: Iterable[Row]) -> AsyncIterator[list[Row]]:
    it = iter(rows)
    while block := list(itertools.islice(it, BLOCK_SIZE)):
        yield block
