"""A small HTTP/1.1 server on :mod:`asyncio` protocols: keep-alive, Content-Length and chunked bodies.

It knows nothing about HubSpot. An *application* turns each parsed :class:`HttpRequest` into either an
:class:`HttpResponse` or a :class:`Deferred` (answer after a delay, used for injected latency). A response
with ``drop=True`` closes the connection without writing anything, which is how the fake simulates a write
that was applied but never answered. A response with ``drip > 0`` sends its headers at once and then its
body one byte every ``drip`` seconds (``loop.call_later`` chains, no thread), so a per-read timeout never
fires while a whole-answer deadline does. Requests on one connection are answered in order (pipelining safe).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from email.utils import formatdate
from http import HTTPStatus
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from asyncio import BaseTransport, TimerHandle, Transport

__all__ = ["App", "Deferred", "HttpProtocol", "HttpRequest", "HttpResponse", "ServerState"]

log = logging.getLogger(__name__)

MAX_HEADER_BYTES = 64 * 1024
_REASONS = {s.value: s.phrase for s in HTTPStatus}


class HttpRequest:
    """One parsed request; ``path`` is the raw (still percent-encoded) path, ``query`` the raw query string."""

    __slots__ = ("body", "headers", "keep_alive", "method", "path", "query", "received", "target")

    def __init__(self, method: str, target: str, headers: dict[str, str], body: bytes, keep_alive: bool) -> None:
        self.method = method
        self.target = target
        path, _, query = target.partition("?")
        self.path = path
        self.query = query
        self.headers = headers
        self.body = body
        self.keep_alive = keep_alive
        self.received = time.monotonic()


class HttpResponse:
    """An answer: status, extra headers and a body (already encoded); ``drip`` seconds between body bytes."""

    __slots__ = ("body", "content_type", "drip", "drop", "headers", "status")

    def __init__(
        self,
        status: int,
        body: bytes = b"",
        headers: list[tuple[str, str]] | None = None,
        content_type: str = "application/json;charset=utf-8",
        drop: bool = False,
        drip: float = 0.0,
    ) -> None:
        self.status = status
        self.body = body
        self.headers = headers if headers is not None else []
        self.content_type = content_type
        self.drop = drop
        self.drip = drip

    def encode(self, keep_alive: bool, date: str) -> bytes:
        """Serialize status line, headers and body.

        :param keep_alive: whether the connection stays open after this answer.
        :param date: value of the ``Date`` header.
        """
        return self.head(keep_alive, date) + self.body

    def head(self, keep_alive: bool, date: str) -> bytes:
        """Serialize status line and headers (with the blank line that ends them).

        :param keep_alive: whether the connection stays open after this answer.
        :param date: value of the ``Date`` header.
        """
        lines = [
            f"HTTP/1.1 {self.status} {_REASONS.get(self.status, 'Unknown')}",
            f"Date: {date}",
            "Server: hubcomm-fake",
            f"Content-Length: {len(self.body)}",
        ]
        if self.body:
            lines.append(f"Content-Type: {self.content_type}")
        lines.extend(f"{k}: {v}" for k, v in self.headers)
        lines.append("Connection: keep-alive" if keep_alive else "Connection: close")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


class Deferred:
    """Answer ``finish()`` after ``delay`` seconds (the delay runs on the event loop, no thread blocks)."""

    __slots__ = ("delay", "finish")

    def __init__(self, delay: float, finish: Callable[[], HttpResponse]) -> None:
        self.delay = delay
        self.finish = finish


class App(Protocol):
    """What the protocol needs from an application."""

    def handle(self, request: HttpRequest) -> HttpResponse | Deferred:
        """Answer one request, now or later."""

    def error_response(self, status: int, message: str) -> HttpResponse:
        """Build the answer to an unparseable request or an application crash."""


class ServerState:
    """Connections currently open, so the server can close them all on shutdown; also a cached Date."""

    def __init__(self) -> None:
        self.connections: set[HttpProtocol] = set()
        self._date_at = 0
        self._date = ""

    def date(self) -> str:
        """Return the current HTTP ``Date`` value (formatted at most once per second)."""
        now = int(time.time())
        if now != self._date_at:
            self._date_at = now
            self._date = formatdate(now, usegmt=True)
        return self._date

    def close_all(self) -> None:
        """Abort every open connection and cancel their pending answers."""
        for conn in list(self.connections):
            conn.shutdown()


class _BadRequest(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class HttpProtocol(asyncio.Protocol):
    """One client connection: parse requests from the byte stream and write answers in order.

    :param app: the application answering requests.
    :param state: shared server bookkeeping.
    :param max_body: largest accepted body, in bytes (413 beyond).
    """

    def __init__(self, app: App, state: ServerState, max_body: int) -> None:
        self._app = app
        self._state = state
        self._max_body = max_body
        self._buf = bytearray()
        self._transport: Transport | None = None
        self._busy = False
        self._closed = False
        self._timer: TimerHandle | None = None
        self._continue_sent = False

    def connection_made(self, transport: BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]
        self._state.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        self._state.connections.discard(self)
        # A deferred answer still runs (a request the client gave up on is still processed, as on any
        # real server), it just has nowhere to go.

    def data_received(self, data: bytes) -> None:
        self._buf += data
        if not self._busy:
            self._process()

    def shutdown(self) -> None:
        """Cancel a pending answer and abort the connection."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._closed = True
        if self._transport is not None:
            self._transport.abort()
        self._state.connections.discard(self)

    def _process(self) -> None:
        while not self._busy and not self._closed:
            try:
                request = self._parse()
            except _BadRequest as exc:
                self._busy = True
                resp = self._app.error_response(exc.status, str(exc))
                self._write(resp, keep_alive=False)
                return
            if request is None:
                return
            self._busy = True
            try:
                result = self._app.handle(request)
            except Exception:
                log.exception("hubcomm fake: unhandled error answering %s %s", request.method, request.path)
                result = self._app.error_response(500, "internal error in the fake server")
            if isinstance(result, Deferred):
                loop = asyncio.get_running_loop()
                self._timer = loop.call_later(result.delay, self._finish_deferred, result, request)
            else:
                self._write(result, request.keep_alive)

    def _finish_deferred(self, deferred: Deferred, request: HttpRequest) -> None:
        self._timer = None
        try:
            resp = deferred.finish()
        except Exception:
            log.exception("hubcomm fake: unhandled error answering %s %s", request.method, request.path)
            resp = self._app.error_response(500, "internal error in the fake server")
        self._write(resp, request.keep_alive)
        if not self._closed and self._buf:
            self._process()

    def _write(self, resp: HttpResponse, keep_alive: bool) -> None:
        transport = self._transport
        if self._closed or transport is None:
            return
        if resp.drop:
            self._closed = True
            transport.abort()
            return
        if resp.drip > 0 and resp.body:
            transport.write(resp.head(keep_alive, self._state.date()))
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(resp.drip, self._drip, resp, 0, keep_alive)
            return
        transport.write(resp.encode(keep_alive, self._state.date()))
        self._done(keep_alive)

    def _done(self, keep_alive: bool) -> None:
        if keep_alive:
            self._busy = False
        else:
            self._closed = True
            if self._transport is not None:
                self._transport.close()

    def _drip(self, resp: HttpResponse, pos: int, keep_alive: bool) -> None:
        """Send the next body byte of a dripped answer; the last one frees the connection for the next request."""
        self._timer = None
        if self._closed or self._transport is None:
            return
        self._transport.write(resp.body[pos : pos + 1])
        if pos + 1 < len(resp.body):
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(resp.drip, self._drip, resp, pos + 1, keep_alive)
            return
        self._done(keep_alive)
        if not self._closed and self._buf:
            self._process()

    def _parse(self) -> HttpRequest | None:
        buf = self._buf
        while buf[:2] == b"\r\n":  # tolerate stray CRLF between requests (RFC 9112, 2.2)
            del buf[:2]
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            if len(buf) > MAX_HEADER_BYTES:
                raise _BadRequest(431, "request header fields too large")
            return None
        if end > MAX_HEADER_BYTES:
            raise _BadRequest(431, "request header fields too large")
        lines = bytes(buf[:end]).decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            raise _BadRequest(400, "malformed request line")
        method, target, version = parts
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if not sep or not name or name != name.strip():
                raise _BadRequest(400, "malformed header line")
            headers[name.lower()] = value.strip()
        start = end + 4
        if "chunked" in headers.get("transfer-encoding", "").lower():
            decoded = _decode_chunked(buf, start, self._max_body)
            if decoded is None:
                self._maybe_continue(headers)
                return None
            body, consumed = decoded
        else:
            try:
                length = int(headers.get("content-length", "0"))
            except ValueError:
                raise _BadRequest(400, "invalid Content-Length") from None
            if length < 0:
                raise _BadRequest(400, "invalid Content-Length")
            if length > self._max_body:
                raise _BadRequest(413, "request body too large")
            if len(buf) - start < length:
                self._maybe_continue(headers)
                return None
            body = bytes(buf[start : start + length])
            consumed = start + length
        del buf[:consumed]
        self._continue_sent = False
        conn = headers.get("connection", "").lower()
        keep_alive = "close" not in conn if version == "HTTP/1.1" else "keep-alive" in conn
        return HttpRequest(method, target, headers, body, keep_alive)

    def _maybe_continue(self, headers: dict[str, str]) -> None:
        if not self._continue_sent and headers.get("expect", "").lower() == "100-continue":
            self._continue_sent = True
            if self._transport is not None:
                self._transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")


def _decode_chunked(buf: bytearray, pos: int, max_body: int) -> tuple[bytes, int] | None:
    """Decode a chunked body starting at ``pos``; ``None`` while incomplete, else ``(body, end)``."""
    chunks: list[bytes] = []
    size_total = 0
    while True:
        eol = buf.find(b"\r\n", pos)
        if eol < 0:
            return None
        size_text = bytes(buf[pos:eol]).split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            raise _BadRequest(400, "invalid chunk size") from None
        size_total += size
        if size_total > max_body:
            raise _BadRequest(413, "request body too large")
        pos = eol + 2
        if size == 0:
            # trailers end with an empty line
            while True:
                eol = buf.find(b"\r\n", pos)
                if eol < 0:
                    return None
                if eol == pos:
                    return b"".join(chunks), eol + 2
                pos = eol + 2
        if len(buf) < pos + size + 2:
            return None
        chunks.append(bytes(buf[pos : pos + size]))
        if buf[pos + size : pos + size + 2] != b"\r\n":
            raise _BadRequest(400, "malformed chunk")
        pos += size + 2
