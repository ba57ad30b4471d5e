"""OAuth expiry with requests in flight: stale-token resends, one shared refresh, bounded resends (issue 17.1)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable

import httpx
import pytest

from airflow_provider_hubcomm.auth import MAX_STALE_RESENDS, OAuthRefreshAuth
from airflow_provider_hubcomm.exceptions import HubCommAuthError
from airflow_provider_hubcomm.hooks.hubcomm import HubCommHook
from tests.hooks.conftest import REFRESH_TOKEN, ok_status

TOKEN_PATH = "/oauth/v3/token"
Gate = Callable[[httpx.Request], None]


class TokenServer:
    """A HubSpot stand-in with one *current* access token: any other token gets ``401 EXPIRED_AUTHENTICATION``.

    ``expire()`` kills the current token (as a forced expiry does); the token endpoint issues ``tok-N``.
    ``gate`` is called with every API request before it is judged (tests block and reorder requests there).
    """

    def __init__(self) -> None:
        self.current: str | None = None
        self.issued = 0
        self.api_requests: list[tuple[str, str | None]] = []
        self.gate: Gate | None = None
        self.lock = threading.Lock()

    def expire(self) -> None:
        with self.lock:
            self.current = None

    def _token(self) -> httpx.Response:
        with self.lock:
            self.issued += 1
            self.current = f"tok-{self.issued}"
            body = {"access_token": self.current, "refresh_token": REFRESH_TOKEN, "expires_in": 1800}
        return httpx.Response(200, json=body)

    def _judge(self, request: httpx.Request) -> httpx.Response:
        sent = request.headers.get("authorization", "").removeprefix("Bearer ")
        with self.lock:
            self.api_requests.append((request.url.path, sent))
            valid = self.current is not None and sent == self.current
        if not valid:
            return httpx.Response(401, json={"category": "EXPIRED_AUTHENTICATION", "message": "expired"})
        return ok_status()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == TOKEN_PATH:
            return self._token()
        if self.gate is not None:
            self.gate(request)
        return self._judge(request)


def oauth_hook(server: TokenServer | Callable[[httpx.Request], Awaitable[httpx.Response]]) -> HubCommHook:
    transport = httpx.MockTransport(server)  # type: ignore[arg-type]
    hook = HubCommHook(transport=transport, async_transport=transport, max_retries=0)
    hook.prepare()
    return hook


@pytest.mark.usefixtures("oauth_conn")
class TestStaleTokenResend:
    def test_401_on_replaced_token_then_expired_current_token_refreshes_once_more(self) -> None:
        """The fault-suite abort: A's token was replaced while A was in flight, then the replacement expired too.

        Before the fix A resent with the replacement, got a second 401 and failed the run. Now the second 401
        is on the current token, so A refreshes (one shared refresh) and succeeds.
        """
        server = TokenServer()
        hook = oauth_hook(server)
        hook.get_statuses("warm@x.co")  # tok-1
        a_inside, b_done = threading.Event(), threading.Event()

        def gate(request: httpx.Request) -> None:
            if "a%40x.co" in request.url.raw_path.decode() and not a_inside.is_set():
                a_inside.set()
                assert b_done.wait(5)

        server.gate = gate
        outcome: list[object] = []
        a = threading.Thread(target=lambda: outcome.append(_run(lambda: hook.get_statuses("a@x.co"))))
        a.start()
        assert a_inside.wait(5)
        server.expire()  # tok-1 dies while A is in flight
        hook.get_statuses("b@x.co")  # B: 401 on tok-1 -> refresh -> tok-2
        server.expire()  # forced expiry of tok-2
        b_done.set()
        a.join(5)
        assert not isinstance(outcome[0], Exception), outcome[0]
        a_tokens = [tok for path, tok in server.api_requests if "a%40x.co" in path or "a@x.co" in path]
        assert a_tokens == ["tok-1", "tok-2", "tok-3"]  # stale resend, then one refresh
        assert server.issued == 3
        assert hook.counters()["token_requests"] == 3

    def test_token_refreshed_for_this_request_then_replaced_is_stale_not_final(self) -> None:
        """A refreshed for its own 401; while its resend was in flight, B replaced that token too.

        A's second 401 is on a token that is no longer the current one: a stale-token resend (with B's token),
        not an authentication failure. Before the fix "refreshed for this request" was judged first and A failed
        (the fault suite's ``oauth_expiry`` abort on a loaded machine, "expired 0 second(s) ago").
        """
        server = TokenServer()
        hook = oauth_hook(server)
        hook.get_statuses("warm@x.co")  # tok-1
        resend_inside, b_done = threading.Event(), threading.Event()

        def gate(request: httpx.Request) -> None:
            is_a = "a%40x.co" in request.url.raw_path.decode()
            if is_a and request.headers["authorization"] == "Bearer tok-2" and not resend_inside.is_set():
                resend_inside.set()
                assert b_done.wait(5)

        server.gate = gate
        server.expire()  # tok-1 dies: A's first send gets a 401 and A refreshes to tok-2
        outcome: list[object] = []
        a = threading.Thread(target=lambda: outcome.append(_run(lambda: hook.get_statuses("a@x.co"))))
        a.start()
        assert resend_inside.wait(5)
        server.expire()  # tok-2 dies while A's resend with it is in flight
        hook.get_statuses("b@x.co")  # B: 401 on tok-2 -> refresh -> tok-3
        b_done.set()
        a.join(5)
        assert not isinstance(outcome[0], Exception), outcome[0]
        a_tokens = [tok for path, tok in server.api_requests if "a%40x.co" in path or "a@x.co" in path]
        assert a_tokens == ["tok-1", "tok-2", "tok-3"]  # refresh, then a stale resend with B's token
        assert server.issued == 3

    def test_many_requests_in_flight_share_one_refresh(self) -> None:
        server = TokenServer()
        hook = oauth_hook(server)
        hook.get_statuses("warm@x.co")
        n = 8
        barrier = threading.Barrier(n, action=server.expire, timeout=5)
        first = threading.local()

        def gate(request: httpx.Request) -> None:
            if not getattr(first, "seen", False):
                first.seen = True
                barrier.wait()  # all n requests are in flight with tok-1 when it expires

        server.gate = gate
        errors: list[BaseException] = []
        threads = [
            threading.Thread(target=lambda i=i: _collect(errors, lambda: hook.get_statuses(f"s{i}@x.co")))
            for i in range(n)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
        assert errors == []
        assert server.issued == 2  # the warm-up token and ONE refresh for n concurrent 401s
        assert hook.counters()["http_200"] == n + 1

    def test_stale_resends_are_bounded(self) -> None:
        """A token replaced under every request: at most MAX_STALE_RESENDS resends, then a clean auth error."""
        server = TokenServer()
        hook = oauth_hook(server)
        hook.get_statuses("warm@x.co")
        auth = hook.auth
        assert isinstance(auth, OAuthRefreshAuth)

        def gate(request: httpx.Request) -> None:
            auth.sync_token(seen_generation=auth.generation)  # "another request" refreshes meanwhile

        server.gate = gate
        before = len(server.api_requests)
        with pytest.raises(HubCommAuthError, match="HTTP 401"):
            hook.get_statuses("a@x.co")
        assert len(server.api_requests) - before == 1 + MAX_STALE_RESENDS

    def test_401_on_token_refreshed_for_this_request_is_final(self) -> None:
        server = TokenServer()
        hook = oauth_hook(server)
        hook.get_statuses("warm@x.co")
        server.gate = lambda request: server.expire()  # every token dies at once: a revoked app
        with pytest.raises(HubCommAuthError, match="EXPIRED_AUTHENTICATION"):
            hook.get_statuses("a@x.co")
        assert server.issued == 2  # one refresh, no loop
        assert [tok for _, tok in server.api_requests[1:]] == ["tok-1", "tok-2"]


@pytest.mark.usefixtures("oauth_conn")
class TestStaleTokenResendAsync:
    async def test_async_stale_then_expired_current_token(self) -> None:
        server = TokenServer()
        a_inside, b_done = asyncio.Event(), asyncio.Event()

        async def handler(request: httpx.Request) -> httpx.Response:
            if "a%40x.co" in request.url.raw_path.decode() and not a_inside.is_set():
                a_inside.set()
                await asyncio.wait_for(b_done.wait(), 5)
            return server(request)

        hook = oauth_hook(handler)
        await hook.aget_statuses("warm@x.co")
        task = asyncio.create_task(hook.aget_statuses("a@x.co"))
        await asyncio.wait_for(a_inside.wait(), 5)
        server.expire()
        await hook.aget_statuses("b@x.co")
        server.expire()
        b_done.set()
        answer = await asyncio.wait_for(task, 5)
        await hook.aclose()
        assert answer.results
        assert server.issued == 3
        a_tokens = [tok for path, tok in server.api_requests if "a%40x.co" in path or "a@x.co" in path]
        assert a_tokens == ["tok-1", "tok-2", "tok-3"]

    async def test_async_concurrent_401s_share_one_refresh(self) -> None:
        server = TokenServer()
        n = 6
        arrived: list[str] = []
        armed = asyncio.Event()
        release = asyncio.Event()

        async def handler(request: httpx.Request) -> httpx.Response:
            in_flight = armed.is_set() and request.headers.get("authorization") == "Bearer tok-1"
            if in_flight and len(arrived) < n:
                arrived.append(request.url.path)
                if len(arrived) == n:
                    server.expire()
                    release.set()
                await asyncio.wait_for(release.wait(), 5)
            return server(request)

        hook = oauth_hook(handler)
        await hook.aget_statuses("warm@x.co")
        armed.set()
        answers = await asyncio.gather(*(hook.aget_statuses(f"s{i}@x.co") for i in range(n)))
        await hook.aclose()
        assert len(answers) == n
        assert server.issued == 2


def _run(fn: Callable[[], object]) -> object:
    try:
        return fn()
    except Exception as err:
        return err


def _collect(errors: list[BaseException], fn: Callable[[], object]) -> None:
    try:
        fn()
    except Exception as err:
        errors.append(err)
