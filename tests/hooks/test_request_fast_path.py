"""The hook's per-request fast paths (issue 18, "Faster client") send what httpx would have sent."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from airflow_provider_hubcomm.hooks.hubcomm import HubCommHook
from tests.hooks.conftest import BASE, Recorder, ok_status, set_conn


@pytest.mark.usefixtures("private_conn")
def test_cookies_set_by_an_answer_are_sent_back() -> None:
    def answer(request: httpx.Request, n: int) -> httpx.Response:
        response = ok_status()
        if n == 1:
            response.headers["Set-Cookie"] = "__cf_bm=abc123; Path=/"
        return response

    rec = Recorder(answer)
    hook = HubCommHook(transport=httpx.MockTransport(rec))
    for _ in range(3):
        hook.get_statuses("a@b.co")
    assert "cookie" not in rec.requests[0].headers
    assert rec.requests[1].headers["cookie"] == rec.requests[2].headers["cookie"] == "__cf_bm=abc123"


@pytest.mark.usefixtures("private_conn")
def test_async_cookies_are_sent_back_too() -> None:
    def answer(request: httpx.Request, n: int) -> httpx.Response:
        response = ok_status()
        if n == 1:
            response.headers["Set-Cookie"] = "__cf_bm=xyz; Path=/"
        return response

    rec = Recorder(answer)
    hook = HubCommHook(async_transport=httpx.MockTransport(rec))

    async def twice() -> None:
        await hook.aget_statuses("a@b.co")
        await hook.aget_statuses("a@b.co")
        await hook.aclose()

    asyncio.run(twice())
    assert rec.requests[1].headers["cookie"] == "__cf_bm=xyz"


@pytest.mark.parametrize("host", [BASE, f"{BASE}/prefix", f"{BASE}/prefix/"])
def test_request_urls_are_joined_as_httpx_joins_them(monkeypatch: pytest.MonkeyPatch, host: str) -> None:
    set_conn(monkeypatch, host=host, password="pat-na1-unit-test-secret-0001")
    rec = Recorder(lambda r, n: ok_status())
    hook = HubCommHook(transport=httpx.MockTransport(rec))
    hook.get_statuses("odd/user?x@b.co")
    hook.get_statuses("odd/user?x@b.co")
    expected = httpx.Client(base_url=host).build_request(
        "GET", "/communication-preferences/2026-03/statuses/odd%2Fuser%3Fx%40b.co", params={"channel": "EMAIL"}
    )
    assert [str(r.url) for r in rec.requests] == [str(expected.url)] * 2
