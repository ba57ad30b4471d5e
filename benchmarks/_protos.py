"""Prototypes of the proposed send-side fixes, applied by monkeypatching (no provider file is changed).

``install()`` patches, for the current process only:

* **A, request body without per-row dicts**: ``send_chunk`` sends ``{"inputs":[...]}`` joined from
  ``WriteRow.to_json()`` (byte-identical to what ``httpx`` makes of ``json={"inputs": [w.to_api() ...]}``)
  as ``content=`` instead of ``json=``;
* **C, slim answer model**: the batch-write answer is parsed into a model holding only what the engine
  reads (status, timestamps, ``results[].subscriberIdString/subscriptionId``, ``errors``), with
  ``extra="ignore"``, instead of full ``PublicStatus`` objects with ``extra="allow"``;
* **D, written-rows manifest lines**: ``RunAccount.write`` formats the JSON line directly (f-string,
  ``json.encoder.encode_basestring`` for the address, byte-identical output) instead of building a dict and
  running ``JSONEncoder.encode`` per row.

Rate limiting, retries, error mapping and reconciliation are the hook's and the engine's own code.
"""

from __future__ import annotations

from json.encoder import encode_basestring
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from airflow_provider_hubcomm.models import StandardError  # noqa: TC001 - pydantic needs it at runtime


class SlimStatus(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)
    subscriber_id_string: str | None = Field(default=None, alias="subscriberIdString")
    subscription_id: int | None = Field(default=None, alias="subscriptionId")


class SlimBatchWriteResponse(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)
    status: str | None = None
    results: list[SlimStatus] = Field(default_factory=list)
    requested_at: str | None = Field(default=None, alias="requestedAt")
    started_at: str | None = Field(default=None, alias="startedAt")
    completed_at: str | None = Field(default=None, alias="completedAt")
    errors: list[StandardError] = Field(default_factory=list)
    num_errors: int | None = Field(default=None, alias="numErrors")
    _correlation_id: str | None = PrivateAttr(default=None)

    @property
    def correlation_id(self) -> str | None:
        return self._correlation_id


def request_body(rows: list[tuple[int, Any]]) -> bytes:
    """A: the batch-write body from the rows' own JSON text."""
    return ('{"inputs":[' + ",".join([w.to_json() for _, w in rows]) + "]}").encode()


def manifest_line(row: int, write: Any, operation: int, status: str) -> str:
    """D: one written-rows line, byte-identical to ``JsonLinesSink.write(record)``."""
    return (
        f'{{"row":{row},"subscriberIdString":{encode_basestring(write.subscriber)},'
        f'"subscriptionId":{write.subscription_id},"statusState":"{write.state}",'
        f'"operation":{operation},"operationStatus":"{status}"}}\n'
    )


SEND_LINE = "response = hook.batch_write([write.to_api() for _, write in to_send])"


def check_current_code() -> None:
    """Refuse to run a prototype that no longer matches the code it stands in for."""
    import inspect

    from airflow_provider_hubcomm.batch import chunk as chunk_mod
    from airflow_provider_hubcomm.batch.outputs import JsonLinesSink
    from airflow_provider_hubcomm.batch.rows import RowValidator
    from airflow_provider_hubcomm.batch.write_account import RunAccount

    if SEND_LINE not in inspect.getsource(chunk_mod.send_chunk):
        raise RuntimeError("batch/chunk.py::send_chunk changed: update benchmarks/_protos.py before using it")
    write = RowValidator().validate(
        1, {"subscriberIdString": 'a\u00e9"b@example.com', "subscriptionId": 7, "statusState": "SUBSCRIBED"}
    )
    sink = JsonLinesSink(kind="written")
    import io

    sink._fh = io.StringIO()
    RunAccount(JsonLinesSink(kind="failed"), sink).write(3, write, 2, "COMPLETE")  # type: ignore[arg-type]
    if sink._fh.getvalue() != manifest_line(3, write, 2, "COMPLETE"):
        raise RuntimeError("RunAccount.write output changed: update benchmarks/_protos.py::manifest_line")


def install() -> None:
    check_current_code()
    from airflow_provider_hubcomm.batch import chunk as chunk_mod
    from airflow_provider_hubcomm.batch import engine
    from airflow_provider_hubcomm.batch import summary as summary_mod
    from airflow_provider_hubcomm.constants import DEFAULT_API_VERSION, PATH_PREFIX
    from airflow_provider_hubcomm.hooks._api import _Call

    path = f"{PATH_PREFIX}/{DEFAULT_API_VERSION}/statuses/batch/write"
    call = _Call("POST", path, SlimBatchWriteResponse)
    headers = {"Content-Type": "application/json"}

    def batch_write_raw(hook: Any, rows: list[tuple[int, Any]]) -> SlimBatchWriteResponse:
        body = request_body(rows)

        def attempt() -> httpx.Response:
            hook.rate_limiter.acquire(hook.retry_policy.sleep)
            return hook._observe(hook.client.post(path, content=body, headers=headers))

        try:
            response = hook.retry_policy.call(attempt)
        except httpx.TransportError as err:
            raise hook._no_answer(call, err) from err
        model: SlimBatchWriteResponse = hook._finish(call, response)
        model._correlation_id = response.headers.get("x-hubspot-correlation-id")
        return model

    def send_chunk(hook: Any, index: int, rows: list[Any], *, only_changes: bool, allow_resubscribe: bool) -> Any:
        # chunk.send_chunk with ``hook.batch_write([w.to_api() ...])`` replaced by batch_write_raw (A + C).
        result = chunk_mod.ChunkResult(index, rows)
        stage = "status read before write"
        try:
            to_send = chunk_mod._screen(result, hook, only_changes, allow_resubscribe)
            if not to_send:
                return result
            stage = "batch write"
            response = batch_write_raw(hook, to_send)
        except BaseException as err:
            fatal, reason = chunk_mod.classify_error(err)
            if stage != "batch write":
                reason = reason._replace(message=f"{stage} failed: {reason.message}")
            done = {r for r, _, _ in result.failed} | {r for r, _, _ in result.skipped}
            chunk_mod._fail_all(result, (r for r in rows if r[0] not in done), reason)
            if fatal:
                result.fatal = err
            if not isinstance(err, Exception):
                raise
            return result
        result.operation = chunk_mod._operation(response, len(to_send))  # type: ignore[arg-type]
        if result.operation["status"] == "CANCELED":
            chunk_mod._fail_all(result, to_send, chunk_mod.Reason(None, chunk_mod.CANCELED_REASON))
            return result
        written, failed = chunk_mod.reconcile(to_send, response)  # type: ignore[arg-type]
        result.written.extend(written)
        result.failed.extend(failed)
        return result

    max_inline = summary_mod.MAX_INLINE_WRITTEN

    def write(self: Any, row: int, write: Any, operation: int, status: str) -> None:
        self.written += 1
        sink = self.written_sink
        if sink is not None:
            if sink._fh is None:
                sink._fh = sink._open()
            sink._fh.write(manifest_line(row, write, operation, status))
            sink.lines += 1
        if self.written_inline is not None:
            if len(self.written_inline) < max_inline:
                self.written_inline.append(
                    {
                        "row": row,
                        "subscriberIdString": write.subscriber,
                        "subscriptionId": write.subscription_id,
                        "statusState": write.state,
                        "operation": operation,
                        "operationStatus": status,
                    }
                )
            else:
                self.written_inline = None

    engine.send_chunk = send_chunk  # type: ignore[assignment]
    summary_mod.RunAccount.write = write  # type: ignore[method-assign]


def install_observe_at_send_time() -> None:
    """E: judge ``X-HubSpot-RateLimit-Remaining`` against our own requests as of when the request was sent.

    HubSpot (and the fake) compute ``Remaining`` when the request is admitted; the client reads it one
    service time later (``response.elapsed``: 100 ms latency plus the time to process 1,000 inputs). In the
    meantime our oldest requests left the client-side window although the server still counted them, so
    ``foreign = used - ours`` comes out around ``rate * service_time`` (about 2 at 19 requests/s and 125 ms),
    crosses the ``> 1`` threshold, and the limiter books phantom "foreign" requests that delay every later
    request. Anchoring the count at the send time removes that artefact; the booking of real foreign use
    (another client on the same budget) is unchanged.
    """
    import time

    from airflow_provider_hubcomm import ratelimit
    from airflow_provider_hubcomm.hooks.hubcomm import HubCommHook

    def observe_at(self: Any, headers: Any, sent_at: float) -> None:
        server_max = ratelimit._int_header(headers, ratelimit.H_MAX)
        interval = ratelimit._int_header(headers, ratelimit.H_INTERVAL)
        remaining = ratelimit._int_header(headers, ratelimit.H_REMAINING)
        if server_max is None or server_max < 1:
            return
        with self._lock:
            if interval and interval > 0 and self.configured is None:
                self.window = interval / 1000.0
            wanted = server_max if self.configured is None else min(self.configured, server_max)
            self._resize(self._portion(wanted))
            if remaining is None:
                return
            now = self._clock()
            ours = sum(1 for t in self._slots if sent_at - self.window < t <= sent_at)
            foreign = (server_max - remaining) - ours
            if foreign > 1:
                for _ in range(min(foreign, self.limit)):
                    self._slots.append(now)

    def _observe(self: Any, response: httpx.Response) -> httpx.Response:
        self._count("requests")
        self._count(f"http_{response.status_code}")
        try:
            elapsed = response.elapsed.total_seconds()
        except RuntimeError:  # elapsed not available (stream not closed)
            elapsed = 0.0
        observe_at(self.rate_limiter, response.headers, time.monotonic() - elapsed)
        return response

    HubCommHook._observe = _observe  # type: ignore[method-assign]
