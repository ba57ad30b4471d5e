from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

TOKEN = "pat-na1-unit-test-secret-0001"
CLIENT_SECRET = "client-secret-unit-test-0002"
REFRESH_TOKEN = "refresh-token-unit-test-0003"
BASE = "http://127.0.0.1:1"
OAUTH_EXTRA = {"auth_type": "oauth", "client_id": "cid", "client_secret": CLIENT_SECRET, "refresh_token": REFRESH_TOKEN}


def set_conn(monkeypatch: pytest.MonkeyPatch, conn_id: str = "hubcomm_default", **fields: Any) -> None:
    """Define an Airflow connection through its AIRFLOW_CONN_ environment variable (JSON form)."""
    body: dict[str, Any] = {"conn_type": "hubcomm", "host": BASE}
    body.update(fields)
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(body))


@pytest.fixture
def private_conn(monkeypatch: pytest.MonkeyPatch) -> None:
    set_conn(monkeypatch, password=TOKEN)


@pytest.fixture
def oauth_conn(monkeypatch: pytest.MonkeyPatch) -> None:
    set_conn(monkeypatch, extra=OAUTH_EXTRA)


class Recorder:
    """A scriptable handler for httpx.MockTransport that records every request."""

    def __init__(self, responder: Callable[[httpx.Request, int], httpx.Response | Exception]) -> None:
        self.responder = responder
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        # Snapshot: auth flows mutate and resend the same Request object.
        snapshot = httpx.Request(request.method, request.url, headers=request.headers.copy(), content=request.read())
        self.requests.append(snapshot)
        outcome = self.responder(request, len(self.requests))
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    def paths(self) -> list[str]:
        return [r.url.path for r in self.requests]


def ok_status(**extra: Any) -> httpx.Response:
    body = {"status": "COMPLETE", "results": [{"subscriptionId": 101, "status": "SUBSCRIBED", **extra}]}
    return httpx.Response(200, json=body)
