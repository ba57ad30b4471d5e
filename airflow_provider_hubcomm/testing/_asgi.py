"""The fake as an ASGI application: Starlette's request and responses around :meth:`FakeApp.handle`.

One endpoint answers every path: routing stays in :func:`~airflow_provider_hubcomm.testing._app.route`, on the
raw path, so a ``%2F`` inside a subscriber id never changes the route. The same application is served by
uvicorn (:mod:`~airflow_provider_hubcomm.testing._server`) and run in process, without a socket, by
``httpx.ASGITransport`` (:mod:`~airflow_provider_hubcomm.testing._transports`).

* Injected latency (a :class:`Deferred`) is an ``asyncio.sleep``: no thread waits.
* Drop after write: the write is applied, the head of the answer is sent, then :class:`ConnectionDropped` is
  raised. uvicorn logs it (:mod:`~airflow_provider_hubcomm.testing._server` filters that record out) and
  closes the connection, so the client reads a head and no body: ``httpx.RemoteProtocolError``.
* Drip: a ``StreamingResponse`` sends the headers (with the full ``Content-Length``) at once, then one body
  byte every ``drip`` seconds.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from airflow_provider_hubcomm.testing._messages import Deferred, HttpRequest, HttpResponse

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from starlette.types import Receive, Scope, Send

    from airflow_provider_hubcomm.testing._app import FakeApp

__all__ = ["ConnectionDropped", "FakeEndpoint", "asgi_app"]


class ConnectionDropped(Exception):
    """Raised once the head of a dropped answer is sent: the server closes the connection without its body."""


def _raw_headers(answer: HttpResponse) -> list[tuple[bytes, bytes]]:
    return [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in answer.header_list()]


async def _drip(body: bytes, interval: float) -> AsyncIterator[bytes]:
    """Yield ``body`` one byte at a time, each after ``interval`` seconds."""
    for i in range(len(body)):
        await asyncio.sleep(interval)
        yield body[i : i + 1]


class FakeEndpoint:
    """Raw ASGI endpoint: a Starlette :class:`Request` in, :meth:`FakeApp.handle`, a Starlette response out.

    :param app: the fake's application (state, faults, HubSpot behaviour).
    """

    def __init__(self, app: FakeApp) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        answer = await self.answer(Request(scope, receive))
        if answer.drop:
            await send({"type": "http.response.start", "status": answer.status, "headers": _raw_headers(answer)})
            raise ConnectionDropped(f"answer to {scope['method']} {scope['path']} dropped after the write")
        response: Response
        if answer.drip > 0 and answer.body:
            response = StreamingResponse(_drip(answer.body, answer.drip), status_code=answer.status)
        else:
            response = Response(answer.body, status_code=answer.status)
        response.raw_headers = _raw_headers(answer)
        await response(scope, receive, send)

    async def answer(self, request: Request) -> HttpResponse:
        """Read the request and return the fake's answer, after its injected latency.

        :param request: the Starlette request.
        """
        app = self._app
        scope = request.scope
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        body = await self._body(request, headers.get("content-length", ""), app.config.max_body_bytes)
        if body is None:
            return app.body_too_large()
        raw_path = scope.get("raw_path")
        path = raw_path.decode("latin-1") if raw_path else scope["path"]
        req = HttpRequest(scope["method"], path, scope["query_string"].decode("latin-1"), headers, body)
        try:
            result = app.handle(req)
            if isinstance(result, Deferred):
                await asyncio.sleep(result.delay)
                result = result.finish()
        except Exception:
            result = app.crashed(req)
        return result

    @staticmethod
    async def _body(request: Request, declared: str, limit: int) -> bytes | None:
        """Return the whole body, or ``None`` as soon as it is known to be over ``limit`` bytes."""
        if declared.isdigit() and int(declared) > limit:
            return None
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                return None
            chunks.append(chunk)
        return b"".join(chunks)


def asgi_app(app: FakeApp) -> Starlette:
    """Return the Starlette application serving ``app`` on every path and method.

    :param app: the fake's application.
    """
    # An ASGI callable as endpoint (not a function): Starlette passes every method through to it.
    return Starlette(routes=[Route("/{path:path}", FakeEndpoint(app))])
