"""TLS verification stays on: a self-signed HTTPS endpoint is refused, at once and clearly."""

from __future__ import annotations

import datetime
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from airflow_provider_hubcomm.exceptions import HubCommConnectionError
from airflow_provider_hubcomm.hooks.hubcomm import HubCommHook
from tests.hooks.conftest import TOKEN, set_conn


def _self_signed(tmp: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp / "cert.pem", tmp / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


class _Handler(BaseHTTPRequestHandler):
    hits = 0

    def do_GET(self) -> None:
        type(self).hits += 1
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b'{"status":"COMPLETE","results":[]}')

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[int]:
    cert, key = _self_signed(tmp_path)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def test_self_signed_certificate_is_refused_without_retries(tls_server: int, monkeypatch: pytest.MonkeyPatch) -> None:
    set_conn(monkeypatch, host=f"https://127.0.0.1:{tls_server}", password=TOKEN)
    hook = HubCommHook(retry_sleep=lambda _s: None)
    with pytest.raises(HubCommConnectionError, match="CERTIFICATE_VERIFY_FAILED"):
        hook.get_definitions()
    assert hook.retry_policy.retries == 0
    assert _Handler.hits == 0


def test_host_without_scheme_means_https(monkeypatch: pytest.MonkeyPatch) -> None:
    set_conn(monkeypatch, host="127.0.0.1:9", password=TOKEN)
    assert HubCommHook().config.base_url.startswith("https://")


def test_schema_field_never_downgrades_to_plain_http(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_HUBCOMM_DEFAULT", f"hubcomm://:{TOKEN}@127.0.0.1:8080/http")
    assert HubCommHook().config.base_url == "https://127.0.0.1:8080"


def test_explicit_http_host_warns(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    set_conn(monkeypatch, host="http://127.0.0.1:8080", password=TOKEN)
    assert HubCommHook().config.base_url == "http://127.0.0.1:8080"
    assert "plain HTTP" in caplog.text
    assert TOKEN not in caplog.text


def test_plain_http_token_url_warns(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    set_conn(
        monkeypatch,
        host="https://api.example.com",
        extra={
            "auth_type": "oauth",
            "client_id": "c",
            "client_secret": "s3cr3t-x",
            "refresh_token": "r3fr3sh-y",
            "token_url": "http://proxy.example.com/oauth/v3/token",
        },
    )
    HubCommHook().config  # noqa: B018
    assert "over plain HTTP (token_url)" in caplog.text
    assert "s3cr3t-x" not in caplog.text
    assert "r3fr3sh-y" not in caplog.text
