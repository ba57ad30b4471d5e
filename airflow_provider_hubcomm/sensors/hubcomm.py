"""Sensor that waits until a batch write is applied in HubSpot and the statuses read back as written."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any, cast

from airflow.providers.common.compat.sdk import (
    AirflowSensorTimeout,
    AirflowSkipException,
    BaseSensorOperator,
    PokeReturnValue,
    conf,
)

from airflow_provider_hubcomm.constants import DEFAULT_CONN_ID, MAX_BATCH_SIZE
from airflow_provider_hubcomm.exceptions import HubCommError
from airflow_provider_hubcomm.readback.errors import (
    BatchCanceledError,
    BatchMismatchError,
    BatchSummaryError,
    BatchVerificationError,
    UnreadableRowsError,
)
from airflow_provider_hubcomm.readback.rows import (
    DEFAULT_READ_BATCH_SIZE,
    DEFAULT_SAMPLE_SIZE,
    INLINE_ROWS_MAX,
    VERIFY_MODES,
)

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_provider_hubcomm.contracts import (
        BatchSummary,
        OperationsSummary,
        ReadBackMeta,
        ReadBackResult,
        TriggerPayload,
    )
    from airflow_provider_hubcomm.hooks.hubcomm import HubCommHook
    from airflow_provider_hubcomm.readback.reads import StatusReader
    from airflow_provider_hubcomm.readback.state import VerificationState

# Re-exported: the failures were importable from here (and from batch.verify, now removed).
__all__ = [
    "BatchCanceledError",
    "BatchMismatchError",
    "BatchStatusSensor",
    "BatchSummaryError",
    "BatchVerificationError",
    "UnreadableRowsError",
]

#: Extra time given to Airflow's own deferral timeout: the trigger reports the timeout itself, with details.
DEFERRAL_GRACE = 300.0


class BatchStatusSensor(BaseSensorOperator):
    """Wait until every operation of a batch write is complete and the statuses read back as written.

    HubSpot has no endpoint to poll a batch operation, so completion is established by read-back: an
    operation answered ``COMPLETE`` at write time is complete; a ``PENDING``/``PROCESSING`` one becomes
    complete when all its rows read back as written. Any ``CANCELED`` operation fails the task at once,
    without retries (:class:`~airflow_provider_hubcomm.readback.errors.BatchCanceledError`).

    What is read back (``batch_read``, ``read_batch_size`` subscribers per request, paced by the hook's rate
    limiter) depends on ``verify``; every row of a non-``COMPLETE`` operation (the writer's *unconfirmed*
    rows) is always read back, because reading is the only way to see it applied; the result's
    ``unconfirmed`` block says how many of them read back as written:

    * ``"all"``: every written row;
    * ``"sample"`` (default): a seeded random sample of ``sample_size`` rows of ``COMPLETE`` operations
      (reservoir sampling while streaming the rows file), plus every row of non-``COMPLETE`` operations;
    * ``"none"``: trust ``COMPLETE`` answers; only rows of non-``COMPLETE`` operations are read back (HubSpot
      offers nothing else to poll, so ``"none"`` still waits for those rows).

    A status HubSpot does not report at all counts as ``NOT_SPECIFIED``.

    **Brands.** HubSpot filters status reads by brand, so rows are read with the ``businessUnitId`` of their
    subscription's brand (from the subscription definitions of the brands the connection knows). A row of a
    subscription in no known brand fails the task at once
    (:class:`~airflow_provider_hubcomm.readback.errors.UnreadableRowsError`): it could never be read back.

    **Without batch scopes** (the writer's summary says ``"mode": "single"``, or ``batch/read`` answers
    ``403 MISSING_SCOPES``) rows are read back with one ``GET /statuses/{id}`` per subscriber, paced by the
    rate limiter; the sensor logs once why.

    Rows not reading back as written yet are re-read on the next poke until ``timeout``; the timeout fails
    (or with ``soft_fail`` skips) with the number of pending rows and the first of them.

    **Mismatches.** A row of an operation HubSpot answered ``COMPLETE`` that reads a definite other status on
    two consecutive reads was changed behind the run's back (by the contact, a workflow, another
    integration). With ``fail_on_mismatch=True`` (default) the task fails as soon as such a mismatch is
    confirmed, naming the rows: waiting cannot fix it, so nobody waits for the timeout at 3 a.m. With
    ``False`` mismatches are only reported and the sensor succeeds once nothing is pending. Consecutive reads
    are consecutive pokes (``poke`` mode, trigger); in ``reschedule`` mode the sensor keeps no memory between
    pokes, so a disagreeing row is re-read once more within the same poke.

    The result (XCom ``return_value``) holds ``operations`` (status at write and final, timestamps),
    ``rows_verified``, ``rows_matching``, ``pending``, ``mismatches`` (up to 1,000: subscriber, subscription,
    expected, actual) and ``pending_rows``. It is also pushed when the sensor fails on a mismatch or a
    timeout, so a report task with ``trigger_rule="all_done"`` can read ``sensor.output`` either way.

    .. code-block:: python

        written = BatchWriteStatusesOperator(task_id="write", ...)
        BatchStatusSensor(task_id="verify", batch=written.output, poke_interval=30, timeout=3600)

    :param batch: the summary returned by ``BatchWriteStatusesOperator`` (templated; usually its ``.output``).
    :param verify: ``"all"``, ``"sample"`` or ``"none"`` (see above).
    :param sample_size: rows of ``COMPLETE`` operations read back with ``verify="sample"``.
    :param sample_seed: seed of the sample; the same seed picks the same rows on every poke.
    :param fail_on_mismatch: fail as soon as a mismatch is confirmed (see above).
    :param read_batch_size: subscribers per ``batch_read`` request (1 to 1,000).
    :param requests_per_10s: the account's rate budget, overriding the connection's ``requests_per_10s``.
    :param rate_limit_share: the fraction of the budget this sensor may use (see the operators).
    :param hubcomm_conn_id: the HubSpot connection used to read back (the writer's ``conn_id`` is in the summary).
    :param deferrable: hand the wait to :class:`~airflow_provider_hubcomm.triggers.hubcomm.BatchStatusTrigger`
        (holds no worker slot). Defaults to ``[operators] default_deferrable``. The sensor first checks once in
        the worker and returns without deferring when everything already reads back as written; the rows
        still outstanding go to the trigger inline (up to 5,000), otherwise the trigger re-reads the
        summary's ``written_rows_path``, which must then be readable from the triggerer (object storage).
        ``verify="all"`` over more than 5,000 rows defers straight away and reads everything in the trigger.
    """

    template_fields: Sequence[str] = ("batch",)
    ui_color = "#ff7a59"

    def __init__(
        self,
        *,
        batch: Any,
        verify: str = "sample",
        sample_size: int = DEFAULT_SAMPLE_SIZE,
        sample_seed: int = 0,
        fail_on_mismatch: bool = True,
        read_batch_size: int = DEFAULT_READ_BATCH_SIZE,
        hubcomm_conn_id: str = DEFAULT_CONN_ID,
        requests_per_10s: int | None = None,
        rate_limit_share: float | None = None,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        verify = "none" if verify is None else str(verify).lower()
        if verify not in VERIFY_MODES:
            raise ValueError(f"verify must be one of {VERIFY_MODES}, got {verify!r}")
        if verify == "sample" and sample_size < 1:
            raise ValueError(f"sample_size must be at least 1, got {sample_size}")
        if not 1 <= read_batch_size <= MAX_BATCH_SIZE:
            raise ValueError(f"read_batch_size must be between 1 and {MAX_BATCH_SIZE}, got {read_batch_size}")
        self.batch = batch
        self.verify = verify
        self.sample_size = sample_size
        self.sample_seed = sample_seed
        self.fail_on_mismatch = fail_on_mismatch
        self.read_batch_size = read_batch_size
        self.hubcomm_conn_id = hubcomm_conn_id
        self.requests_per_10s = requests_per_10s
        self.rate_limit_share = rate_limit_share
        self.deferrable = deferrable
        self._state: VerificationState | None = None
        self._status_reader: StatusReader | None = None
        self._last_result: ReadBackResult | None = None

    @cached_property
    def hook(self) -> HubCommHook:
        """The hook used to read statuses back."""
        from airflow_provider_hubcomm.hooks.hubcomm import HubCommHook

        return HubCommHook(
            self.hubcomm_conn_id, requests_per_10s=self.requests_per_10s, rate_limit_share=self.rate_limit_share
        )

    # -- one check ----------------------------------------------------------------------------------------

    def _summary(self) -> BatchSummary:
        from airflow_provider_hubcomm.readback.rows import parse_summary
        from airflow_provider_hubcomm.readback.state import canceled_message

        summary = parse_summary(self.batch)
        if message := canceled_message(summary):
            raise BatchCanceledError(message)
        if summary.get("dry_run"):
            self.log.warning("The batch was a dry run: nothing was written, so there is nothing to read back.")
        writer = summary.get("conn_id")
        if writer and writer != self.hubcomm_conn_id:
            self.log.warning(
                "The batch was written with connection %r but is read back with %r: make sure both reach the "
                "same HubSpot account.",
                writer,
                self.hubcomm_conn_id,
            )
        return summary

    def _meta(self, summary: BatchSummary) -> ReadBackMeta:
        unconfirmed = summary.get("unconfirmed")
        return {
            "verify": self.verify,
            "sample_size": self.sample_size,
            "sample_seed": self.sample_seed,
            "fail_on_mismatch": self.fail_on_mismatch,
            "conn_id": self.hubcomm_conn_id,
            "channel": summary.get("channel") or "EMAIL",
            "rows_written": int(summary.get("written") or 0),
            "operations": summary.get("operations") or cast("OperationsSummary", {}),
            "read_mode": "single" if summary.get("mode") == "single" else "batch",
            "unconfirmed_at_write": None if unconfirmed is None else int(unconfirmed),
        }

    def _reader(self, meta: ReadBackMeta) -> StatusReader:
        """Return the read mode, kept across pokes once batch reads were refused for missing scopes."""
        from airflow_provider_hubcomm.readback.reads import StatusReader

        if self._status_reader is None:
            self._status_reader = StatusReader(meta.get("read_mode", "batch"), meta["channel"], self.log)
        return self._status_reader

    def _check(self, summary: BatchSummary, meta: ReadBackMeta, state: VerificationState | None) -> VerificationState:
        """Read back: everything selected (no state yet) or only the outstanding rows; return the state."""
        from airflow_provider_hubcomm.readback.loop import ReadBackLoop, run_sync
        from airflow_provider_hubcomm.readback.reads import read_sync
        from airflow_provider_hubcomm.readback.rows import iter_written_rows, rows_to_check
        from airflow_provider_hubcomm.readback.state import VerificationState

        reader = self._reader(meta)
        first = None
        if state is None:
            state = VerificationState()
            first = rows_to_check(iter_written_rows(summary), self.verify, self.sample_size, self.sample_seed)
        loop = ReadBackLoop(state, self.hook.subscription_catalog(), self.read_batch_size)
        run_sync(loop.check(first, confirm_now=self.reschedule), lambda request: read_sync(self.hook, reader, request))
        meta["read_mode"] = reader.mode
        return state

    def _outcome(self, context: Context, meta: ReadBackMeta, state: VerificationState) -> ReadBackResult | None:
        """Return the result when done; raise on a confirmed mismatch; ``None`` while rows are pending."""
        from airflow_provider_hubcomm.readback.state import build_result, check_line, mismatch_message

        result = build_result(meta, state)
        self._last_result = result
        self.log.info("%s", check_line(result))
        if result["mismatch_count"] and self.fail_on_mismatch:
            self._push(context, result)
            raise BatchMismatchError(mismatch_message(result), result)
        if result["pending"]:
            return None
        if result["mismatch_count"]:
            self.log.warning("Done, with mismatches (fail_on_mismatch=False): %s", mismatch_message(result))
        return result

    def _push(self, context: Context, result: ReadBackResult) -> None:
        """Push the result even when failing, for a report task with ``trigger_rule="all_done"``."""
        ti = context.get("ti")
        if ti is not None:
            ti.xcom_push(key="return_value", value=result)

    def poke(self, context: Context) -> PokeReturnValue:
        """Check once; in ``reschedule`` mode everything is recomputed from the summary (no memory)."""
        summary = self._summary()
        meta = self._meta(summary)
        state = self._check(summary, meta, None if self.reschedule else self._state)
        if not self.reschedule:
            self._state = state
        result = self._outcome(context, meta, state)
        return PokeReturnValue(is_done=result is not None, xcom_value=result)

    # -- execution ----------------------------------------------------------------------------------------

    def execute(self, context: Context) -> Any:
        """Poke (``poke``/``reschedule`` mode) or check once and defer (``deferrable=True``)."""
        try:
            if self.deferrable:
                return self._execute_deferrable(context)
            return self._execute_poke(context)
        finally:
            self.hook.close()

    def _execute_poke(self, context: Context) -> Any:
        try:
            return super().execute(context)
        except AirflowSensorTimeout as err:
            raise AirflowSensorTimeout(self._timeout_text(context, err)) from err
        except AirflowSkipException as err:
            # The base class raises a cause-less skip for a timeout with soft_fail; failures raised by poke()
            # and turned into skips carry their cause and already say what happened.
            if err.__cause__ is not None or self._last_result is None:
                raise
            raise AirflowSkipException(self._timeout_text(context, err)) from err

    def _timeout_text(self, context: Context, err: Exception) -> str:
        from airflow_provider_hubcomm.readback.state import timeout_message

        if self._last_result is None:
            return str(err)
        self._push(context, self._last_result)
        return f"{err} {timeout_message(self._last_result, self.timeout)}"

    def _fail(self, err: Exception) -> Exception:
        if self.soft_fail:
            return AirflowSkipException(f"Skipping due to soft_fail: {err}")
        return err

    def _execute_deferrable(self, context: Context) -> Any:
        # Imported here: the trigger module pulls in airflow.triggers.base, which DAG parsing does not need.
        from airflow_provider_hubcomm.readback.state import VerificationState, build_result, timeout_message
        from airflow_provider_hubcomm.triggers.hubcomm import BatchStatusTrigger

        started = time.time()
        try:
            summary = self._summary()
        except BatchVerificationError as err:
            raise self._fail(err) from err
        meta = self._meta(summary)
        written = meta["rows_written"]
        state: VerificationState | None = None
        # Check once in the worker when the work is bounded: nothing to defer when HubSpot is already done,
        # and no near-instant trigger (see the trigger's docstring).
        if self.verify != "all" or written <= INLINE_ROWS_MAX:
            try:
                state = self._check(summary, meta, None)
                result = self._outcome(context, meta, state)
            except BatchVerificationError as err:
                raise self._fail(err) from err
            if result is not None:
                return result
        remaining = self.timeout - (time.time() - started)
        if remaining <= 0:
            result = self._last_result or build_result(meta, VerificationState())
            self._push(context, result)
            raise self._fail(AirflowSensorTimeout(timeout_message(result, self.timeout)))
        handoff = state.to_json() if state is not None and len(state.outstanding) <= INLINE_ROWS_MAX else None
        if handoff is None and not summary.get("written_rows_path"):
            raise HubCommError("too many rows outstanding to pass inline, and the summary has no written_rows_path")
        self.log.info("Deferring: %s rows outstanding.", "?" if state is None else len(state.outstanding))
        self.defer(
            trigger=BatchStatusTrigger(
                hubcomm_conn_id=self.hubcomm_conn_id,
                requests_per_10s=self.requests_per_10s,
                rate_limit_share=self.rate_limit_share,
                meta=meta,
                poke_interval=float(self.poke_interval),
                deadline=started + self.timeout,
                timeout=self.timeout,
                read_batch_size=self.read_batch_size,
                state=handoff,
                rows_path=None if handoff is not None else summary.get("written_rows_path"),
                next_check_at=None if state is None else time.time() + float(self.poke_interval),
            ),
            method_name="execute_complete",
            timeout=timedelta(seconds=remaining + max(DEFERRAL_GRACE, 2 * float(self.poke_interval))),
        )

    def execute_complete(self, context: Context, event: TriggerPayload | None = None) -> Any:
        """Turn the trigger's event into the same XCom and failures as poke mode.

        This runs in a new process that never loaded the connection: it is loaded first, which registers
        its secrets with Airflow's masker, and the event's texts are redacted (known secrets and ``Bearer``
        patterns) before anything is logged, pushed or raised.

        :param context: the task context.
        :param event: ``{"status": "success", "result": …}`` or a failure status with ``message``.
        """
        from airflow_provider_hubcomm.redact import redact_bearer

        try:
            _ = self.hook.config  # registers the connection's secrets with the masker of this process
        except Exception as err:  # the event must still be reported; its texts are redacted below anyway
            self.log.warning("Could not load connection %r: %s", self.hubcomm_conn_id, redact_bearer(str(err)))
        payload: TriggerPayload = event or {"status": "error", "message": "the trigger returned no event"}
        status = payload.get("status")
        result = payload.get("result")
        if result is not None:
            result = self.hook.redactor.redact_value(result)
        if status == "success":
            self.log.info("Verified by the trigger: %s rows match.", (result or {}).get("rows_matching"))
            return result
        if result is not None:
            self._push(context, result)
        message = self.hook.redact(str(payload.get("message") or status))
        # Logged here too: with soft_fail, Airflow replaces the exception by a generic skip message.
        self.log.error("BatchStatusTrigger ended with status %r: %s", status, message)
        if status == "timeout":
            raise AirflowSensorTimeout(message)
        if status == "mismatch":
            raise BatchMismatchError(message, result)
        if status == "canceled":
            raise BatchCanceledError(message, result)
        raise HubCommError(f"BatchStatusTrigger failed: {message}")
