"""What the fake's application reads and answers, whatever carries it (uvicorn, ASGI in process, a mock).

:class:`~airflow_provider_hubcomm.testing._app.FakeApp` turns each :class:`HttpRequest` into either an
:class:`HttpResponse` or a :class:`Deferred` (answer after a delay: injected latency). A response with
``drop=True`` stands for a write that was applied but never answered: the carrier closes the connection
before the answer is complete. A response with ``drip > 0`` sends its headers at once and then its body one
byte every ``drip`` seconds.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["JSON", "Deferred", "HttpRequest", "HttpResponse"]

#: Content type of every JSON answer.
JSON = "application/json;charset=utf-8"


class HttpRequest:
    """One request; ``path`` is the raw (still percent-encoded) path, ``query`` the raw query string.

    :param method: the HTTP method, upper case.
    :param path: the raw path, without the query string.
    :param query: the raw query string (no ``?``).
    :param headers: header values by lower-case name.
    :param body: the whole request body.
    :param received: ``time.monotonic()`` of its arrival (default: now).
    """

    __slots__ = ("body", "headers", "method", "path", "query", "received")

    def __init__(
        self,
        method: str,
        path: str,
        query: str,
        headers: dict[str, str],
        body: bytes,
        received: float | None = None,
    ) -> None:
        self.method = method
        self.path = path
        self.query = query
        self.headers = headers
        self.body = body
        self.received = time.monotonic() if received is None else received


class HttpResponse:
    """An answer: status, extra headers and an encoded body.

    :param status: the HTTP status.
    :param body: the encoded body.
    :param headers: extra headers, in order.
    :param content_type: the ``Content-Type`` (sent only with a body).
    :param drop: apply, then close the connection before the answer is complete.
    :param drip: seconds between body bytes (``0``: all at once).
    """

    __slots__ = ("body", "content_type", "drip", "drop", "headers", "status")

    def __init__(
        self,
        status: int,
        body: bytes = b"",
        headers: list[tuple[str, str]] | None = None,
        content_type: str = JSON,
        drop: bool = False,
        drip: float = 0.0,
    ) -> None:
        self.status = status
        self.body = body
        self.headers = headers if headers is not None else []
        self.content_type = content_type
        self.drop = drop
        self.drip = drip

    def header_list(self) -> list[tuple[str, str]]:
        """Return every header to send: ``Content-Type`` (with a body), ``Content-Length``, then the extras."""
        head = [("Content-Type", self.content_type)] if self.body else []
        head.append(("Content-Length", str(len(self.body))))
        return head + self.headers


class Deferred:
    """Answer ``finish()`` after ``delay`` seconds.

    :param delay: seconds to wait (on the event loop, or in the calling thread without one).
    :param finish: builds the answer once the delay is over (the request is handled then).
    """

    __slots__ = ("delay", "finish")

    def __init__(self, delay: float, finish: Callable[[], HttpResponse]) -> None:
        self.delay = delay
        self.finish = finish
