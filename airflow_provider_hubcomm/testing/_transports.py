"""The fake without a socket: ``httpx`` transports that hand requests straight to the fake's application.

* :func:`mock_transport` (sync): an ``httpx.MockTransport`` calling
  :meth:`~airflow_provider_hubcomm.testing._app.FakeApp.handle` in the caller's thread. Injected latency
  sleeps that thread, a dropped answer raises ``httpx.RemoteProtocolError`` (the write is applied), a dripped
  body arrives one byte per ``drip`` seconds as the client reads it.
* :class:`AsgiTransport` (async): ``httpx.ASGITransport`` over the same Starlette application uvicorn serves,
  with a dropped answer mapped to ``httpx.RemoteProtocolError``.

Timeouts are not enforced by either (no socket to time out): a test of deadlines needs the served fake.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import httpx

from airflow_provider_hubcomm.testing._asgi import ConnectionDropped
from airflow_provider_hubcomm.testing._messages import Deferred, HttpRequest

if TYPE_CHECKING:
    from collections.abc import Iterator

    from starlette.types import ASGIApp

    from airflow_provider_hubcomm.testing._app import FakeApp

__all__ = ["AsgiTransport", "mock_transport"]

DROPPED = "Server disconnected without sending a complete response (the fake dropped it after the write)."


class _Drip(httpx.SyncByteStream):
    def __init__(self, body: bytes, interval: float) -> None:
        self._body = body
        self._interval = interval

    def __iter__(self) -> Iterator[bytes]:
        for i in range(len(self._body)):
            time.sleep(self._interval)
            yield self._body[i : i + 1]


def mock_transport(app: FakeApp) -> httpx.MockTransport:
    """Return a sync transport answering every request from ``app`` in the calling thread.

    :param app: the fake's application (thread-safe: a client's threads may call it at once).
    """

    def handle(request: httpx.Request) -> httpx.Response:
        body = request.content
        if len(body) > app.config.max_body_bytes:
            answer = app.body_too_large()
        else:
            path, _, query = request.url.raw_path.partition(b"?")
            headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in request.headers.raw}
            req = HttpRequest(request.method, path.decode("ascii"), query.decode("ascii"), headers, body)
            try:
                result = app.handle(req)
                if isinstance(result, Deferred):
                    time.sleep(result.delay)
                    result = result.finish()
            except Exception:
                result = app.crashed(req)
            answer = result
        if answer.drop:
            raise httpx.RemoteProtocolError(DROPPED, request=request)
        if answer.drip > 0 and answer.body:
            return httpx.Response(answer.status, headers=answer.header_list(), stream=_Drip(answer.body, answer.drip))
        return httpx.Response(answer.status, headers=answer.header_list(), content=answer.body)

    return httpx.MockTransport(handle)


class AsgiTransport(httpx.AsyncBaseTransport):
    """``httpx.ASGITransport`` over the fake's ASGI application; a dropped answer is a ``RemoteProtocolError``.

    :param app: the ASGI application (:func:`~airflow_provider_hubcomm.testing._asgi.asgi_app`).
    """

    def __init__(self, app: ASGIApp) -> None:
        self._inner = httpx.ASGITransport(app=app)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        try:
            return await self._inner.handle_async_request(request)
        except ConnectionDropped:
            raise httpx.RemoteProtocolError(DROPPED, request=request) from None

    async def aclose(self) -> None:
        await self._inner.aclose()
