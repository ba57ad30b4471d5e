"""Total deadlines per HTTP attempt: connect to last byte, even against a server that drips one byte at a time.

httpx timeouts bound each socket operation, not a request: a server sending one byte every 2 s keeps a
``timeout=5`` request alive for minutes. Each attempt therefore runs under :func:`attempt_deadline`, which
records the attempt's end in a context variable:

* async: the hook wraps the attempt in ``asyncio.timeout`` (see :func:`async_attempt_deadline`);
* sync: the sync transport's connection pool uses :class:`DeadlineNetworkBackend`, which clamps every
  connect, TLS handshake, read and write of the attempt to the time the attempt has left, so a drip during
  the headers or the body ends on time; an expired attempt raises ``httpx.ReadTimeout``/``ConnectTimeout``.

Both raise :class:`httpx.TimeoutException` subclasses, which the retry policy retries. A transport injected
by tests (``httpx.MockTransport``) has no sockets and is left alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterable, Iterator
from contextvars import ContextVar
from typing import Any

import httpcore
import httpx

__all__ = [
    "AttemptDeadlineExceeded",
    "DeadlineNetworkBackend",
    "async_attempt_deadline",
    "attempt_deadline",
    "install_deadlines",
    "remaining",
]

#: ``time.monotonic()`` by which the current attempt must be done, or ``None`` outside an attempt.
_ATTEMPT_END: ContextVar[float | None] = ContextVar("hubcomm_attempt_end", default=None)


class AttemptDeadlineExceeded(httpx.TimeoutException):
    """An attempt ran out of its total time (the connection's ``timeout`` or the run's ``deadline``)."""


def remaining() -> float | None:
    """Return the seconds the current attempt has left (may be <= 0), or ``None`` outside an attempt."""
    end = _ATTEMPT_END.get()
    return None if end is None else end - time.monotonic()


@contextlib.contextmanager
def attempt_deadline(seconds: float) -> Iterator[float]:
    """Run the body as one attempt of at most ``seconds`` (or less, inside an enclosing attempt).

    :param seconds: the attempt's total time.
    :return: the seconds the attempt actually has.
    """
    end = time.monotonic() + seconds
    outer = _ATTEMPT_END.get()
    if outer is not None:
        end = min(end, outer)
    token = _ATTEMPT_END.set(end)
    try:
        yield end - time.monotonic()
    finally:
        _ATTEMPT_END.reset(token)


@contextlib.asynccontextmanager
async def async_attempt_deadline(seconds: float, what: str) -> AsyncIterator[float]:
    """Async twin of :func:`attempt_deadline`: also cancels the body when the time is up.

    :param seconds: the attempt's total time.
    :param what: the request, for the error message.
    :raises AttemptDeadlineExceeded: the body did not finish in time.
    """
    with attempt_deadline(seconds) as budget:
        try:
            async with asyncio.timeout(max(budget, 0.0)):
                yield budget
        except TimeoutError:
            raise AttemptDeadlineExceeded(f"{what} did not complete within its {budget:.1f} s deadline") from None


def _clamp(timeout: float | None, kind: type[Exception]) -> float | None:
    left = remaining()
    if left is None:
        return timeout
    if left <= 0:
        raise kind("the attempt's total deadline was reached")
    return left if timeout is None else min(timeout, left)


class _DeadlineStream(httpcore.NetworkStream):
    """A network stream whose every operation ends by the current attempt's deadline."""

    def __init__(self, stream: httpcore.NetworkStream) -> None:
        self._stream = stream

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._stream.read(max_bytes, _clamp(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._stream.write(buffer, _clamp(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._stream.close()

    def start_tls(
        self, ssl_context: Any, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.NetworkStream:
        tls = self._stream.start_tls(ssl_context, server_hostname, _clamp(timeout, httpcore.ConnectTimeout))
        return _DeadlineStream(tls)

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)


class DeadlineNetworkBackend(httpcore.NetworkBackend):
    """httpcore network backend that bounds every socket operation by the current attempt's deadline.

    :param backend: the backend to wrap (httpcore's default sync backend).
    """

    def __init__(self, backend: httpcore.NetworkBackend) -> None:
        self._backend = backend

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        """Connect within the attempt's deadline; the stream keeps bounding each operation.

        :param host: host name.
        :param port: port.
        :param timeout: httpx's connect timeout.
        :param local_address: local address to bind.
        :param socket_options: socket options.
        """
        stream = self._backend.connect_tcp(
            host, port, _clamp(timeout, httpcore.ConnectTimeout), local_address, socket_options
        )
        return _DeadlineStream(stream)

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.NetworkStream:
        """Connect to a Unix socket within the attempt's deadline.

        :param path: socket path.
        :param timeout: httpx's connect timeout.
        :param socket_options: socket options.
        """
        stream = self._backend.connect_unix_socket(path, _clamp(timeout, httpcore.ConnectTimeout), socket_options)
        return _DeadlineStream(stream)

    def sleep(self, seconds: float) -> None:
        """Sleep (used by httpcore's connect retries).

        :param seconds: how long.
        """
        self._backend.sleep(seconds)


def install_deadlines(client: httpx.Client) -> None:
    """Make every socket transport of a sync client honour attempt deadlines (default and proxy mounts).

    Transports without an httpcore pool (``httpx.MockTransport``, custom ones) are left alone.

    :param client: the client, just built.
    """
    transports = [client._transport, *client._mounts.values()]
    for transport in transports:
        pool = getattr(transport, "_pool", None)
        backend = getattr(pool, "_network_backend", None)
        if backend is not None and not isinstance(backend, DeadlineNetworkBackend):
            pool._network_backend = DeadlineNetworkBackend(backend)  # type: ignore[union-attr]
