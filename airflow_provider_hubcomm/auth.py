"""HubSpot authentication as :class:`httpx.Auth` flows: private-app tokens and OAuth 2.0 refresh.

The OAuth flow caches the access token with its expiry and refreshes it *before* it expires (HubSpot says a
401 is not a reliable signal, so the TTL is the primary trigger). Every token carries a generation number,
and a 401 is judged by the generation the request was sent with:

* sent with a token that has since been replaced (*stale*): resend with the current token, no refresh
  (at most :data:`MAX_STALE_RESENDS` times, so a request never loops);
* sent with the current token: ONE shared refresh (concurrent requests wait for it and reuse its token, so
  one expiry costs one token request, not one per request in flight), then resend;
* sent with the current token, refreshed for or after this very request's 401: an auth failure, the 401 is
  returned (a token that another request has replaced since is stale, first rule, even if it was refreshed
  for this one).

So a long run crosses any number of expiries with requests in flight, and each request refreshes at most once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Generator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx

from airflow_provider_hubcomm.constants import TOKEN_REFRESH_FRACTION, TOKEN_REFRESH_MIN_MARGIN

if TYPE_CHECKING:
    from airflow_provider_hubcomm.models import AccessTokenResponse

__all__ = ["MAX_STALE_RESENDS", "OAuthRefreshAuth", "PrivateAppAuth"]

log = logging.getLogger(__name__)

TokenFetcher = Callable[[str], "AccessTokenResponse"]
AsyncTokenFetcher = Callable[[str], Awaitable["AccessTokenResponse"]]

#: Resends of one request after 401s on tokens that other requests had already replaced.
MAX_STALE_RESENDS = 3


def _bearer(request: httpx.Request, token: str) -> None:
    request.headers["Authorization"] = f"Bearer {token}"


@dataclass(frozen=True, slots=True)
class _TokenWanted:
    """A step of :meth:`OAuthRefreshAuth._flow`: it needs a token (see :meth:`OAuthRefreshAuth.sync_token`)."""

    seen_generation: int | None = None


class PrivateAppAuth(httpx.Auth):
    """Static Bearer token of a HubSpot private app.

    :param token: the private-app access token.
    """

    def __init__(self, token: str) -> None:
        self._token = token

    def __repr__(self) -> str:
        return "PrivateAppAuth(token=***)"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        """Add the Bearer header.

        :param request: the outgoing request.
        """
        _bearer(request, self._token)
        yield request


class OAuthRefreshAuth(httpx.Auth):
    """OAuth 2.0 refresh-token flow with a shared, expiry-aware token cache.

    :param refresh_token: the app's refresh token.
    :param fetch: sync function ``refresh_token -> AccessTokenResponse`` (POSTs the form to the token URL).
    :param afetch: async twin of ``fetch``.
    :param on_token: called with every new secret (access token, rotated refresh token) so it can be masked.
    :param clock: monotonic clock, injectable for tests.
    """

    def __init__(
        self,
        refresh_token: str,
        *,
        fetch: TokenFetcher,
        afetch: AsyncTokenFetcher,
        on_token: Callable[[str], None] = lambda _secret: None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._refresh_token = refresh_token
        self._fetch = fetch
        self._afetch = afetch
        self._on_token = on_token
        self._clock = clock
        self._access_token: str | None = None
        self._refresh_at = 0.0
        self.generation = 0
        self._lock = threading.Lock()
        self._alock: asyncio.Lock | None = None
        self.refresh_count = 0

    def __repr__(self) -> str:
        return f"OAuthRefreshAuth(generation={self.generation}, refresh_token=***, access_token=***)"

    def _fresh(self) -> bool:
        return self._access_token is not None and self._clock() < self._refresh_at

    def _store(self, answer: AccessTokenResponse) -> None:
        self._on_token(answer.access_token)
        ttl = max(float(answer.expires_in), 1.0)
        margin = max(ttl * TOKEN_REFRESH_FRACTION, min(TOKEN_REFRESH_MIN_MARGIN, ttl / 2))
        self._access_token = answer.access_token
        self._refresh_at = self._clock() + ttl - margin
        if answer.refresh_token and answer.refresh_token != self._refresh_token:
            self._on_token(answer.refresh_token)
            self._refresh_token = answer.refresh_token
            log.info("HubSpot rotated the OAuth refresh token; the new one is kept in memory for this run.")
        self.generation += 1
        self.refresh_count += 1

    def _needs_refresh(self, seen_generation: int | None) -> bool:
        if seen_generation is None:
            return not self._fresh()
        return self.generation == seen_generation or not self._fresh()

    def sync_token(self, seen_generation: int | None = None) -> tuple[str, int]:
        """Return a valid access token and its generation, refreshing if needed.

        :param seen_generation: when set, refresh only if nobody refreshed since that generation (401 path).
        """
        with self._lock:
            if self._needs_refresh(seen_generation):
                self._store(self._fetch(self._refresh_token))
            assert self._access_token is not None
            return self._access_token, self.generation

    async def async_token(self, seen_generation: int | None = None) -> tuple[str, int]:
        """Async twin of :meth:`sync_token`.

        :param seen_generation: when set, refresh only if nobody refreshed since that generation.
        """
        if self._alock is None:
            self._alock = asyncio.Lock()
        async with self._alock:
            if self._needs_refresh(seen_generation):
                self._store(await self._afetch(self._refresh_token))
            assert self._access_token is not None
            return self._access_token, self.generation

    def _on_401(self, sent: int, refreshed: int | None, stale: int) -> str:
        """Decide what a 401 on a request sent with token generation ``sent`` calls for.

        :param sent: generation of the token the request carried.
        :param refreshed: generation this request refreshed to (or waited for), if it did already.
        :param stale: stale-token resends of this request so far.
        :return: ``"fail"``, ``"stale"`` (resend with the current token) or ``"refresh"``.
        """
        if sent < self.generation:
            return "stale" if stale < MAX_STALE_RESENDS else "fail"
        if refreshed is not None and sent >= refreshed:
            return "fail"
        return "refresh"

    def _flow(self, request: httpx.Request) -> Generator[httpx.Request | _TokenWanted, Any, None]:
        """Send with a fresh token; on 401 resend with the current token or refresh once (shared), see above.

        The flow of both httpx flows, without I/O: it yields :class:`_TokenWanted` (and is sent
        ``(token, generation)``) or the request to send (and is sent the response).

        :param request: the outgoing request.
        """
        token, generation = yield _TokenWanted()
        refreshed: int | None = None
        stale = 0
        while True:
            _bearer(request, token)
            response = yield request
            if response.status_code != 401:
                return
            action = self._on_401(generation, refreshed, stale)
            if action == "fail":
                return
            if action == "stale":
                stale += 1
                token, generation = yield _TokenWanted()
            else:
                token, generation = yield _TokenWanted(seen_generation=generation)
                refreshed = generation
            log.info("HubSpot answered 401 to a request; resending it with access token #%d (%s).", generation, action)

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        """Run :meth:`_flow`, getting tokens with :meth:`sync_token`.

        :param request: the outgoing request.
        """
        flow = self._flow(request)
        with contextlib.suppress(StopIteration):
            step = next(flow)
            while True:
                if isinstance(step, _TokenWanted):
                    step = flow.send(self.sync_token(step.seen_generation))
                else:
                    step = flow.send((yield step))

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        """Run :meth:`_flow`, getting tokens with :meth:`async_token`.

        :param request: the outgoing request.
        """
        flow = self._flow(request)
        with contextlib.suppress(StopIteration):
            step = next(flow)
            while True:
                if isinstance(step, _TokenWanted):
                    step = flow.send(await self.async_token(step.seen_generation))
                else:
                    step = flow.send((yield step))
