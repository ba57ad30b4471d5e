"""Authentication of the fake: private-app tokens, the OAuth refresh grant, expiry and revocation."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import httpx
import pytest

if TYPE_CHECKING:
    from airflow_provider_hubcomm.testing import FakeHubSpot

DEFS = "/communication-preferences/2026-03/definitions"


def refresh(fake: FakeHubSpot, version: str = "v3", **overrides: str) -> httpx.Response:
    form = {"grant_type": "refresh_token", **fake.oauth_client, **overrides}
    return httpx.post(f"{fake.url}/oauth/{version}/token", data=form)


def get_defs(fake: FakeHubSpot, token: str | None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    return httpx.get(f"{fake.url}{DEFS}", headers=headers)


class TestPrivateApp:
    def test_missing_token(self, hubcomm_fake: FakeHubSpot) -> None:
        resp = get_defs(hubcomm_fake, None)
        assert resp.status_code == 401
        body = resp.json()
        assert body["category"] == "INVALID_AUTHENTICATION"
        assert body["message"].startswith("Authentication credentials not found")
        assert body["correlationId"]

    def test_unknown_token(self, hubcomm_fake: FakeHubSpot) -> None:
        assert get_defs(hubcomm_fake, "pat-wrong").status_code == 401
        assert hubcomm_fake.counters["unauthorized"] == 1

    def test_several_tokens(self, hubcomm_fake_factory: Any) -> None:
        fake = hubcomm_fake_factory(private_app_tokens=["t1", "t2"])
        assert get_defs(fake, "t2").status_code == 200
        assert fake.token == "t1"


class TestOAuth:
    @pytest.mark.parametrize("version", ["v1", "v3", "2026-03"])
    def test_refresh_grant(self, hubcomm_fake: FakeHubSpot, version: str) -> None:
        resp = refresh(hubcomm_fake, version)
        assert resp.status_code == 200
        body = resp.json()
        assert body["token_type"] == "bearer"
        assert body["expires_in"] == 1800
        assert body["refresh_token"] == hubcomm_fake.oauth_client["refresh_token"]
        assert get_defs(hubcomm_fake, body["access_token"]).status_code == 200
        assert hubcomm_fake.counters["token_issued"] == 1

    def test_bad_client_secret(self, hubcomm_fake: FakeHubSpot) -> None:
        resp = refresh(hubcomm_fake, client_secret="nope")
        assert resp.status_code == 400
        body = resp.json()
        assert (body["status"], body["error"]) == ("BAD_CLIENT_ID", "invalid_client")
        assert body["error_description"]
        assert body["correlationId"]

    def test_bad_refresh_token(self, hubcomm_fake: FakeHubSpot) -> None:
        body = refresh(hubcomm_fake, refresh_token="nope").json()
        assert (body["status"], body["error"]) == ("BAD_REFRESH_TOKEN", "invalid_grant")

    def test_revoked_refresh_token(self, hubcomm_fake: FakeHubSpot) -> None:
        assert hubcomm_fake.revoke_refresh_token(hubcomm_fake.oauth_client["refresh_token"])
        resp = refresh(hubcomm_fake)
        assert resp.status_code == 400
        assert resp.json()["status"] == "BAD_REFRESH_TOKEN"
        assert hubcomm_fake.counters["token_refused"] == 1

    def test_wrong_grant_type(self, hubcomm_fake: FakeHubSpot) -> None:
        resp = refresh(hubcomm_fake, grant_type="authorization_code")
        assert resp.status_code == 400
        assert resp.json()["error"] == "unsupported_grant_type"

    def test_access_token_expires(self, hubcomm_fake_factory: Any) -> None:
        fake = hubcomm_fake_factory(token_ttl=0.3)
        body = refresh(fake).json()
        assert body["expires_in"] == 0.3
        assert get_defs(fake, body["access_token"]).status_code == 200
        time.sleep(0.35)
        resp = get_defs(fake, body["access_token"])
        assert resp.status_code == 401
        assert resp.json()["category"] == "EXPIRED_AUTHENTICATION"
        assert "expired" in resp.json()["message"]
        fresh = refresh(fake).json()["access_token"]
        assert get_defs(fake, fresh).status_code == 200

    def test_expire_all_access_tokens(self, hubcomm_fake: FakeHubSpot) -> None:
        token = refresh(hubcomm_fake).json()["access_token"]
        hubcomm_fake.expire_all_access_tokens()
        assert get_defs(hubcomm_fake, token).json()["category"] == "EXPIRED_AUTHENTICATION"
        assert get_defs(hubcomm_fake, hubcomm_fake.token).status_code == 200  # private-app tokens never expire

    def test_rotating_refresh_tokens(self, hubcomm_fake_factory: Any) -> None:
        fake = hubcomm_fake_factory(rotate_refresh_tokens=True)
        old = fake.oauth_client["refresh_token"]
        new = refresh(fake).json()["refresh_token"]
        assert new != old
        assert refresh(fake).json()["status"] == "BAD_REFRESH_TOKEN"  # the old one is gone
        assert refresh(fake, refresh_token=new).status_code == 200

    def test_token_endpoint_not_rate_limited(self, hubcomm_fake_factory: Any) -> None:
        fake = hubcomm_fake_factory(requests_per_window=1)
        assert all(refresh(fake).status_code == 200 for _ in range(3))
        assert "X-HubSpot-RateLimit-Max" not in refresh(fake).headers
