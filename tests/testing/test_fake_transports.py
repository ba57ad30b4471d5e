"""The fake without a socket: a hook through ``fake.transport()`` and ``fake.async_transport()``.

Same application, state and faults as the served fake; the sync transport answers in the caller's thread, so
the fake's budgets must hold when many threads call at once.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from airflow_provider_hubcomm.exceptions import HubCommConnectionError
from airflow_provider_hubcomm.hooks.hubcomm import HubCommHook
from airflow_provider_hubcomm.models import StatusUpdate, StatusWrite
from airflow_provider_hubcomm.testing import FakeHubSpot
from airflow_provider_hubcomm.testing._fake import NO_SOCKET_URL

if TYPE_CHECKING:
    from collections.abc import Awaitable

API = "/communication-preferences/2026-03"
UNSUBSCRIBE = StatusUpdate(statusState="UNSUBSCRIBED", subscriptionId=101)


async def _no_wait(seconds: float) -> None:
    return None


def make_hook(
    monkeypatch: pytest.MonkeyPatch, fake: FakeHubSpot, auth: Any = "private_app", **extra: Any
) -> HubCommHook:
    """Return a hook whose sync and async clients both reach ``fake`` without a socket."""
    transport, async_transport = fake.transport(), fake.async_transport()
    monkeypatch.setenv("AIRFLOW_CONN_HUBCOMM_DEFAULT", fake.connection_json(auth=auth, **extra))
    return HubCommHook(
        transport=transport, async_transport=async_transport, retry_sleep=lambda s: None, retry_asleep=_no_wait
    )


def batch(*emails: str) -> list[StatusWrite]:
    return [StatusWrite(subscriberIdString=e, statusState="SUBSCRIBED", subscriptionId=102) for e in emails]


class TestSyncTransport:
    def test_set_then_read_a_status(self, monkeypatch: pytest.MonkeyPatch) -> None:
        fake = FakeHubSpot()
        hook = make_hook(monkeypatch, fake)
        written = hook.set_status("A@x.com", UNSUBSCRIBE)
        read = hook.get_statuses("a@x.com")
        assert written.results[0].status == "UNSUBSCRIBED"
        assert {s.subscription_id: s.status for s in read.results}[101] == "UNSUBSCRIBED"
        assert fake.status("a@x.com", 101)["status"] == "UNSUBSCRIBED"  # type: ignore[index]
        assert fake.counters["endpoint:statuses"] == 2
        assert not fake.running

    def test_batch_write_with_a_bad_input(self, monkeypatch: pytest.MonkeyPatch) -> None:
        fake = FakeHubSpot()
        hook = make_hook(monkeypatch, fake)
        inputs = [*batch("b@x.com", "c@x.com"), {**batch("d@x.com")[0].to_api(), "subscriptionId": 999}]
        answer = hook.batch_write(inputs)
        assert sorted(r.subscriber_id_string for r in answer.results) == ["b@x.com", "c@x.com"]
        assert answer.num_errors == 1
        assert fake.snapshot() == {("b@x.com", 102): "SUBSCRIBED", ("c@x.com", 102): "SUBSCRIBED"}

    def test_oauth_flow_and_refresh_after_expiry(self, monkeypatch: pytest.MonkeyPatch) -> None:
        fake = FakeHubSpot()
        hook = make_hook(monkeypatch, fake, auth="oauth")
        hook.set_status("o@x.com", UNSUBSCRIBE)
        assert fake.counters["token_issued"] == 1
        fake.expire_all_access_tokens()
        hook.get_statuses("o@x.com")  # 401 EXPIRED_AUTHENTICATION, one refresh, resent
        assert fake.counters["token_issued"] == 2
        assert fake.counters["unauthorized"] == 1
        assert fake.status("o@x.com", 101)["status"] == "UNSUBSCRIBED"  # type: ignore[index]

    def test_drop_is_no_answer_the_hook_retries(self, monkeypatch: pytest.MonkeyPatch) -> None:
        fake = FakeHubSpot(drop_after_write_rate=1.0)
        hook = make_hook(monkeypatch, fake, max_retries=2)
        with pytest.raises(HubCommConnectionError, match="RemoteProtocolError"):
            hook.set_status("d@x.com", UNSUBSCRIBE)
        assert fake.counters["dropped_after_write"] == 3  # the first try and two retries, each applied
        assert fake.snapshot() == {("d@x.com", 101): "UNSUBSCRIBED"}
        with httpx.Client(transport=fake.transport(), base_url=fake.url) as raw:
            headers = {"Authorization": f"Bearer {fake.token}"}
            with pytest.raises(httpx.RemoteProtocolError):
                raw.post(f"{API}/statuses/e%40x.com", json=UNSUBSCRIBE.to_api(), headers=headers)
            assert raw.get(f"{API}/definitions", headers=headers).status_code == 200  # reads are never dropped

    def test_latency_sleeps_the_caller(self, monkeypatch: pytest.MonkeyPatch) -> None:
        hook = make_hook(monkeypatch, FakeHubSpot(latency=0.2))
        started = time.monotonic()
        hook.get_definitions()
        assert time.monotonic() - started >= 0.2

    def test_dripped_body_arrives_whole(self, monkeypatch: pytest.MonkeyPatch) -> None:
        fake = FakeHubSpot(drip_interval=0.0005)
        hook = make_hook(monkeypatch, fake)
        assert [d.id for d in hook.get_definitions().results] == ["101", "102", "103"]

    def test_threads_share_one_window_budget(self) -> None:
        """Eight threads race for 25 slots: exactly 25 answers pass, as on a served fake."""
        fake = FakeHubSpot(requests_per_window=25, window_seconds=60.0, daily_limit=30)
        statuses: Counter[int] = Counter()
        lock = threading.Lock()
        start = threading.Barrier(8)

        def work() -> None:
            headers = {"Authorization": f"Bearer {fake.token}"}
            with httpx.Client(transport=fake.transport(), base_url=fake.url, headers=headers) as client:
                start.wait()
                codes = [client.get(f"{API}/definitions").status_code for _ in range(10)]
            with lock:
                statuses.update(codes)

        threads = [threading.Thread(target=work) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert statuses == {200: 25, 429: 55}
        assert fake.counters["ok"] == 25
        fake.configure(requests_per_window=None)
        with httpx.Client(transport=fake.transport(), base_url=fake.url) as client:
            answer = client.get(f"{API}/definitions", headers={"Authorization": f"Bearer {fake.token}"})
        assert answer.headers["X-HubSpot-RateLimit-Daily-Remaining"] == "4"  # 26 of 30 spent: 429s cost nothing


class TestAsyncTransport:
    async def test_set_then_read_a_status(self, monkeypatch: pytest.MonkeyPatch) -> None:
        fake = FakeHubSpot()
        hook = make_hook(monkeypatch, fake)
        await hook.aset_status("A@x.com", UNSUBSCRIBE)
        read = await hook.aget_statuses("a@x.com")
        assert {s.subscription_id: s.status for s in read.results}[101] == "UNSUBSCRIBED"
        assert fake.counters["endpoint:statuses"] == 2

    async def test_oauth_flow(self, monkeypatch: pytest.MonkeyPatch) -> None:
        fake = FakeHubSpot()
        hook = make_hook(monkeypatch, fake, auth="oauth")
        await hook.aset_status("o@x.com", UNSUBSCRIBE)
        fake.expire_all_access_tokens()
        await hook.aget_statuses("o@x.com")
        assert fake.counters["token_issued"] == 2
        assert fake.status("o@x.com", 101)["status"] == "UNSUBSCRIBED"  # type: ignore[index]

    async def test_drop_is_no_answer_the_hook_retries(self, monkeypatch: pytest.MonkeyPatch) -> None:
        fake = FakeHubSpot(drop_after_write_rate=1.0)
        hook = make_hook(monkeypatch, fake, max_retries=1)
        with pytest.raises(HubCommConnectionError, match="RemoteProtocolError"):
            await hook.aset_status("d@x.com", UNSUBSCRIBE)
        assert fake.counters["dropped_after_write"] == 2
        assert fake.snapshot() == {("d@x.com", 101): "UNSUBSCRIBED"}

    async def test_latency_waits_on_the_loop_without_blocking_it(self, monkeypatch: pytest.MonkeyPatch) -> None:
        hook = make_hook(monkeypatch, FakeHubSpot(latency=0.3))
        order: list[str] = []

        async def note(name: str, step: Awaitable[Any]) -> None:
            await step
            order.append(name)

        started = time.monotonic()
        await asyncio.gather(note("answer", hook.aget_definitions()), note("tick", asyncio.sleep(0.01)))
        assert order == ["tick", "answer"]  # a blocking sleep would have held the tick back
        assert time.monotonic() - started >= 0.3

    async def test_dripped_body_arrives_whole(self, monkeypatch: pytest.MonkeyPatch) -> None:
        hook = make_hook(monkeypatch, FakeHubSpot(drip_interval=0.0005))
        assert [d.id for d in (await hook.aget_definitions()).results] == ["101", "102", "103"]


class TestUrl:
    def test_no_socket_url_only_once_a_transport_is_handed_out(self) -> None:
        fake = FakeHubSpot()
        with pytest.raises(RuntimeError, match="not started"):
            _ = fake.url
        fake.transport()
        assert fake.url == NO_SOCKET_URL
        with fake:
            assert fake.url == f"http://127.0.0.1:{fake.port}"
