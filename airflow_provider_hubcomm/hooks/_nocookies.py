"""A cookie jar that keeps nothing, for the hook's clients.

HubSpot's API authenticates every request with its bearer token; the cookies its edge sets (a bot-management
cookie) carry no state the API needs, and HubSpot's own Python client keeps none. httpx has no switch to turn
its cookie jar off: each answer is still run through :mod:`http.cookiejar` (a urllib request and response
wrapper, header parsing), about 60 µs of CPU per request, a tenth of a 100-row batch write's client cost
(``benchmarks/http_cpu.py``). A jar that drops every ``Set-Cookie`` also keeps one task's answers from
changing what its next request sends.
"""

from __future__ import annotations

import httpx

__all__ = ["NoCookies", "drop_cookies"]


class NoCookies(httpx.Cookies):
    """An always empty :class:`httpx.Cookies`: ``Set-Cookie`` answers are ignored, no ``Cookie`` is sent."""

    def extract_cookies(self, response: httpx.Response) -> None:
        """Ignore the answer's cookies.

        :param response: the answer.
        """

    def set_cookie_header(self, request: httpx.Request) -> None:
        """Add no ``Cookie`` header.

        :param request: the request.
        """


def drop_cookies(client: httpx.Client | httpx.AsyncClient) -> None:
    """Give a client, just built, the jar that keeps nothing.

    httpx's ``cookies`` setter copies into a plain :class:`httpx.Cookies`, so the jar is set on the attribute
    the client reads (``_cookies``, unchanged since httpx 0.18).

    :param client: the client.
    """
    client._cookies = NoCookies()
