"""Rate limiting, injected faults, batch modes and seeded reproducibility of the fake."""

from __future__ import annotations

import logging
import time
from typing import Any

import httpx
import pytest

from airflow_provider_hubcomm.testing import FakeHubSpot

API = "/communication-preferences/2026-03"
WRITE = {"channel": "EMAIL", "statusState": "UNSUBSCRIBED", "subscriptionId": 101}


def client(fake: FakeHubSpot, timeout: float = 5.0) -> httpx.Client:
    return httpx.Client(base_url=fake.url, headers={"Authorization": f"Bearer {fake.token}"}, timeout=timeout)


def batch(*emails: str, status: str = "SUBSCRIBED") -> dict[str, Any]:
    return {"inputs": [{**WRITE, "statusState": status, "subscriberIdString": e} for e in emails]}


class TestRateLimit:
    def test_budget_headers_and_retry_after(self, hubcomm_fake_factory: Any) -> None:
        fake = hubcomm_fake_factory(requests_per_window=3, window_seconds=10.0)
        with client(fake) as api:
            answers = [api.get(f"{API}/definitions") for _ in range(3)]
            assert [r.status_code for r in answers] == [200, 200, 200]
            assert [r.headers["X-HubSpot-RateLimit-Remaining"] for r in answers] == ["2", "1", "0"]
            assert answers[0].headers["X-HubSpot-RateLimit-Max"] == "3"
            assert answers[0].headers["X-HubSpot-RateLimit-Interval-Milliseconds"] == "10000"
            limited = api.get(f"{API}/definitions")
            assert limited.status_code == 429
            assert limited.headers["Retry-After"] == "10"
            assert limited.headers["X-HubSpot-RateLimit-Remaining"] == "0"
            body = limited.json()
            assert body["errorType"] == "RATE_LIMIT"
            assert body["policyName"] == "TEN_SECONDLY_ROLLING"
            assert body["message"] == "You have reached your ten_secondly_rolling limit."
            assert body["correlationId"]
        assert fake.counters["rate_limited"] == 1

    def test_rejected_requests_do_not_consume_budget(self, hubcomm_fake_factory: Any) -> None:
        fake = hubcomm_fake_factory(requests_per_window=2, window_seconds=0.4)
        with client(fake) as api:
            assert [api.get(f"{API}/definitions").status_code for _ in range(6)] == [200, 200, 429, 429, 429, 429]
            time.sleep(0.45)
            assert [api.get(f"{API}/definitions").status_code for _ in range(3)] == [200, 200, 429]

    def test_retry_after_can_be_switched_off(self, hubcomm_fake_factory: Any) -> None:
        fake = hubcomm_fake_factory(requests_per_window=1, send_retry_after=False)
        with client(fake) as api:
            api.get(f"{API}/definitions")
            limited = api.get(f"{API}/definitions")
        assert limited.status_code == 429
        assert "Retry-After" not in limited.headers

    def test_oauth_client_has_its_own_budget(self, hubcomm_fake_factory: Any) -> None:
        fake = hubcomm_fake_factory(requests_per_window=1)
        form = {"grant_type": "refresh_token", **fake.oauth_client}
        access = httpx.post(f"{fake.url}/oauth/v3/token", data=form).json()["access_token"]
        with client(fake) as api:
            assert api.get(f"{API}/definitions").status_code == 200
            assert api.get(f"{API}/definitions").status_code == 429
            oauth = api.get(f"{API}/definitions", headers={"Authorization": f"Bearer {access}"})
        assert oauth.status_code == 200

    def test_no_headers_without_a_limit(self, hubcomm_fake: FakeHubSpot) -> None:
        with client(hubcomm_fake) as api:
            assert "X-HubSpot-RateLimit-Max" not in api.get(f"{API}/definitions").headers


class TestInjectedFaults:
    def test_5xx_applies_nothing(self, hubcomm_fake_factory: Any) -> None:
        fake = hubcomm_fake_factory(error_rate_5xx=1.0)
        with client(fake) as api:
            resp = api.post(f"{API}/statuses/a%40x.com", json=WRITE)
        assert resp.status_code in {500, 502, 503, 504}
        assert resp.json()["correlationId"]
        assert fake.snapshot() == {}
        assert fake.counters["injected_5xx"] == 1

    def test_spurious_429_storm(self, hubcomm_fake_factory: Any) -> None:
        fake = hubcomm_fake_factory(error_rate_429=1.0, requests_per_window=50)
        with client(fake) as api:
            resp = api.get(f"{API}/definitions")
        assert resp.status_code == 429
        assert resp.json()["policyName"] == "TEN_SECONDLY_ROLLING"
        assert resp.headers["Retry-After"] == "1"
        assert resp.headers["X-HubSpot-RateLimit-Remaining"] == "50"  # under budget, and nothing consumed
        assert fake.counters["injected_429"] == 1

    def test_drop_after_write_applies_the_write(
        self, hubcomm_fake_factory: Any, caplog: pytest.LogCaptureFixture
    ) -> None:
        fake = hubcomm_fake_factory(drop_after_write_rate=1.0)
        with client(fake) as api:
            assert api.get(f"{API}/definitions").status_code == 200  # reads are never dropped
            # The retry policy counts RemoteProtocolError as "no answer" (provider's retry.py).
            with pytest.raises(httpx.RemoteProtocolError):
                api.post(f"{API}/statuses/a%40x.com", json=WRITE)
            with pytest.raises(httpx.RemoteProtocolError):
                api.post(f"{API}/statuses/batch/write", json=batch("b@x.com"))
            fake.configure(drop_after_write_rate=0.0)
            statuses = api.get(f"{API}/statuses/a%40x.com?channel=EMAIL").json()["results"]
        assert statuses[0]["status"] == "UNSUBSCRIBED"
        assert fake.snapshot() == {("a@x.com", 101): "UNSUBSCRIBED", ("b@x.com", 101): "SUBSCRIBED"}
        assert fake.counters["dropped_after_write"] == 2
        assert [e["status"] for e in fake.request_log] == [200, None, None, 200]
        # uvicorn's "Exception in ASGI application" record of each deliberate drop is filtered out
        assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []

    def test_latency_and_spikes(self, caplog: pytest.LogCaptureFixture) -> None:
        fake = FakeHubSpot(latency=0.15).start()
        try:
            with client(fake) as api:
                start = time.monotonic()
                assert api.get(f"{API}/definitions").status_code == 200
                assert time.monotonic() - start >= 0.15
                fake.configure(latency=0.0, latency_spike_rate=1.0, latency_spike_seconds=2.0)
                with pytest.raises(httpx.ReadTimeout):
                    api.get(f"{API}/definitions", timeout=0.2)
        finally:
            fake.stop()  # with the spiked answer still pending: cancelled, quietly
        assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
        assert fake.counters["requests"] == 1  # the cancelled answer never ran its handler
        assert fake.counters["latency_spikes"] == 1  # but the spike is counted: it was decided on arrival

    def test_faults_reach_token_endpoint_only_when_asked(self, hubcomm_fake_factory: Any) -> None:
        fake = hubcomm_fake_factory(error_rate_5xx=1.0)
        form = {"grant_type": "refresh_token", **fake.oauth_client}
        assert httpx.post(f"{fake.url}/oauth/v3/token", data=form).status_code == 200
        fake.configure(fault_token_endpoint=True)
        assert httpx.post(f"{fake.url}/oauth/v3/token", data=form).status_code >= 500


def fault_sequence(fake: FakeHubSpot, n: int) -> list[int]:
    with client(fake) as api:
        return [api.post(f"{API}/statuses/u{i}%40x.com", json=WRITE).status_code for i in range(n)]


class TestReproducibility:
    KNOBS: dict[str, Any] = {"error_rate_5xx": 0.25, "error_rate_429": 0.2}

    def test_same_seed_same_faults(self, hubcomm_fake_factory: Any) -> None:
        first = fault_sequence(hubcomm_fake_factory(seed=42, **self.KNOBS), 40)
        second = fault_sequence(hubcomm_fake_factory(seed=42, **self.KNOBS), 40)
        other = fault_sequence(hubcomm_fake_factory(seed=43, **self.KNOBS), 40)
        assert first == second
        assert first != other
        assert {200, 429} <= set(first)
        assert set(first) & {500, 502, 503, 504}

    def test_configure_seed_restarts_the_sequence(self, hubcomm_fake_factory: Any) -> None:
        fake = hubcomm_fake_factory(seed=5, **self.KNOBS)
        first = fault_sequence(fake, 20)
        fake.configure(seed=5)
        assert fault_sequence(fake, 20) == first


class TestBatchModes:
    def test_delayed_batch_becomes_visible_later(self, hubcomm_fake_factory: Any) -> None:
        fake = hubcomm_fake_factory(batch_mode="delayed", batch_delay=0.3)
        with client(fake) as api:
            resp = api.post(f"{API}/statuses/batch/write", json=batch("a@x.com", "b@x.com"))
            assert resp.status_code == 200
            body = resp.json()
            assert body["status"] == "PENDING"
            assert body["requestedAt"]
            assert body["startedAt"]
            assert body["completedAt"]  # required by the spec, even while PENDING
            assert body["results"] == []  # HubSpot never promised to echo what it has not processed
            before = api.get(f"{API}/statuses/a%40x.com?channel=EMAIL").json()["results"][0]["status"]
            assert before == "NOT_SPECIFIED"
            assert fake.snapshot() == {}
            time.sleep(0.35)
            after = api.get(f"{API}/statuses/a%40x.com?channel=EMAIL").json()["results"][0]["status"]
        assert after == "SUBSCRIBED"
        assert fake.snapshot() == {("a@x.com", 101): "SUBSCRIBED", ("b@x.com", 101): "SUBSCRIBED"}

    def test_delayed_batch_released_by_reads_not_by_time(self, hubcomm_fake_factory: Any) -> None:
        fake = hubcomm_fake_factory(batch_mode="delayed", batch_delay=3600, batch_release_after_reads=2)

        def read(api: httpx.Client) -> str:
            return str(api.get(f"{API}/statuses/a%40x.com?channel=EMAIL").json()["results"][0]["status"])

        with client(fake) as api:
            assert read(api) == "NOT_SPECIFIED"  # no batch pending yet: this read does not count
            assert api.post(f"{API}/statuses/batch/write", json=batch("a@x.com")).json()["status"] == "PENDING"
            assert api.post(f"{API}/definitions", json={}).status_code == 405  # not a status read
            first, second, third = read(api), read(api), read(api)
        # The second read is answered with the pending state, then the batch is released.
        assert (first, second, third) == ("NOT_SPECIFIED", "NOT_SPECIFIED", "SUBSCRIBED")
        assert fake.snapshot() == {("a@x.com", 101): "SUBSCRIBED"}

    def test_canceled_batch_is_never_applied(self, hubcomm_fake_factory: Any) -> None:
        fake = hubcomm_fake_factory(batch_mode="cancel")
        with client(fake) as api:
            body = api.post(f"{API}/statuses/batch/write", json=batch("a@x.com")).json()
            assert body["status"] == "CANCELED"
            assert body["results"] == []
            fake.configure(cancel_rate=0.0)
            assert api.post(f"{API}/statuses/batch/write", json=batch("c@x.com")).json()["status"] == "COMPLETE"
        assert fake.snapshot() == {("c@x.com", 101): "SUBSCRIBED"}
        assert fake.counters["canceled"] == 1


class TestConfigure:
    def test_rejects_identity_and_unknown_knobs(self, hubcomm_fake: FakeHubSpot) -> None:
        with pytest.raises(ValueError, match="cannot change port"):
            hubcomm_fake.configure(port=1234)
        with pytest.raises(ValueError, match="probability"):
            hubcomm_fake.configure(error_rate_5xx=2.0)
        with pytest.raises(ValueError, match="cannot change"):
            hubcomm_fake.configure(nonsense=1)

    def test_constructor_validates(self) -> None:
        from airflow_provider_hubcomm.testing import FakeHubSpot

        with pytest.raises(ValueError, match="batch_mode"):
            FakeHubSpot(batch_mode="later")
        with pytest.raises(TypeError, match="unknown FakeHubSpot knob"):
            FakeHubSpot(latencyy=1.0)


def test_requested_at_is_arrival_time(hubcomm_fake_factory: Any) -> None:
    fake = hubcomm_fake_factory(latency=0.05)
    with client(fake) as api:
        body = api.get(f"{API}/definitions").json()
    assert body["requestedAt"] < body["startedAt"] <= body["completedAt"]
