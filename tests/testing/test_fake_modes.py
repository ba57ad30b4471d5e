"""Knobs that model HubSpot's documented account shapes and failure modes, and the CLI's help and flags.

API versions, brands, batch scopes, daily limit, HTML 5xx, legal basis, slow drip, echoed secrets.
"""

from __future__ import annotations

import json
import logging
import socket
import time
from typing import Any

import httpx
import pytest

from airflow_provider_hubcomm.testing import FakeHubSpot

API = "/communication-preferences/2026-03"
V4 = "/communication-preferences/v4"
BATCH_PATHS = {
    "statuses/batch/read?channel=EMAIL": "communication_preferences.statuses.batch.read",
    "statuses/batch/unsubscribe-all/read?channel=EMAIL": "communication_preferences.statuses.batch.read",
    "statuses/batch/unsubscribe-all?channel=EMAIL": "communication_preferences.statuses.batch.write",
}
BRANDS = [101, {"id": 201, "name": "Brand one news", "businessUnitId": 1}]


def client(fake: FakeHubSpot, token: str | None = None, **kw: Any) -> httpx.Client:
    headers = {"Authorization": f"Bearer {token or fake.token}"}
    return httpx.Client(base_url=fake.url, headers=headers, timeout=kw.pop("timeout", 10), **kw)


def write(status: str = "SUBSCRIBED", sub_id: int = 101, **extra: Any) -> dict[str, Any]:
    return {"channel": "EMAIL", "statusState": status, "subscriptionId": sub_id, **extra}


def item(subscriber: str, sub_id: int = 101, **extra: Any) -> dict[str, Any]:
    return {**write("SUBSCRIBED", sub_id, **extra), "subscriberIdString": subscriber}


def oauth_token(fake: FakeHubSpot) -> str:
    form = {"grant_type": "refresh_token", **fake.oauth_client}
    return str(httpx.post(f"{fake.url}/oauth/v3/token", data=form).json()["access_token"])


class TestApiVersions:
    def test_both_versions_by_default(self, hubcomm_fake: FakeHubSpot) -> None:
        with client(hubcomm_fake) as api:
            assert api.get(f"{V4}/definitions").status_code == 200
            assert api.get(f"{API}/definitions").status_code == 200
            assert api.get("/communication-preferences/2025-09/definitions").status_code == 404

    def test_after_the_v4_cutoff_v4_is_an_unknown_route(self, hubcomm_fake_factory: Any) -> None:
        fake = hubcomm_fake_factory(api_versions=("2026-03",))
        with client(fake) as api:
            gone = api.post(f"{V4}/statuses/a%40x.com", json=write())
            assert gone.status_code == 404
            assert gone.json()["category"] == "OBJECT_NOT_FOUND"
            assert api.post(f"{API}/statuses/a%40x.com", json=write()).status_code == 200
        assert fake.counters["not_found"] == 1
        assert fake.snapshot() == {("a@x.com", 101): "SUBSCRIBED"}

    def test_cutoff_at_runtime(self, hubcomm_fake: FakeHubSpot) -> None:
        with client(hubcomm_fake) as api:
            assert api.get(f"{V4}/definitions").status_code == 200
            hubcomm_fake.configure(api_versions=("2026-03",))
            assert api.get(f"{V4}/definitions").status_code == 404
            assert api.get(f"{API}/definitions").status_code == 200

    def test_unknown_version_knob_is_refused(self) -> None:
        with pytest.raises(ValueError, match="api_versions"):
            FakeHubSpot(api_versions=("v3",))


class TestBrands:
    def test_status_reads_cover_the_brand_asked_else_brand_0(self, hubcomm_fake_factory: Any) -> None:
        fake = hubcomm_fake_factory(subscriptions=BRANDS)
        with client(fake) as api:
            default = api.get(f"{API}/statuses/a%40x.com?channel=EMAIL").json()["results"]
            assert [r["subscriptionId"] for r in default] == [101]
            brand1 = api.get(f"{API}/statuses/a%40x.com?channel=EMAIL&businessUnitId=1").json()["results"]
            assert [(r["subscriptionId"], r["businessUnitId"]) for r in brand1] == [(201, 1)]
            read = api.post(f"{API}/statuses/batch/read?channel=EMAIL", json={"inputs": ["a@x.com"]}).json()
            assert [s["subscriptionId"] for s in read["results"][0]["statuses"]] == [101]
            read1 = api.post(
                f"{API}/statuses/batch/read?channel=EMAIL&businessUnitId=1", json={"inputs": ["a@x.com"]}
            ).json()
            assert [s["subscriptionId"] for s in read1["results"][0]["statuses"]] == [201]

    def test_writes_take_no_brand_and_work_for_any_brand(self, hubcomm_fake_factory: Any) -> None:
        fake = hubcomm_fake_factory(subscriptions=BRANDS)
        with client(fake) as api:
            assert api.post(f"{API}/statuses/a%40x.com", json=write("UNSUBSCRIBED", 201)).status_code == 200
            batch = {"inputs": [item("b@x.com", 201), item("b@x.com", 101)]}
            resp = api.post(f"{API}/statuses/batch/write", json=batch)
            assert (resp.status_code, resp.json().get("numErrors")) == (200, None)
        assert fake.snapshot() == {
            ("a@x.com", 201): "UNSUBSCRIBED",
            ("b@x.com", 201): "SUBSCRIBED",
            ("b@x.com", 101): "SUBSCRIBED",
        }

    def test_unsubscribe_all_per_brand_and_wide_read_across_brands(self, hubcomm_fake_factory: Any) -> None:
        fake = hubcomm_fake_factory(subscriptions=BRANDS)
        with client(fake) as api:
            api.post(f"{API}/statuses/a%40x.com/unsubscribe-all?channel=EMAIL&businessUnitId=1")
            assert fake.snapshot() == {("a@x.com", 201): "UNSUBSCRIBED"}  # brand 1 only
            api.post(f"{API}/statuses/b%40x.com/unsubscribe-all?channel=EMAIL")
            assert fake.snapshot()[("b@x.com", 101)] == "UNSUBSCRIBED"
            assert ("b@x.com", 201) not in fake.snapshot()  # default brand 0 only
            wide = api.post(f"{API}/statuses/batch/unsubscribe-all/read?channel=EMAIL", json={"inputs": ["a@x.com"]})
            assert [w["businessUnitId"] for w in wide.json()["results"][0]["wideStatuses"]] == [1]  # all brands
            wide0 = api.post(
                f"{API}/statuses/batch/unsubscribe-all/read?channel=EMAIL&businessUnitId=0",
                json={"inputs": ["a@x.com"]},
            )
            assert wide0.json()["results"][0]["wideStatuses"] == []


class TestBatchScopes:
    def test_every_batch_endpoint_is_403_missing_scopes(self, hubcomm_fake_factory: Any) -> None:
        fake = hubcomm_fake_factory(batch_scopes=False, requests_per_window=50)
        paths = {**BATCH_PATHS, "statuses/batch/write": "communication_preferences.statuses.batch.write"}
        with client(fake) as api:
            remaining = []
            for path, scope in paths.items():
                body = {"inputs": [item("a@x.com")]} if path.endswith("write") else {"inputs": ["a@x.com"]}
                resp = api.post(f"{API}/{path}", json=body)
                assert resp.status_code == 403, path
                error = resp.json()
                assert error["category"] == "MISSING_SCOPES"
                assert error["message"]
                assert len(error["correlationId"]) == 36
                assert error["context"] == {"requiredGranularScopes": [scope]}
                remaining.append(int(resp.headers["X-HubSpot-RateLimit-Remaining"]))
            assert remaining == [49, 48, 47, 46]  # each 403 consumed budget like any answered request
            assert api.post(f"{API}/statuses/a%40x.com", json=write()).status_code == 200  # single still works
        assert fake.snapshot() == {("a@x.com", 101): "SUBSCRIBED"}
        assert fake.counters["missing_scopes"] == 4


class TestDailyLimit:
    def test_headers_then_daily_429_without_retry_after(self, hubcomm_fake_factory: Any) -> None:
        fake = hubcomm_fake_factory(daily_limit=3, requests_per_window=100)
        with client(fake) as api:
            answers = [api.get(f"{API}/definitions") for _ in range(3)]
            assert [a.headers["X-HubSpot-RateLimit-Daily"] for a in answers] == ["3"] * 3
            assert [a.headers["X-HubSpot-RateLimit-Daily-Remaining"] for a in answers] == ["2", "1", "0"]
            refused = api.post(f"{API}/statuses/a%40x.com", json=write())
        assert refused.status_code == 429
        assert "Retry-After" not in refused.headers
        body = refused.json()
        assert {k: body[k] for k in ("status", "message", "errorType", "policyName")} == {
            "status": "error",
            "message": "You have reached your daily limit.",
            "errorType": "RATE_LIMIT",
            "policyName": "DAILY",
        }
        assert body["correlationId"]
        assert body["requestId"]
        assert fake.snapshot() == {}
        assert fake.counters["daily_limited"] == 1

    def test_oauth_answers_carry_no_daily_headers_but_share_the_budget(self, hubcomm_fake_factory: Any) -> None:
        fake = hubcomm_fake_factory(daily_limit=2)
        with client(fake, oauth_token(fake)) as oauth, client(fake) as private:
            first = oauth.get(f"{API}/definitions")
            assert first.status_code == 200
            assert "X-HubSpot-RateLimit-Daily" not in first.headers
            assert private.get(f"{API}/definitions").headers["X-HubSpot-RateLimit-Daily-Remaining"] == "0"
            assert oauth.get(f"{API}/definitions").status_code == 429
            assert private.get(f"{API}/definitions").json()["policyName"] == "DAILY"

    def test_new_day_refills_the_budget(self, hubcomm_fake_factory: Any) -> None:
        fake = hubcomm_fake_factory(daily_limit=1)
        with client(fake) as api:
            assert api.get(f"{API}/definitions").status_code == 200
            assert api.get(f"{API}/definitions").status_code == 429
            fake.new_day()
            again = api.get(f"{API}/definitions")
        assert again.status_code == 200
        assert again.headers["X-HubSpot-RateLimit-Daily-Remaining"] == "0"

    def test_unauthorized_requests_do_not_count(self, hubcomm_fake_factory: Any) -> None:
        fake = hubcomm_fake_factory(daily_limit=1)
        with client(fake, "wrong-token") as bad, client(fake) as good:
            assert bad.get(f"{API}/definitions").status_code == 401
            assert good.get(f"{API}/definitions").status_code == 200


class TestHtml5xx:
    def test_injected_5xx_is_an_html_page(self, hubcomm_fake_factory: Any) -> None:
        fake = hubcomm_fake_factory(error_rate_5xx=1.0, html_5xx=True)
        with client(fake) as api:
            resp = api.post(f"{API}/statuses/a%40x.com", json=write())
        assert resp.status_code in (500, 502, 503, 504)
        assert resp.headers["Content-Type"].startswith("text/html")
        assert resp.text.startswith("<!DOCTYPE html>")
        with pytest.raises(json.JSONDecodeError):
            json.loads(resp.text)
        assert fake.snapshot() == {}

    def test_json_by_default(self, hubcomm_fake_factory: Any) -> None:
        fake = hubcomm_fake_factory(error_rate_5xx=1.0)
        with client(fake) as api:
            resp = api.get(f"{API}/definitions")
        assert resp.headers["Content-Type"].startswith("application/json")
        assert resp.json()["status"] == "error"


class TestLegalBasisRequired:
    def test_single_write_needs_both_fields(self, hubcomm_fake_factory: Any) -> None:
        fake = hubcomm_fake_factory(require_legal_basis=True)
        with client(fake) as api:
            extras: list[dict[str, Any]] = [{}, {"legalBasis": "NON_GDPR"}, {"legalBasisExplanation": "why"}]
            for extra in extras:
                resp = api.post(f"{API}/statuses/a%40x.com", json=write(**extra))
                assert (resp.status_code, resp.json()["category"]) == (400, "VALIDATION_ERROR"), extra
                assert "legalBasis" in resp.json()["message"]
            assert fake.snapshot() == {}
            ok = api.post(f"{API}/statuses/a%40x.com", json=write(legalBasis="NON_GDPR", legalBasisExplanation="why"))
            assert ok.status_code == 200
        assert fake.snapshot() == {("a@x.com", 101): "SUBSCRIBED"}

    def test_batch_refuses_only_the_input_without_a_basis(self, hubcomm_fake_factory: Any) -> None:
        fake = hubcomm_fake_factory(require_legal_basis=True)
        inputs = [item("good@x.com", legalBasis="NON_GDPR", legalBasisExplanation="why"), item("bare@x.com")]
        with client(fake) as api:
            resp = api.post(f"{API}/statuses/batch/write", json={"inputs": inputs})
        assert resp.status_code == 200
        body = resp.json()
        assert body["numErrors"] == 1
        assert body["errors"][0]["context"]["subscriberIdString"] == ["bare@x.com"]
        assert body["errors"][0]["category"] == "VALIDATION_ERROR"
        assert fake.snapshot() == {("good@x.com", 101): "SUBSCRIBED"}


class TestDrip:
    def test_body_trickles_but_each_read_is_fast(self, hubcomm_fake_factory: Any) -> None:
        fake = hubcomm_fake_factory(drip_interval=0.02)
        with client(fake, timeout=httpx.Timeout(10, read=2.0)) as api:
            started = time.monotonic()
            first = api.get(f"{API}/statuses/a%40x.com/unsubscribe-all?channel=EMAIL")
            elapsed = time.monotonic() - started
            second = api.get(f"{API}/statuses/a%40x.com/unsubscribe-all?channel=EMAIL")  # same connection
        assert first.json()["results"] == []
        assert second.status_code == 200
        assert elapsed >= (len(first.content) - 1) * 0.02 * 0.9  # a per-read timeout of 2 s never fired

    def test_rate_zero_never_drips(self, hubcomm_fake_factory: Any) -> None:
        fake = hubcomm_fake_factory(drip_interval=30.0, drip_rate=0.0)
        with client(fake, timeout=5) as api:
            assert api.get(f"{API}/definitions").status_code == 200

    def test_stop_cancels_a_drip_promptly(self, caplog: pytest.LogCaptureFixture) -> None:
        fake = FakeHubSpot(drip_interval=5.0).start()
        try:
            sock = socket.create_connection(("127.0.0.1", fake.port), timeout=10)
            request = f"GET {API}/definitions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {fake.token}\r\n\r\n"
            sock.sendall(request.encode())
            head = b""
            while b"\r\n\r\n" not in head:
                head += sock.recv(4096)
            assert head.startswith(b"HTTP/1.1 200")
        finally:
            started = time.monotonic()
            fake.stop()
            stopped_in = time.monotonic() - started
        try:
            rest = sock.recv(4096)
        except OSError:
            rest = b""
        finally:
            sock.close()
        assert stopped_in < 4.0  # well under one 5 s drip step
        assert len(rest) <= 1  # at most the byte already in flight, then EOF/reset
        assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []


class TestEchoSecrets:
    def test_error_answers_quote_the_authorization_header(self, hubcomm_fake_factory: Any) -> None:
        fake = hubcomm_fake_factory(echo_secrets=True, batch_scopes=False)
        with client(fake, "wrong-token-abc") as bad, client(fake) as good:
            assert "Bearer wrong-token-abc" in bad.get(f"{API}/definitions").json()["message"]
            invalid = good.post(f"{API}/statuses/a%40x.com", json={"channel": "EMAIL"})
            assert invalid.status_code == 400
            assert f"Bearer {fake.token}" in invalid.json()["message"]
            scopes = good.post(f"{API}/statuses/batch/read?channel=EMAIL", json={"inputs": []})
            assert f"Bearer {fake.token}" in scopes.json()["message"]
            assert good.get(f"{API}/definitions").status_code == 200  # success answers are untouched
            assert fake.token not in good.get(f"{API}/definitions").text
        logged = json.dumps(fake.request_log) + json.dumps(fake.counters)
        assert fake.token not in logged
        assert "wrong-token-abc" not in logged

    @pytest.mark.parametrize("html", [False, True])
    def test_injected_errors_quote_it_too(self, hubcomm_fake_factory: Any, html: bool) -> None:
        fake = hubcomm_fake_factory(echo_secrets=True, error_rate_5xx=1.0, html_5xx=html)
        with client(fake) as api:
            assert f"Bearer {fake.token}" in api.get(f"{API}/definitions").text
        fake.configure(error_rate_5xx=0.0, error_rate_429=1.0)
        with client(fake) as api:
            limited = api.get(f"{API}/definitions")
        assert limited.status_code == 429
        assert f"Bearer {fake.token}" in limited.json()["message"]

    def test_token_endpoint_quotes_the_posted_secrets(self, hubcomm_fake_factory: Any) -> None:
        fake = hubcomm_fake_factory(echo_secrets=True)
        creds = fake.oauth_client
        form = {"grant_type": "refresh_token", **creds, "refresh_token": "rt-not-known-123"}
        resp = httpx.post(f"{fake.url}/oauth/v3/token", data=form)
        assert resp.status_code == 400
        assert creds["client_secret"] in resp.json()["message"]
        assert "rt-not-known-123" in resp.json()["message"]
        logged = json.dumps(fake.request_log) + json.dumps(fake.counters)
        assert creds["client_secret"] not in logged
        assert "rt-not-known-123" not in logged

    def test_off_by_default(self, hubcomm_fake: FakeHubSpot) -> None:
        with client(hubcomm_fake, "wrong-token-abc") as bad:
            assert "wrong-token-abc" not in bad.get(f"{API}/definitions").text


class TestRuntimeKnobs:
    def test_new_knobs_change_while_running(self, hubcomm_fake: FakeHubSpot) -> None:
        with client(hubcomm_fake) as api:
            inputs = {"inputs": [item("a@x.com"), item("b@x.com", 999)]}
            assert api.post(f"{API}/statuses/batch/write", json=inputs).status_code == 200
            hubcomm_fake.configure(partial_status=207, max_batch_size=1)
            too_big = api.post(f"{API}/statuses/batch/write", json=inputs)
            assert too_big.status_code == 400
            assert "limit is 1" in too_big.json()["message"]
            one = {"inputs": [item("c@x.com", 999)]}
            assert api.post(f"{API}/statuses/batch/write", json=one).status_code == 207
            hubcomm_fake.configure(batch_scopes=False)
            assert api.post(f"{API}/statuses/batch/write", json=one).status_code == 403

    @pytest.mark.parametrize(
        ("knob", "value"),
        [("partial_status", 201), ("unknown_subscription_status", 409), ("daily_limit", 0), ("drip_rate", 2.0)],
    )
    def test_bad_values_are_refused(self, knob: str, value: Any) -> None:
        with pytest.raises(ValueError, match=knob):
            FakeHubSpot(**{knob: value})


class TestCliHelp:
    def test_plain_text_with_every_default(self) -> None:
        from airflow_provider_hubcomm.testing.__main__ import build_parser

        parser = build_parser()
        text = parser.format_help()
        for markup in ("``", ":class:", ":meth:", ":param"):
            assert markup not in text
        for action in parser._actions:
            if action.dest != "help":
                assert action.help is not None
                assert "(default:" in action.help, action.dest

    def test_flags_for_the_new_knobs(self) -> None:
        from airflow_provider_hubcomm.testing.__main__ import build_parser

        args = build_parser().parse_args(
            [
                "--api-versions",
                "2026-03",
                "--partial-status",
                "207",
                "--unknown-subscription-status",
                "404",
                "--max-batch-size",
                "none",
                "--daily-limit",
                "500",
                "--no-strict-brands",
                "--no-batch-scopes",
                "--html-5xx",
                "--require-legal-basis",
                "--drip-interval",
                "0.5",
                "--drip-rate",
                "0.25",
                "--echo-secrets",
            ]
        )
        assert args.api_versions == ["2026-03"]
        assert (args.partial_status, args.unknown_subscription_status) == (207, 404)
        assert (args.max_batch_size, args.daily_limit) == (None, 500)
        assert (args.strict_brands, args.batch_scopes, args.html_5xx) == (False, False, True)
        assert (args.require_legal_basis, args.echo_secrets) == (True, True)
        assert (args.drip_interval, args.drip_rate) == (0.5, 0.25)
