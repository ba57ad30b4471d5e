"""uvicorn serving an ASGI application on its own event loop (uvloop when installed) in a background thread.

Tuned for a test double rather than a production service:

* the socket is bound in :meth:`BackgroundServer.start`, in the caller's thread, so a port in use raises
  ``OSError`` there (uvicorn itself would log and ``sys.exit``);
* no lifespan, no access log, no proxy-header middleware, only warnings from ``uvicorn.error``, and the record
  uvicorn writes for each deliberately dropped answer
  (:class:`~airflow_provider_hubcomm.testing._asgi.ConnectionDropped`) is filtered out;
* idle keep-alive connections are never closed by the server (a pooled client never races an idle close);
* the head and body of an answer leave in one ``send`` (uvicorn writes them separately);
* stopping is immediate: no 0.1 s polling and no graceful wait; open connections are aborted and answers still
  pending (injected latency, drips) are cancelled.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import threading
from typing import TYPE_CHECKING, Any, cast

import uvicorn

from airflow_provider_hubcomm.testing._asgi import ConnectionDropped

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = ["BackgroundServer"]

BACKLOG = 512
#: Seconds an idle keep-alive connection stays open: as long as any test or benchmark runs.
KEEP_ALIVE = 24 * 3600


class _QuietDrops(logging.Filter):
    """Drop uvicorn's "Exception in ASGI application" record when the exception is a deliberate drop."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, ConnectionDropped)


def _quiet_drops() -> None:
    logger = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _QuietDrops) for f in logger.filters):
        logger.addFilter(_QuietDrops())


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is optional
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def _bind(host: str, port: int) -> socket.socket:
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(BACKLOG)
    except BaseException:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


class _Uvicorn(uvicorn.Server):
    """uvicorn's server with an event-driven main loop and an immediate shutdown."""

    def __init__(self, config: uvicorn.Config, ready: threading.Event) -> None:
        super().__init__(config)
        self._ready = ready
        self._wake: asyncio.Event | None = None

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        self._ready.set()

    async def main_loop(self) -> None:
        self._wake = asyncio.Event()
        while not await self.on_tick(0):  # tick 0 refreshes the Date header; on_tick sees should_exit
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), 1.0)

    def request_stop(self) -> None:
        """Ask the main loop to end (call it on the server's loop)."""
        self.should_exit = True
        if self._wake is not None:
            self._wake.set()

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        for server in self.servers:
            server.close()
        for sock in sockets or []:
            sock.close()
        for conn in list(self.server_state.connections):
            transport = getattr(conn, "transport", None)
            if transport is not None:
                transport.abort()
        await asyncio.sleep(0)  # let connection_lost run: a cancelled answer then finds its client gone
        tasks = list(self.server_state.tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for server in self.servers:
            await server.wait_closed()


class _CoalescedWrites:
    """Wrap a transport so the writes of one event-loop step leave in one ``send`` (an answer's head and body).

    uvicorn writes the head and the body of an answer separately: two syscalls, and two wake-ups of the client.
    Order is kept; ``close`` sends what is buffered first, ``abort`` discards it.

    :param transport: the connection's transport.
    :param loop: the server's event loop.
    """

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] = []

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not self._pending:
            self._loop.call_soon(self._flush)
        self._pending.append(bytes(data))

    def _flush(self) -> None:
        if self._pending:
            data = b"".join(self._pending)
            self._pending.clear()
            if not self._transport.is_closing():
                self._transport.write(data)

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def abort(self) -> None:
        self._pending.clear()
        self._transport.abort()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


def _http_protocol() -> type[asyncio.Protocol]:
    """Return uvicorn's HTTP/1.1 protocol (httptools when installed, else h11), writing through a coalescer."""
    from uvicorn.protocols.http.auto import AutoHTTPProtocol

    class CoalescingProtocol(AutoHTTPProtocol):  # type: ignore[misc,valid-type]
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            # uvloop's transports are not asyncio.Transport subclasses; both have what is used here.
            super().connection_made(_CoalescedWrites(cast("asyncio.Transport", transport), asyncio.get_running_loop()))

    return CoalescingProtocol


def _until_stopped(app: ASGIApp) -> ASGIApp:
    """Wrap ``app`` so the cancellation of a pending answer at shutdown ends it without an error record."""

    async def served(scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await app(scope, receive, send)
        except asyncio.CancelledError:
            # Only the shutdown cancels answers (uvicorn never does on a client's disconnect); the
            # connection is already aborted, so there is nobody to answer.
            return

    return served


class BackgroundServer:
    """Serve an ASGI application with uvicorn on ``host:port`` from a daemon thread.

    :param app: the ASGI application.
    :param host: interface to listen on.
    :param port: TCP port (``0``: any free port).
    :param name: the thread's name.
    """

    def __init__(self, app: ASGIApp, host: str, port: int, name: str = "hubcomm-fake") -> None:
        self._app = app
        self._host = host
        self._port = port
        self._name = name
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: _Uvicorn | None = None

    def start(self) -> int:
        """Bind, start serving and return the port; raise ``OSError`` when the address cannot be bound."""
        sock = _bind(self._host, self._port)
        port = int(sock.getsockname()[1])
        _quiet_drops()
        config = uvicorn.Config(
            _until_stopped(self._app),
            http=_http_protocol(),
            ws="none",
            lifespan="off",
            interface="asgi3",
            log_config=None,
            log_level="warning",
            access_log=False,
            proxy_headers=False,
            server_header=False,
            headers=[("Server", "hubcomm-fake")],
            timeout_keep_alive=KEEP_ALIVE,
            backlog=BACKLOG,
        )
        ready = threading.Event()
        server = _Uvicorn(config, ready)
        failure: list[BaseException] = []
        args = (server, sock, ready, failure)
        thread = threading.Thread(target=self._serve, args=args, name=self._name, daemon=True)
        thread.start()
        ready.wait()
        if failure:
            thread.join()
            sock.close()
            raise failure[0]
        self._server, self._thread = server, thread
        return port

    def _serve(
        self, server: _Uvicorn, sock: socket.socket, ready: threading.Event, failure: list[BaseException]
    ) -> None:
        loop = _new_loop()
        asyncio.set_event_loop(loop)
        self._loop = loop
        try:
            loop.run_until_complete(server.serve(sockets=[sock]))
        except BaseException as exc:  # reported to start(), or lost after a stop
            failure.append(exc)
        finally:
            ready.set()
            try:
                loop.run_until_complete(loop.shutdown_asyncgens())
            finally:
                loop.close()

    def stop(self) -> None:
        """Stop serving, abort every connection, cancel pending answers and join the thread (idempotent)."""
        thread, server, loop = self._thread, self._server, self._loop
        if thread is None or server is None or loop is None:
            return
        if thread.is_alive():
            with contextlib.suppress(RuntimeError):  # the loop closed in the meantime
                loop.call_soon_threadsafe(server.request_stop)
        thread.join()
        self._thread = self._server = self._loop = None
