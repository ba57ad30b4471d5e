from __future__ import annotations

import asyncio
import json
import logging
import threading
import time

import httpx
import pytest

from airflow_provider_hubcomm.exceptions import (
    HubCommAuthError,
    HubCommConfigError,
    HubCommConnectionError,
    HubCommNotFoundError,
    HubCommRateLimitError,
    HubCommRequestRejectedError,
    HubCommResponseValidationError,
    HubCommServerError,
    HubCommValidationError,
)
from airflow_provider_hubcomm.hooks.hubcomm import USER_AGENT, HubCommHook
from airflow_provider_hubcomm.models import StatusUpdate, StatusWrite
from tests.hooks.conftest import BASE, CLIENT_SECRET, OAUTH_EXTRA, REFRESH_TOKEN, TOKEN, Recorder, ok_status, set_conn

UPDATE = StatusUpdate(statusState="UNSUBSCRIBED", subscriptionId=101)


class FakeClock(list):  # type: ignore[type-arg]
    """Records sleeps and advances a fake monotonic clock by them (shared by retry policy and limiter)."""

    now = 1000.0

    def sleep(self, seconds: float) -> None:
        self.append(seconds)
        self.now += seconds

    def clock(self) -> float:
        return self.now


def make_hook(recorder: Recorder, slept: list[float] | None = None, **kwargs: object) -> HubCommHook:
    sink = slept if isinstance(slept, FakeClock) else FakeClock()
    if slept is not None and not isinstance(slept, FakeClock):
        raise TypeError("pass a FakeClock")

    async def asleep(seconds: float) -> None:
        sink.sleep(seconds)

    hook = HubCommHook(
        transport=httpx.MockTransport(recorder),
        async_transport=httpx.MockTransport(recorder),
        retry_sleep=sink.sleep,
        retry_asleep=asleep,
        **kwargs,  # type: ignore[arg-type]
    )
    hook.rate_limiter._clock = sink.clock
    return hook


def token_answer(access: str = "access-1", expires_in: int = 1800) -> httpx.Response:
    body = {"access_token": access, "refresh_token": REFRESH_TOKEN, "expires_in": expires_in, "token_type": "bearer"}
    return httpx.Response(200, json=body)


class TestConnectionConfig:
    def test_json_env_connection(self, monkeypatch: pytest.MonkeyPatch) -> None:
        set_conn(monkeypatch, password=TOKEN, extra={"timeout": "12.5", "max_retries": 2, "requests_per_10s": 190})
        config = HubCommHook().config
        assert config.base_url == BASE
        assert config.auth_type == "private_app"
        assert (config.timeout, config.max_retries, config.requests_per_10s) == (12.5, 2, 190)
        assert config.token_url == f"{BASE}/oauth/v3/token"

    def test_uri_env_connection_with_full_url_host(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv(
            "AIRFLOW_CONN_HUBCOMM_URI",
            f"hubcomm://:{TOKEN}@http%3A%2F%2F127.0.0.1%3A8080/?business_unit_id=7",
        )
        config = HubCommHook("hubcomm_uri").config
        assert config.base_url == "http://127.0.0.1:8080"
        assert config.access_token == TOKEN
        assert config.business_unit_id == 7

    def test_uri_env_connection_plain_host_defaults_to_https(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("AIRFLOW_CONN_HUBCOMM_URI", f"hubcomm://:{TOKEN}@api.hubapi.com:8443")
        assert HubCommHook("hubcomm_uri").config.base_url == "https://api.hubapi.com:8443"

    def test_default_host_is_hubspot(self, monkeypatch: pytest.MonkeyPatch) -> None:
        set_conn(monkeypatch, host=None, password=TOKEN)
        assert HubCommHook().config.base_url == "https://api.hubapi.com"

    def test_missing_token_names_connection_and_field(self, monkeypatch: pytest.MonkeyPatch) -> None:
        set_conn(monkeypatch, conn_id="hub_x")
        with pytest.raises(HubCommConfigError, match=r"'hub_x'.*'password'"):
            HubCommHook("hub_x").config  # noqa: B018

    def test_oauth_missing_field(self, monkeypatch: pytest.MonkeyPatch) -> None:
        set_conn(monkeypatch, extra={"auth_type": "oauth", "client_id": "cid", "refresh_token": "r"})
        with pytest.raises(HubCommConfigError, match=r"'hubcomm_default'.*'client_secret'"):
            HubCommHook().config  # noqa: B018

    @pytest.mark.parametrize(
        ("extra", "field"),
        [
            ({"auth_type": "basic"}, "auth_type"),
            ({"timeout": "soon"}, "timeout"),
            ({"max_retries": -1}, "max_retries"),
            ({"requests_per_10s": 0}, "requests_per_10s"),
        ],
    )
    def test_bad_extra_values(self, monkeypatch: pytest.MonkeyPatch, extra: dict[str, object], field: str) -> None:
        set_conn(monkeypatch, password=TOKEN, extra=extra)
        with pytest.raises(HubCommConfigError, match=rf"'hubcomm_default'.*'{field}'"):
            HubCommHook().config  # noqa: B018

    def test_oauth_inferred_from_extras_and_custom_token_url(self, monkeypatch: pytest.MonkeyPatch) -> None:
        set_conn(
            monkeypatch,
            extra={"client_id": "c", "client_secret": "s", "refresh_token": "r", "token_url": "/oauth/v1/token"},
        )
        config = HubCommHook().config
        assert config.auth_type == "oauth"
        assert config.token_url == f"{BASE}/oauth/v1/token"

    def test_hook_arguments_override_connection(self, monkeypatch: pytest.MonkeyPatch) -> None:
        set_conn(monkeypatch, password=TOKEN, extra={"max_retries": 2})
        assert HubCommHook(max_retries=7).config.max_retries == 7


@pytest.mark.usefixtures("private_conn")
class TestPrivateApp:
    def test_headers_and_path(self) -> None:
        rec = Recorder(lambda r, n: ok_status())
        make_hook(rec).set_status("jane@example.com", UPDATE)
        (request,) = rec.requests
        assert request.headers["authorization"] == f"Bearer {TOKEN}"
        assert request.headers["user-agent"] == USER_AGENT
        assert request.url.raw_path == b"/communication-preferences/2026-03/statuses/jane%40example.com"
        assert json.loads(request.content) == {"channel": "EMAIL", "statusState": "UNSUBSCRIBED", "subscriptionId": 101}

    @pytest.mark.parametrize(
        ("subscriber", "segment"),
        [
            ("a/b@x.com", b"a%2Fb%40x.com"),
            ("../x@y.com", b"..%2Fx%40y.com"),
            ("x?y#z@q.com", b"x%3Fy%23z%40q.com"),
            ("p%2Fq@x.com", b"p%252Fq%40x.com"),
            ("jos\u00e9@x.com", b"jos%C3%A9%40x.com"),
            ("..", b"%2E%2E"),
            (".", b"%2E"),
        ],
    )
    def test_subscriber_is_one_encoded_segment(self, subscriber: str, segment: bytes) -> None:
        rec = Recorder(lambda r, n: ok_status())
        hook = make_hook(rec)
        hook.set_status(subscriber, UPDATE)
        hook.unsubscribe_all(subscriber)
        assert rec.requests[0].url.raw_path == b"/communication-preferences/2026-03/statuses/" + segment
        latest = b"/communication-preferences/2026-03/statuses/"
        assert rec.requests[1].url.raw_path.partition(b"?")[0] == latest + segment + b"/unsubscribe-all"
        assert all(r.url.query == b"" or b"channel=EMAIL" in r.url.query for r in rec.requests)

    def test_unsubscribe_all_query(self, monkeypatch: pytest.MonkeyPatch) -> None:
        set_conn(monkeypatch, password=TOKEN, extra={"business_unit_id": 3})
        rec = Recorder(lambda r, n: ok_status(setStatusSuccessReason="UNSUBSCRIBE_FROM_ALL_OCCURRED"))
        answer = make_hook(rec).unsubscribe_all("a@b.co", verbose=True)
        assert dict(rec.requests[0].url.params) == {"channel": "EMAIL", "businessUnitId": "3", "verbose": "true"}
        assert rec.requests[0].content == b""
        assert answer.results[0].set_status_success_reason == "UNSUBSCRIBE_FROM_ALL_OCCURRED"

    def test_batch_write_partial_207_is_returned_not_raised(self) -> None:
        body = {
            "status": "COMPLETE",
            "results": [{"subscriberIdString": "a@b.co", "subscriptionId": 101, "status": "SUBSCRIBED"}],
            "numErrors": 1,
            "errors": [
                {
                    "status": "400",
                    "category": "VALIDATION_ERROR",
                    "message": "bad",
                    "context": {"subscriberIdString": ["c@d.co"]},
                    "subCategory": {"x": 1},
                }
            ],
            "requestedAt": "2026-11-24T00:00:00.000Z",
            "startedAt": "2026-11-24T00:00:00.001Z",
            "completedAt": "2026-11-24T00:00:00.002Z",
        }
        rec = Recorder(lambda r, n: httpx.Response(207, json=body))
        writes = [
            StatusWrite(subscriberIdString="a@b.co", subscriptionId=101, statusState="subscribed"),
            {"subscriberIdString": "c@d.co", "subscriptionId": 101, "statusState": "SUBSCRIBED", "channel": "EMAIL"},
        ]
        answer = make_hook(rec).batch_write(writes)
        assert json.loads(rec.requests[0].content)["inputs"][0]["statusState"] == "SUBSCRIBED"
        assert answer.num_errors == 1
        assert answer.errors[0].context == {"subscriberIdString": ["c@d.co"]}
        assert answer.completed_at == "2026-11-24T00:00:00.002Z"

    def test_batch_read_and_definitions(self) -> None:
        def respond(request: httpx.Request, n: int) -> httpx.Response:
            if request.url.path.endswith("/definitions"):
                return httpx.Response(200, json={"status": "COMPLETE", "results": [{"id": "101", "name": "News"}]})
            results = [{"subscriberIdString": "a@b.co", "statuses": [{"subscriptionId": 101, "status": "SUBSCRIBED"}]}]
            return httpx.Response(200, json={"status": "COMPLETE", "results": results})

        rec = Recorder(respond)
        hook = make_hook(rec)
        read = hook.batch_read(["a@b.co"])
        assert read.results[0].statuses[0].status == "SUBSCRIBED"
        assert dict(rec.requests[0].url.params) == {"channel": "EMAIL"}
        assert json.loads(rec.requests[0].content) == {"inputs": ["a@b.co"]}
        assert hook.get_definitions().results[0].id == "101"

    def test_unknown_response_fields_do_not_break(self) -> None:
        rec = Recorder(
            lambda r, n: httpx.Response(200, json={"status": "SUCCESS", "results": [], "brandNew": {"x": 1}})
        )
        answer = make_hook(rec).get_statuses("a@b.co")
        assert answer.status == "SUCCESS"

    @pytest.mark.parametrize(
        ("content", "status"),
        [(b"<html>oops</html>", 200), (b'{"status": "COMPLETE", "results": [', 200), (b'{"results": 5}', 200)],
    )
    def test_malformed_success_body_is_typed(self, content: bytes, status: int) -> None:
        headers = {"x-hubspot-correlation-id": "corr-9"}
        rec = Recorder(lambda r, n: httpx.Response(status, content=content, headers=headers))
        with pytest.raises(HubCommResponseValidationError, match=r"correlationId=corr-9 HTTP 200"):
            make_hook(rec).get_statuses("a@b.co")

    @pytest.mark.parametrize(
        ("status", "cls"),
        [
            (400, HubCommRequestRejectedError),
            (401, HubCommAuthError),
            (403, HubCommAuthError),
            (404, HubCommNotFoundError),
            (409, HubCommRequestRejectedError),
        ],
    )
    def test_4xx_not_retried_and_typed(self, status: int, cls: type[Exception]) -> None:
        body = {"status": "error", "message": "nope", "correlationId": "c-1", "category": "VALIDATION_ERROR"}
        rec = Recorder(lambda r, n: httpx.Response(status, json=body))
        with pytest.raises(cls) as info:
            make_hook(rec).set_status("a@b.co", UPDATE)
        assert len(rec.requests) == 1
        text = str(info.value)
        assert text.startswith("correlationId=c-1")
        assert f"HTTP {status}" in text
        assert "category=VALIDATION_ERROR" in text
        assert "nope" in text
        assert TOKEN not in text
        assert TOKEN not in repr(info.value)


@pytest.mark.usefixtures("private_conn")
class TestRetryPolicy:
    @pytest.mark.parametrize("failures", [1, 3])
    @pytest.mark.parametrize("mode", ["status", "exception", "drop"])
    def test_recovers_after_failures(self, failures: int, mode: str) -> None:
        def respond(request: httpx.Request, n: int) -> httpx.Response | Exception:
            if n <= failures:
                if mode == "status":
                    return httpx.Response(503, json={"message": "down"})
                if mode == "exception":
                    return httpx.ConnectError("refused", request=request)
                return httpx.RemoteProtocolError("Server disconnected without sending a response.", request=request)
            return ok_status()

        rec = Recorder(respond)
        slept = FakeClock()
        hook = make_hook(rec, slept)
        assert hook.set_status("a@b.co", UPDATE).results[0].status == "SUBSCRIBED"
        assert len(rec.requests) == failures + 1
        assert hook.retry_policy.retries == failures
        assert len(slept) == failures
        assert all(0.3 <= s <= 30 for s in slept)

    def test_gives_up_after_max_retries_with_typed_error(self, monkeypatch: pytest.MonkeyPatch) -> None:
        set_conn(monkeypatch, password=TOKEN, extra={"max_retries": 2})
        body = {"message": "bad gateway", "correlationId": "c-5", "category": "INTERNAL_ERROR"}
        rec = Recorder(lambda r, n: httpx.Response(502, json=body))
        with pytest.raises(HubCommServerError, match=r"correlationId=c-5 HTTP 502"):
            make_hook(rec).set_status("a@b.co", UPDATE)
        assert len(rec.requests) == 3

    def test_connection_errors_exhausted(self, monkeypatch: pytest.MonkeyPatch) -> None:
        set_conn(monkeypatch, password=TOKEN, extra={"max_retries": 1})
        rec = Recorder(lambda r, n: httpx.ReadTimeout("slow", request=r))
        with pytest.raises(HubCommConnectionError, match=r"gave no usable answer \(retry budget 1\): ReadTimeout"):
            make_hook(rec).get_statuses("a@b.co")
        assert len(rec.requests) == 2

    def test_backoff_grows_and_is_capped(self) -> None:
        rec = Recorder(lambda r, n: httpx.Response(500) if n <= 5 else ok_status())
        slept = FakeClock()
        make_hook(rec, slept).set_status("a@b.co", UPDATE)
        # 0.5, 1, 2, 4, 8 scaled by jitter in [0.75, 1]
        for i, s in enumerate(slept):
            assert 0.5 * 2**i * 0.75 <= s <= 0.5 * 2**i

    @pytest.mark.parametrize(("header", "expected"), [("3", 3.0), ("0", 0.0), ("120", 60.0)])
    def test_429_honours_retry_after(self, header: str, expected: float) -> None:
        rec = Recorder(lambda r, n: httpx.Response(429, headers={"Retry-After": header}) if n == 1 else ok_status())
        slept = FakeClock()
        hook = make_hook(rec, slept)
        hook.set_status("a@b.co", UPDATE)
        assert slept == [expected]

    def test_429_without_retry_after_waits_the_window(self) -> None:
        headers = {"X-HubSpot-RateLimit-Interval-Milliseconds": "2000"}
        body = {"policyName": "TEN_SECONDLY_ROLLING", "errorType": "RATE_LIMIT"}
        rec = Recorder(lambda r, n: httpx.Response(429, json=body, headers=headers) if n == 1 else ok_status())
        slept = FakeClock()
        make_hook(rec, slept).set_status("a@b.co", UPDATE)
        assert len(slept) == 1
        assert 2.0 <= slept[0] <= 2.2

    def test_429_daily_is_not_retried(self) -> None:
        body = {"status": "error", "message": "You have reached your daily limit.", "policyName": "DAILY"}
        rec = Recorder(lambda r, n: httpx.Response(429, json=body))
        with pytest.raises(HubCommRateLimitError, match="policyName=DAILY"):
            make_hook(rec).set_status("a@b.co", UPDATE)
        assert len(rec.requests) == 1

    def test_retry_is_logged_without_secret(self, caplog: pytest.LogCaptureFixture) -> None:
        rec = Recorder(lambda r, n: httpx.Response(503) if n == 1 else ok_status())
        with caplog.at_level(logging.DEBUG):
            make_hook(rec).set_status("a@b.co", UPDATE)
        assert "retry 1/5" in caplog.text
        assert TOKEN not in caplog.text

    async def test_async_retries_share_the_policy(self) -> None:
        rec = Recorder(lambda r, n: httpx.Response(504) if n <= 2 else ok_status())
        slept = FakeClock()
        hook = make_hook(rec, slept)
        answer = await hook.aset_status("a@b.co", UPDATE)
        await hook.aclose()
        assert answer.results[0].subscription_id == 101
        assert len(rec.requests) == 3
        assert len(slept) == 2


class TestOAuth:
    @staticmethod
    def responder(api: dict[str, int] | None = None, expires_in: int = 1800, always_401: bool = False) -> Recorder:
        issued: list[str] = []

        def respond(request: httpx.Request, n: int) -> httpx.Response:
            if request.url.path == "/oauth/v3/token":
                issued.append(f"access-{len(issued) + 1}")
                return token_answer(issued[-1], expires_in)
            current = f"Bearer {issued[-1]}" if issued else None
            if always_401 or request.headers.get("authorization") != current:
                return httpx.Response(401, json={"message": "expired", "category": "EXPIRED_AUTHENTICATION"})
            return ok_status()

        return Recorder(respond)

    @pytest.mark.usefixtures("oauth_conn")
    def test_token_fetched_once_and_reused(self) -> None:
        rec = self.responder()
        hook = make_hook(rec)
        for _ in range(3):
            hook.set_status("a@b.co", UPDATE)
        token_requests = [r for r in rec.requests if r.url.path == "/oauth/v3/token"]
        assert len(token_requests) == 1
        form = dict(httpx.QueryParams(token_requests[0].content.decode()))
        assert form == {
            "grant_type": "refresh_token",
            "client_id": "cid",
            "client_secret": CLIENT_SECRET,
            "refresh_token": REFRESH_TOKEN,
        }
        assert "authorization" not in token_requests[0].headers
        assert token_requests[0].headers["content-type"] == "application/x-www-form-urlencoded"
        assert rec.requests[1].headers["authorization"] == "Bearer access-1"

    @pytest.mark.usefixtures("oauth_conn")
    def test_refreshes_before_expiry(self) -> None:
        rec = self.responder(expires_in=100)
        hook = make_hook(rec)
        now = [1000.0]
        hook.auth._clock = lambda: now[0]  # type: ignore[attr-defined]
        hook.set_status("a@b.co", UPDATE)
        now[0] += 75  # 25 s left of 100: inside the refresh margin (20 % / 30 s)
        hook.set_status("a@b.co", UPDATE)
        assert rec.paths().count("/oauth/v3/token") == 2
        assert rec.requests[-1].headers["authorization"] == "Bearer access-2"
        # no 401 was ever provoked: the refresh was proactive
        assert all(r.url.path == "/oauth/v3/token" or r.headers["authorization"] for r in rec.requests)
        assert hook.stats["http_401"] == 0

    @pytest.mark.usefixtures("oauth_conn")
    def test_single_refresh_on_401(self) -> None:
        rec = self.responder()
        hook = make_hook(rec)
        hook.set_status("a@b.co", UPDATE)
        hook.auth._access_token = "revoked-by-hubspot"  # type: ignore[attr-defined]
        hook.set_status("a@b.co", UPDATE)
        assert rec.paths().count("/oauth/v3/token") == 2
        api = [r for r in rec.requests if not r.url.path.startswith("/oauth")]
        assert [r.headers.get("authorization") for r in api[-2:]] == [
            "Bearer revoked-by-hubspot",
            "Bearer access-2",
        ]

    @pytest.mark.usefixtures("oauth_conn")
    def test_no_refresh_loop(self) -> None:
        rec = self.responder(always_401=True)
        with pytest.raises(HubCommAuthError, match="HTTP 401"):
            make_hook(rec).set_status("a@b.co", UPDATE)
        assert rec.paths().count("/oauth/v3/token") == 2
        assert len(rec.requests) == 4

    @pytest.mark.usefixtures("oauth_conn")
    def test_concurrent_requests_share_one_refresh(self) -> None:
        gate = threading.Event()
        base = self.responder()

        def slow(request: httpx.Request, n: int) -> httpx.Response | Exception:
            if request.url.path == "/oauth/v3/token":
                gate.wait(2)
                time.sleep(0.05)
            return base.responder(request, n)

        rec = Recorder(slow)
        hook = make_hook(rec)
        threads = [threading.Thread(target=hook.set_status, args=("a@b.co", UPDATE)) for _ in range(8)]
        for t in threads:
            t.start()
        gate.set()
        for t in threads:
            t.join(5)
        assert rec.paths().count("/oauth/v3/token") == 1
        assert hook.stats["http_200"] == 8

    @pytest.mark.usefixtures("oauth_conn")
    async def test_async_concurrent_requests_share_one_refresh(self) -> None:
        rec = self.responder()
        hook = make_hook(rec)
        await asyncio.gather(*(hook.aget_statuses("a@b.co") for _ in range(6)))
        await hook.aclose()
        assert rec.paths().count("/oauth/v3/token") == 1

    @pytest.mark.usefixtures("oauth_conn")
    def test_revoked_refresh_token_fails_clearly(self) -> None:
        body = {
            "status": "BAD_REFRESH_TOKEN",
            "message": "missing or unknown refresh token",
            "error": "invalid_grant",
            "correlationId": "c-77",
        }
        rec = Recorder(lambda r, n: httpx.Response(400, json=body))
        with pytest.raises(HubCommAuthError) as info:
            make_hook(rec).set_status("a@b.co", UPDATE)
        text = str(info.value)
        assert "OAuth refresh for connection 'hubcomm_default' failed" in text
        assert "c-77" in text
        assert len(rec.requests) == 1
        for secret in (CLIENT_SECRET, REFRESH_TOKEN):
            assert secret not in text
            assert secret not in repr(info.value)


class TestSecrets:
    def test_secrets_absent_from_reprs_logs_and_errors(
        self, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
    ) -> None:
        set_conn(monkeypatch, extra=OAUTH_EXTRA)

        def respond(request: httpx.Request, n: int) -> httpx.Response:
            if request.url.path == "/oauth/v3/token":
                return token_answer("access-secret-xyz")
            return httpx.Response(500, json={"message": "boom", "correlationId": "c"}) if n < 4 else ok_status()

        rec = Recorder(respond)
        with caplog.at_level(logging.DEBUG):
            hook = make_hook(rec)
            hook.set_status("a@b.co", UPDATE)
        texts = [caplog.text, repr(hook), repr(hook.config), repr(hook.auth), str(hook.stats)]
        for secret in (CLIENT_SECRET, REFRESH_TOKEN, "access-secret-xyz"):
            assert all(secret not in t for t in texts)

    def test_secrets_registered_with_airflow_masker(self, monkeypatch: pytest.MonkeyPatch) -> None:
        from airflow.sdk.log import redact

        set_conn(monkeypatch, extra=OAUTH_EXTRA)
        rec = Recorder(
            lambda r, n: token_answer("fresh-access-123") if r.url.path.startswith("/oauth") else ok_status()
        )
        make_hook(rec).set_status("a@b.co", UPDATE)
        line = f"x {CLIENT_SECRET} {REFRESH_TOKEN} fresh-access-123 y"
        assert redact(line) == "x *** *** *** y"


@pytest.mark.usefixtures("private_conn")
class TestTestConnection:
    def test_success(self) -> None:
        rec = Recorder(lambda r, n: httpx.Response(200, json={"status": "COMPLETE", "results": [{"id": "1"}]}))
        ok, message = make_hook(rec).test_connection()
        assert ok
        assert "1 subscription types" in message
        assert rec.requests[0].url.path == "/communication-preferences/2026-03/definitions"

    def test_failure_carries_hubspot_message(self) -> None:
        body = {
            "status": "error",
            "message": "Authentication credentials not found.",
            "correlationId": "c-3",
            "category": "INVALID_AUTHENTICATION",
        }
        rec = Recorder(lambda r, n: httpx.Response(401, json=body))
        ok, message = make_hook(rec).test_connection()
        assert not ok
        assert "Authentication credentials not found." in message
        assert "HTTP 401" in message
        assert TOKEN not in message


class TestRateLimiterIntegration:
    def test_learns_budget_from_headers(self, private_conn: None) -> None:
        headers = {
            "X-HubSpot-RateLimit-Max": "190",
            "X-HubSpot-RateLimit-Remaining": "189",
            "X-HubSpot-RateLimit-Interval-Milliseconds": "10000",
        }
        rec = Recorder(lambda r, n: httpx.Response(200, json={"status": "COMPLETE", "results": []}, headers=headers))
        hook = make_hook(rec)
        assert hook.rate_limiter.limit == 90
        hook.get_statuses("a@b.co")
        assert hook.rate_limiter.limit == 190

    def test_configured_budget_is_not_raised_by_headers(self, monkeypatch: pytest.MonkeyPatch) -> None:
        set_conn(monkeypatch, password=TOKEN, extra={"requests_per_10s": 50})
        headers = {"X-HubSpot-RateLimit-Max": "190", "X-HubSpot-RateLimit-Interval-Milliseconds": "10000"}
        rec = Recorder(lambda r, n: httpx.Response(200, json={"status": "COMPLETE", "results": []}, headers=headers))
        hook = make_hook(rec)
        hook.get_statuses("a@b.co")
        assert hook.rate_limiter.limit == 50


@pytest.mark.usefixtures("private_conn")
class TestResubscribeGuard:
    @staticmethod
    def answer(current: str) -> Recorder:
        def respond(request: httpx.Request, n: int) -> httpx.Response:
            if request.url.path.endswith("/definitions"):
                defs = [
                    {"id": "101", "name": "News", "isActive": True},
                    {"id": "102", "name": "Tips", "isActive": True},
                ]
                return httpx.Response(200, json={"results": defs})
            if request.url.path.endswith("/unsubscribe-all"):
                return httpx.Response(200, json={"status": "COMPLETE", "results": []})
            if request.method == "GET":
                statuses = [{"subscriptionId": 101, "status": current}, {"subscriptionId": 102, "status": "SUBSCRIBED"}]
                return httpx.Response(200, json={"status": "COMPLETE", "results": statuses})
            return ok_status()

        return Recorder(respond)

    def test_refuses_and_sends_nothing(self) -> None:
        rec = self.answer("UNSUBSCRIBED")
        subscribe = StatusUpdate(statusState="SUBSCRIBED", subscriptionId=101)
        with pytest.raises(HubCommValidationError, match="allow_resubscribe=True"):
            make_hook(rec).set_status("a@b.co", subscribe, allow_resubscribe=False)
        # definitions (catalog), then the statuses read; no write
        assert [r.method for r in rec.requests] == ["GET", "GET"]

    async def test_async_twin_refuses_too(self) -> None:
        rec = self.answer("UNSUBSCRIBED")
        subscribe = StatusUpdate(statusState="SUBSCRIBED", subscriptionId=101)
        hook = make_hook(rec)
        with pytest.raises(HubCommValidationError):
            await hook.aset_status("a@b.co", subscribe, allow_resubscribe=False)
        await hook.aclose()
        assert [r.method for r in rec.requests] == ["GET", "GET"]

    @pytest.mark.parametrize(
        ("current", "state", "allow"),
        [
            ("NOT_SPECIFIED", "SUBSCRIBED", False),
            ("UNSUBSCRIBED", "SUBSCRIBED", True),
            ("UNSUBSCRIBED", "UNSUBSCRIBED", False),
        ],
    )
    def test_writes_when_not_a_resubscribe_or_allowed(self, current: str, state: str, allow: bool) -> None:
        rec = self.answer(current)
        make_hook(rec).set_status(
            "a@b.co", StatusUpdate(statusState=state, subscriptionId=101), allow_resubscribe=allow
        )
        assert rec.requests[-1].method == "POST"
        # guarded: definitions, statuses and opt-out-of-all reads before the write
        assert len(rec.requests) == (4 if state == "SUBSCRIBED" and not allow else 1)


@pytest.mark.usefixtures("private_conn")
class TestBatchWriteSerialized:
    def test_body_sent_as_is_and_answer_parsed_slim(self) -> None:
        answer = {
            "status": "COMPLETE",
            "results": [{"subscriberIdString": "a@b.co", "subscriptionId": 101, "status": "SUBSCRIBED", "x": 1}],
            "numErrors": 0,
        }
        rec = Recorder(
            lambda r, n: (
                httpx.Response(200, json=answer, headers={"x-hubspot-correlation-id": "corr-1"})
                if n > 1
                else httpx.Response(503)
            )
        )
        body = b'{"inputs":[{"subscriberIdString":"a@b.co","subscriptionId":101,"statusState":"SUBSCRIBED"}]}'
        ack = make_hook(rec).batch_write_serialized(body)
        assert [r.content for r in rec.requests] == [body, body]
        assert rec.requests[0].headers["content-type"] == "application/json"
        assert rec.requests[0].url.path == "/communication-preferences/2026-03/statuses/batch/write"
        assert (ack.results[0].subscriber_id_string, ack.results[0].subscription_id) == ("a@b.co", 101)
        assert ack.results[0].model_extra in (None, {})
        assert ack.correlation_id == "corr-1"
