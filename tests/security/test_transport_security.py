"""TLS stays on; plain HTTP only with an explicit ``http://`` host; redirects never carry the token elsewhere.

Extends ``tests/hooks/test_tls.py`` (self-signed certificate refused at once, scheme-less host means HTTPS)
without repeating it: no connection extra turns verification off, the async client verifies too, a redirect
is never followed, and no field other than an explicit ``http://`` host downgrades to plain HTTP.
"""

from __future__ import annotations

import contextlib
import json
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING

import pytest
from airflow.sdk import Connection

from airflow_provider_hubcomm.exceptions import HubCommConnectionError, HubCommError
from airflow_provider_hubcomm.hooks.hubcomm import HubCommHook
from tests.hooks.test_tls import _self_signed

if TYPE_CHECKING:
    from pathlib import Path

TOKEN = "pat-transport-secret-7781"


class _Counter(BaseHTTPRequestHandler):
    hits: list[dict[str, str]]
    redirect_to: str | None = None

    def _answer(self) -> None:
        self.hits.append({"path": self.path, "authorization": self.headers.get("Authorization", "")})
        if self.redirect_to:
            self.send_response(307)
            self.send_header("Location", self.redirect_to + self.path)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = b'{"status":"COMPLETE","results":[]}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer

    def log_message(self, *args: object) -> None:
        pass


class Server:
    def __init__(self, tls_dir: Path | None = None, redirect_to: str | None = None) -> None:
        self.hits: list[dict[str, str]] = []
        handler = type("Handler", (_Counter,), {"hits": self.hits, "redirect_to": redirect_to})
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        if tls_dir is not None:
            cert, key = _self_signed(tls_dir)
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(cert, key)
            self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[Server]:
    server = Server(tmp_path)
    yield server
    server.close()


@pytest.fixture
def plain_server() -> Iterator[Server]:
    server = Server()
    yield server
    server.close()


def conn(monkeypatch: pytest.MonkeyPatch, **fields: object) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_HUBCOMM_DEFAULT", json.dumps({"conn_type": "hubcomm", **fields}))


@pytest.mark.parametrize(
    "extra",
    [
        {"verify": False},
        {"verify_ssl": False, "ssl_verify": "false", "insecure": True, "tls_verify": 0},
        {"ca_bundle": "", "cert": None, "verify": "0"},
    ],
)
def test_no_extra_turns_certificate_verification_off(
    tls_server: Server, monkeypatch: pytest.MonkeyPatch, extra: dict[str, object]
) -> None:
    conn(monkeypatch, host=f"https://127.0.0.1:{tls_server.port}", password=TOKEN, extra=extra)
    hook = HubCommHook(retry_sleep=lambda _s: None)
    with pytest.raises(HubCommConnectionError, match="CERTIFICATE_VERIFY_FAILED"):
        hook.get_definitions()
    assert tls_server.hits == []
    assert hook.retry_policy.retries == 0


async def test_async_client_verifies_certificates_too(tls_server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    conn(monkeypatch, host=f"https://127.0.0.1:{tls_server.port}", password=TOKEN)

    async def no_sleep(_s: float) -> None:
        return None

    hook = HubCommHook(retry_asleep=no_sleep)
    with pytest.raises(HubCommConnectionError, match="CERTIFICATE_VERIFY_FAILED"):
        await hook.aget_definitions()
    await hook.aclose()
    assert tls_server.hits == []


def test_oauth_token_endpoint_verifies_certificates(tls_server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    extra = {
        "auth_type": "oauth",
        "client_id": "cid",
        "client_secret": "cs-transport-1",
        "refresh_token": "rt-transport-1",
    }
    conn(monkeypatch, host=f"https://127.0.0.1:{tls_server.port}", extra=extra)
    with pytest.raises(HubCommConnectionError, match="CERTIFICATE_VERIFY_FAILED") as info:
        HubCommHook(retry_sleep=lambda _s: None).get_definitions()
    assert "/oauth/v3/token" in str(info.value)
    assert "cs-transport-1" not in str(info.value)
    assert "rt-transport-1" not in str(info.value)
    assert tls_server.hits == []


def test_redirects_are_never_followed(plain_server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    """A redirect (even from an explicit http:// host) must not carry the Bearer token to another server."""
    redirector = Server(redirect_to=f"http://127.0.0.1:{plain_server.port}")
    try:
        conn(monkeypatch, host=f"http://127.0.0.1:{redirector.port}", password=TOKEN)
        with pytest.raises(HubCommError, match="HTTP 307"):
            HubCommHook(retry_sleep=lambda _s: None).get_definitions()
    finally:
        redirector.close()
    assert len(redirector.hits) == 1
    assert plain_server.hits == []


def test_explicit_http_host_is_the_way_to_plain_http(plain_server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    conn(monkeypatch, host=f"HTTP://127.0.0.1:{plain_server.port}", password=TOKEN)
    hook = HubCommHook()
    assert hook.config.base_url == f"http://127.0.0.1:{plain_server.port}"
    hook.get_definitions()
    assert plain_server.hits[0]["authorization"] == f"Bearer {TOKEN}"


@pytest.mark.parametrize(
    "extra",
    [{"token_url": "/oauth/v1/token"}, {"token_url": "oauth/2026-03/token"}, {}],
    ids=["v1", "relative", "default"],
)
def test_relative_token_url_follows_the_https_host(extra: dict[str, str]) -> None:
    fields = {"auth_type": "oauth", "client_id": "c", "client_secret": "s", "refresh_token": "r", **extra}
    connection = Connection(conn_id="t", conn_type="hubcomm", host="api.hubapi.com", extra=json.dumps(fields))
    config = HubCommHook(connection=connection).config
    assert config.base_url == "https://api.hubapi.com"
    assert config.token_url.startswith("https://api.hubapi.com/oauth/")


@pytest.mark.parametrize("form", ["json", "uri"])
def test_hidden_schema_field_does_not_downgrade_to_plain_http(form: str, plain_server: Server) -> None:
    """The connection's ``schema`` (hidden in the UI; the path of a URI) must not switch TLS off (fixed in 17d459f)."""
    host = f"127.0.0.1:{plain_server.port}"
    if form == "json":
        connection = Connection(conn_id="t", conn_type="hubcomm", host=host, schema="http", password=TOKEN)
    else:
        connection = Connection.from_uri(f"hubcomm://:{TOKEN}@{host}/http", conn_id="t")  # type: ignore[attr-defined]
        assert connection.schema == "http"
    hook = HubCommHook(connection=connection, retry_sleep=lambda _s: None)
    with contextlib.suppress(HubCommError):
        hook.get_definitions()
    assert plain_server.hits == [], "the token went over plain HTTP"
    assert hook.config.base_url.startswith("https://")
