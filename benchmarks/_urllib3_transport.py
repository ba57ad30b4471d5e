"""PROTOTYPE, measured and not shipped: a urllib3-backed :class:`httpx.BaseTransport` for the hook's sync client.

Written for issue 18 ("Faster client") to see whether swapping httpcore + h11 for urllib3 under the hook's
:class:`httpx.Client` lowers a batch write's client CPU. It does not: urllib3 sending the 100-row write alone
costs about what httpcore + h11 cost (~200-300 µs), and the hook path measured the same with either transport
(``benchmarks/http_cpu.py``, variants ``b`` and ``hook-urllib3``; figures in ``benchmarks/RESULTS.md``). It is
kept here so the figure can be reproduced. With it as the hook's default transport, ``tests/hooks`` passed
(128 tests: drip deadlines on headers and body, self-signed TLS refused without retries, refused port, retries).

It keeps what the hook relies on from httpx's transport; the hook keeps its client (auth flows, event hooks,
``MockTransport`` in tests, proxies, the retry policy's exception types):

* **Timeouts**: the request's ``timeout`` extension (``connect``/``read``/``write``/``pool``) is applied to
  every socket operation: connect (and TLS handshake) by ``connect``, each receive by ``read``, each send by
  ``write``; waiting for a free connection by ``pool``.
* **Attempt deadlines**: like :class:`~airflow_provider_hubcomm.hooks._deadline.DeadlineNetworkBackend`, each
  socket operation is clamped to the time the current :func:`~airflow_provider_hubcomm.hooks._deadline.attempt_deadline`
  has left, so a server dripping its answer byte by byte cannot outlive the attempt.
* **TLS**: :func:`httpx.create_ssl_context` (certifi, or ``SSL_CERT_FILE``/``SSL_CERT_DIR``), hostname checked,
  exactly httpx's defaults.
* **Proxies**: not handled here. :class:`httpx.Client` mounts its own proxy transports from the environment
  (``HTTPS_PROXY``, ``ALL_PROXY``, ``NO_PROXY``...) whatever transport it is given, so a proxied URL still goes
  through httpx's default transport (with the hook's deadlines installed); only direct traffic comes here.
* **Pooling**: keep-alive, at most ``max_keepalive_connections`` idle connections per origin, closed after
  ``keepalive_expiry`` idle seconds, and at most ``max_connections`` requests in flight (a request waits up to
  the ``pool`` timeout for a slot, then raises :class:`httpx.PoolTimeout`).
* **Errors**: urllib3's exceptions become the httpx exceptions httpcore would raise (``ConnectError``,
  ``ConnectTimeout``, ``ReadTimeout``, ``WriteTimeout``, ``ReadError``, ``RemoteProtocolError``...), so
  :mod:`~airflow_provider_hubcomm.retry` decides the same way.

Answers are read whole (no streaming: this API answers small JSON) and handed to httpx undecoded, so httpx
still decompresses them (and raises :class:`httpx.DecodingError` on a corrupt body). HTTP/1.1 only, like the
hook's client.
"""

from __future__ import annotations

import http.client
import socket
import ssl
import threading
import time
from collections.abc import Mapping
from contextvars import ContextVar
from typing import Any

import httpx
import urllib3
from urllib3 import exceptions as u3
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from airflow_provider_hubcomm.hooks._deadline import remaining

__all__ = ["Urllib3Transport"]

_CONNECT, _READ, _WRITE = 0, 1, 2

#: Per-operation timeouts ``(connect, read, write)`` of the request being sent in this context.
_OP_TIMEOUTS: ContextVar[tuple[float | None, float | None, float | None] | None] = ContextVar(
    "hubcomm_op_timeouts", default=None
)


class _OpTimeout(TimeoutError):
    """A socket operation of a known kind ran out of time (its timeout or the attempt's deadline)."""

    kind = _READ


class _ConnectTimedOut(_OpTimeout):
    kind = _CONNECT


class _WriteTimedOut(_OpTimeout):
    kind = _WRITE


_TIMEOUT_OF_KIND: dict[int, type[_OpTimeout]] = {_CONNECT: _ConnectTimedOut, _READ: _OpTimeout, _WRITE: _WriteTimedOut}


def _op_timeout(kind: int, current: float | None) -> float | None:
    """Return the timeout of the next socket operation of ``kind``, clamped to the attempt's time left.

    :param kind: ``_CONNECT``, ``_READ`` or ``_WRITE``.
    :param current: the socket's timeout, used when no request set one.
    :raises _OpTimeout: the attempt has no time left.
    """
    timeouts = _OP_TIMEOUTS.get()
    timeout = current if timeouts is None else timeouts[kind]
    left = remaining()
    if left is None:
        return timeout
    if left <= 0:
        raise _TIMEOUT_OF_KIND[kind]("the attempt's total deadline was reached")
    return left if timeout is None else min(timeout, left)


class _DeadlineSocket(socket.socket):
    """A TCP socket whose every receive and send is bounded by the request's timeouts and deadline."""

    def recv_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> int:
        self.settimeout(_op_timeout(_READ, self.gettimeout()))
        return super().recv_into(buffer, nbytes, flags)

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        self.settimeout(_op_timeout(_READ, self.gettimeout()))
        return super().recv(bufsize, flags)

    def sendall(self, data: Any, flags: int = 0) -> None:
        self.settimeout(_op_timeout(_WRITE, self.gettimeout()))
        try:
            super().sendall(data, flags)
        except TimeoutError as err:
            raise _WriteTimedOut(f"write timed out: {err}") from err

    def send(self, data: Any, flags: int = 0) -> int:
        self.settimeout(_op_timeout(_WRITE, self.gettimeout()))
        try:
            return super().send(data, flags)
        except TimeoutError as err:
            raise _WriteTimedOut(f"write timed out: {err}") from err


class _DeadlineSSLSocket(ssl.SSLSocket):
    """The TLS twin of :class:`_DeadlineSocket` (the handshake is bounded like a connect)."""

    def do_handshake(self, block: bool = False) -> None:
        self.settimeout(_op_timeout(_CONNECT, self.gettimeout()))
        super().do_handshake(block)

    def recv_into(self, buffer: Any, nbytes: int | None = None, flags: int = 0) -> int:
        self.settimeout(_op_timeout(_READ, self.gettimeout()))
        return super().recv_into(buffer, nbytes, flags)  # type: ignore[arg-type]

    def recv(self, buflen: int = 1024, flags: int = 0) -> bytes:
        self.settimeout(_op_timeout(_READ, self.gettimeout()))
        return super().recv(buflen, flags)

    def send(self, data: Any, flags: int = 0) -> int:
        self.settimeout(_op_timeout(_WRITE, self.gettimeout()))
        try:
            return super().send(data, flags)
        except TimeoutError as err:
            raise _WriteTimedOut(f"write timed out: {err}") from err

    # ssl.SSLSocket.sendall loops over self.send: each chunk is bounded there.


class _DeadlineConnectionMixin:
    """Connect within the request's connect timeout and the attempt's deadline; hand out a bounded socket."""

    timeout: float | None
    #: ``time.monotonic()`` when the connection went back to the pool idle (``None``: in use or new).
    idle_since: float | None = None

    def _new_conn(self) -> socket.socket:
        try:
            self.timeout = _op_timeout(_CONNECT, self.timeout)
        except _OpTimeout as err:
            raise u3.ConnectTimeoutError(self, str(err)) from err
        sock: socket.socket = super()._new_conn()  # type: ignore[misc]
        timeout = sock.gettimeout()
        bounded = _DeadlineSocket(sock.family, sock.type, sock.proto, sock.detach())
        bounded.settimeout(timeout)
        return bounded


class _HTTPConnection(_DeadlineConnectionMixin, HTTPConnection):
    pass


class _HTTPSConnection(_DeadlineConnectionMixin, HTTPSConnection):
    pass


class _ExpiringPoolMixin:
    """Close a pooled connection that sat idle longer than ``keepalive_expiry`` instead of reusing it."""

    keepalive_expiry: float | None = None

    def _get_conn(self, timeout: float | None = None) -> Any:
        conn = super()._get_conn(timeout)  # type: ignore[misc]
        idle_since = getattr(conn, "idle_since", None)
        if idle_since is not None:
            conn.idle_since = None
            if self.keepalive_expiry is not None and time.monotonic() - idle_since > self.keepalive_expiry:
                conn.close()
        return conn

    def _put_conn(self, conn: Any) -> None:
        if conn is not None:
            conn.idle_since = time.monotonic()
        super()._put_conn(conn)  # type: ignore[misc]


class _HTTPPool(_ExpiringPoolMixin, HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSPool(_ExpiringPoolMixin, HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


def _default_ssl_context() -> ssl.SSLContext:
    """httpx's default verifying context (certifi or ``SSL_CERT_FILE``/``SSL_CERT_DIR``), deadline-bound sockets."""
    context = httpx.create_ssl_context()
    context.sslsocket_class = _DeadlineSSLSocket
    return context


def _http_version(version: int) -> bytes:
    return b"HTTP/1.0" if version == 10 else b"HTTP/1.1"


class Urllib3Transport(httpx.BaseTransport):
    """Send an :class:`httpx.Request` with urllib3 (HTTP/1.1, keep-alive) and answer an :class:`httpx.Response`.

    :param limits: the pool limits, as for :class:`httpx.HTTPTransport`.
    :param ssl_context: the TLS context (default: httpx's verifying default, see :func:`httpx.create_ssl_context`).
    """

    def __init__(self, *, limits: httpx.Limits | None = None, ssl_context: ssl.SSLContext | None = None) -> None:
        limits = limits or httpx.Limits(max_connections=100, max_keepalive_connections=20)
        self._keepalive = limits.max_keepalive_connections or 1
        self._expiry = limits.keepalive_expiry
        self._slots = threading.BoundedSemaphore(limits.max_connections) if limits.max_connections else None
        self._ssl_context = ssl_context
        self._pools: dict[tuple[str, str, int], HTTPConnectionPool] = {}
        self._lock = threading.Lock()

    def _ssl(self) -> ssl.SSLContext:
        if self._ssl_context is None:
            self._ssl_context = _default_ssl_context()
        elif not issubclass(self._ssl_context.sslsocket_class, _DeadlineSSLSocket):
            self._ssl_context.sslsocket_class = _DeadlineSSLSocket
        return self._ssl_context

    def _pool(self, url: httpx.URL) -> HTTPConnectionPool:
        scheme = url.scheme
        port = url.port or (443 if scheme == "https" else 80)
        key = (scheme, url.host, port)
        pool = self._pools.get(key)
        if pool is not None:
            return pool
        with self._lock:
            pool = self._pools.get(key)
            if pool is None:
                if scheme == "https":
                    pool = _HTTPSPool(url.host, port, maxsize=self._keepalive, block=False, ssl_context=self._ssl())
                elif scheme == "http":
                    pool = _HTTPPool(url.host, port, maxsize=self._keepalive, block=False)
                else:
                    raise httpx.UnsupportedProtocol(f"Request URL has an unsupported protocol '{scheme}://'.")
                pool.keepalive_expiry = self._expiry  # type: ignore[attr-defined]
                self._pools[key] = pool
        return pool

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        """Send ``request`` and read its whole answer, mapping urllib3's errors to httpx's.

        :param request: the request (its ``timeout`` extension gives the four timeouts).
        """
        timeouts: Mapping[str, float | None] = request.extensions.get("timeout", {})
        connect, read, write = timeouts.get("connect"), timeouts.get("read"), timeouts.get("write")
        pool = self._pool(request.url)
        if self._slots is not None and not self._slots.acquire(timeout=_pool_wait(timeouts.get("pool"))):
            raise httpx.PoolTimeout("no connection slot became free within the pool timeout", request=request)
        token = _OP_TIMEOUTS.set((connect, read, write))
        try:
            answer = pool.urlopen(
                request.method,
                request.url.raw_path.decode("ascii"),
                body=request.read() or None,
                headers=_headers(request),
                retries=False,
                redirect=False,
                assert_same_host=False,
                timeout=urllib3.Timeout(connect=connect, read=read),
                preload_content=True,
                decode_content=False,
            )
        except Exception as err:
            mapped = _as_httpx(err, request)
            if mapped is err:
                raise
            raise mapped from err
        finally:
            _OP_TIMEOUTS.reset(token)
            if self._slots is not None:
                self._slots.release()
        return httpx.Response(
            answer.status,
            headers=list(answer.headers.items()),
            stream=httpx.ByteStream(answer.data),
            extensions={
                "http_version": _http_version(answer.version),
                "reason_phrase": (answer.reason or "").encode("ascii", "replace"),
            },
        )

    def close(self) -> None:
        """Close every pooled connection."""
        with self._lock:
            pools, self._pools = list(self._pools.values()), {}
        for pool in pools:
            pool.close()


def _pool_wait(timeout: float | None) -> float:
    return -1 if timeout is None else timeout


def _headers(request: httpx.Request) -> Any:
    items = request.headers.multi_items()
    headers = dict(items)
    if len(headers) == len(items):
        return headers
    repeated = urllib3.HTTPHeaderDict()
    for name, value in items:
        repeated.add(name, value)
    return repeated


def _causes(err: BaseException) -> list[BaseException]:
    """``err``, the exceptions it wraps (``args``, ``reason``) and its ``__cause__``/``__context__`` chain."""
    out: list[BaseException] = []
    todo: list[BaseException] = [err]
    while todo and len(out) < 16:
        seen = todo.pop(0)
        if any(seen is known for known in out):
            continue
        out.append(seen)
        more = [getattr(seen, "reason", None), seen.__cause__, seen.__context__, *seen.args]
        todo.extend(x for x in more if isinstance(x, BaseException))
    return out


def _as_httpx(err: Exception, request: httpx.Request) -> Exception:
    """Return the httpx exception httpcore would raise for this urllib3 (or socket) failure.

    :param err: what urllib3 raised.
    :param request: the request, attached to the httpx exception.
    """
    chain = _causes(err)
    message = str(err)
    op = next((c for c in chain if isinstance(c, _OpTimeout)), None)
    if op is not None:
        kind: type[httpx.TimeoutException] = {
            _CONNECT: httpx.ConnectTimeout,
            _READ: httpx.ReadTimeout,
            _WRITE: httpx.WriteTimeout,
        }[op.kind]
        return kind(str(op), request=request)
    if isinstance(err, (u3.NewConnectionError, u3.SSLError)):  # NewConnectionError subclasses ConnectTimeoutError
        return httpx.ConnectError(message, request=request)
    if isinstance(err, u3.ConnectTimeoutError):
        return httpx.ConnectTimeout(message, request=request)
    if isinstance(err, u3.ReadTimeoutError):
        return httpx.ReadTimeout(message, request=request)
    if isinstance(err, u3.EmptyPoolError):
        return httpx.PoolTimeout(message, request=request)
    if isinstance(err, (u3.LocationValueError, u3.LocationParseError)):
        return httpx.UnsupportedProtocol(message, request=request)
    if isinstance(err, (u3.ProtocolError, OSError, http.client.HTTPException)):
        if any(isinstance(c, TimeoutError) for c in chain):
            return httpx.ReadTimeout(message, request=request)
        if any(isinstance(c, (http.client.HTTPException, u3.ProtocolError)) for c in chain[1:]) or isinstance(
            err, http.client.HTTPException
        ):
            return httpx.RemoteProtocolError(message, request=request)
        return httpx.ReadError(message, request=request)
    if isinstance(err, httpx.HTTPError):
        return err
    if isinstance(err, u3.HTTPError):
        return httpx.TransportError(message, request=request)
    return err
