"""The fake as a server: HTTP/1.1 details, lifecycle, request log, connections, CLI and plugin weight."""

from __future__ import annotations

import json
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from airflow_provider_hubcomm.testing import FakeHubSpot

if TYPE_CHECKING:
    from collections.abc import Iterator

API = "/communication-preferences/2026-03"


@pytest.fixture
def sock(hubcomm_fake: FakeHubSpot) -> Iterator[socket.socket]:
    with socket.create_connection(("127.0.0.1", hubcomm_fake.port), timeout=5) as s:
        yield s


def read_response(s: socket.socket, buf: bytearray) -> tuple[int, dict[str, str], bytes]:
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(65536)
        if not chunk:
            raise ConnectionError("closed")
        buf += chunk
    head, _, rest = bytes(buf).partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    length = int(headers["content-length"])
    while len(rest) < length:
        rest += s.recv(65536)
    buf[:] = rest[length:]
    return int(lines[0].split(" ")[1]), headers, rest[:length]


def raw_get(fake: FakeHubSpot, path: str, extra: str = "") -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {fake.token}\r\n{extra}\r\n".encode()


class TestHttp:
    def test_keep_alive_and_pipelining(self, hubcomm_fake: FakeHubSpot, sock: socket.socket) -> None:
        sock.sendall(raw_get(hubcomm_fake, f"{API}/definitions") * 3)
        buf = bytearray()
        answers = [read_response(sock, buf) for _ in range(3)]
        assert [a[0] for a in answers] == [200, 200, 200]
        assert "close" not in answers[0][1].get("connection", "")  # HTTP/1.1: kept alive unless told otherwise
        assert answers[0][1]["server"] == "hubcomm-fake"
        assert answers[0][1]["x-hubspot-correlation-id"]
        sock.sendall(raw_get(hubcomm_fake, f"{API}/definitions"))
        assert read_response(sock, buf)[0] == 200

    def test_chunked_request_body(self, hubcomm_fake: FakeHubSpot, sock: socket.socket) -> None:
        body = json.dumps({"channel": "EMAIL", "statusState": "SUBSCRIBED", "subscriptionId": 102}).encode()
        head = (
            f"POST {API}/statuses/k%40x.com HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {hubcomm_fake.token}\r\n"
            "Transfer-Encoding: chunked\r\nContent-Type: application/json\r\n\r\n"
        ).encode()
        chunks = b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in (body[:10], body[10:])) + b"0\r\n\r\n"
        sock.sendall(head + chunks)
        assert read_response(sock, bytearray())[0] == 200
        assert hubcomm_fake.snapshot() == {("k@x.com", 102): "SUBSCRIBED"}

    def test_connection_close(self, hubcomm_fake: FakeHubSpot, sock: socket.socket) -> None:
        sock.sendall(raw_get(hubcomm_fake, f"{API}/definitions", "Connection: close\r\n"))
        status, headers, _ = read_response(sock, bytearray())
        assert (status, headers["connection"]) == (200, "close")
        assert sock.recv(10) == b""

    def test_malformed_request(self, sock: socket.socket) -> None:
        sock.sendall(b"NONSENSE\r\n\r\n")
        assert read_response(sock, bytearray())[0] == 400


class TestLifecycle:
    def test_stop_leaves_no_thread_or_socket(self) -> None:
        before = threading.active_count()
        fake = FakeHubSpot().start()
        assert fake.start() is fake  # idempotent
        port = fake.port
        httpx.get(f"{fake.url}{API}/definitions")
        with httpx.Client() as keep:  # an idle keep-alive connection must not block the stop
            keep.get(f"{fake.url}{API}/definitions")
            fake.stop()
        fake.stop()
        assert threading.active_count() == before
        assert not fake.running
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=1).close()

    def test_context_manager_and_url(self) -> None:
        with FakeHubSpot() as fake:
            assert fake.url == f"http://127.0.0.1:{fake.port}"
            assert "FakeHubSpot http://127.0.0.1" in repr(fake)
        with pytest.raises(RuntimeError, match="not started"):
            _ = FakeHubSpot().url

    def test_port_in_use_raises(self, hubcomm_fake: FakeHubSpot) -> None:
        with pytest.raises(OSError):
            FakeHubSpot(port=hubcomm_fake.port).start()


class TestObservation:
    def test_request_log_holds_no_secrets(self, hubcomm_fake: FakeHubSpot) -> None:
        oauth = hubcomm_fake.oauth_client
        form = {"grant_type": "refresh_token", **oauth}
        access = httpx.post(f"{hubcomm_fake.url}/oauth/v3/token", data=form).json()["access_token"]
        httpx.post(f"{hubcomm_fake.url}/oauth/v1/token", params={"client_secret": oauth["client_secret"]}, data=form)
        httpx.get(f"{hubcomm_fake.url}{API}/definitions", headers={"Authorization": f"Bearer {access}"})
        headers = {"Authorization": f"Bearer {hubcomm_fake.token}"}
        httpx.get(f"{hubcomm_fake.url}{API}/statuses/z%40x.com?channel=EMAIL", headers=headers)
        log = hubcomm_fake.request_log
        assert len(log) == 4
        text = json.dumps(log) + json.dumps(hubcomm_fake.counters)
        for secret in (hubcomm_fake.token, access, oauth["client_secret"], oauth["refresh_token"]):
            assert secret not in text
        assert log[1]["query"] == "client_secret=%2A%2A%2A"
        last = log[-1]
        assert set(last) == {
            "time",
            "method",
            "path",
            "query",
            "endpoint",
            "status",
            "outcome",
            "duration_ms",
            "n_inputs",
        }
        assert (last["path"], last["query"], last["status"], last["outcome"]) == (
            f"{API}/statuses/z%40x.com",
            "channel=EMAIL",
            200,
            "ok",
        )

    def test_counters_and_reset(self, hubcomm_fake: FakeHubSpot) -> None:
        headers = {"Authorization": f"Bearer {hubcomm_fake.token}"}
        inputs = [
            {"channel": "EMAIL", "statusState": "SUBSCRIBED", "subscriptionId": 101, "subscriberIdString": "a@x.com"}
        ]
        httpx.post(f"{hubcomm_fake.url}{API}/statuses/batch/write", json={"inputs": inputs * 2}, headers=headers)
        httpx.get(f"{hubcomm_fake.url}/nowhere")
        counters = hubcomm_fake.counters
        assert counters["ok"] == 1
        assert counters["not_found"] == 1
        assert counters["endpoint:batch_write"] == 1
        assert counters["writes_applied"] == 2
        assert hubcomm_fake.request_log[0]["n_inputs"] == 2
        hubcomm_fake.reset_counters()
        assert hubcomm_fake.counters == {}
        assert hubcomm_fake.request_log == []
        assert len(hubcomm_fake.snapshot()) == 1  # state is kept


class TestConnections:
    def test_json_form(self, hubcomm_fake: FakeHubSpot) -> None:
        conn = json.loads(hubcomm_fake.connection_json(max_retries=2))
        assert conn == {
            "conn_type": "hubcomm",
            "host": hubcomm_fake.url,
            "password": hubcomm_fake.token,
            "extra": {"max_retries": 2},
        }
        oauth = json.loads(hubcomm_fake.connection_json(auth="oauth"))
        assert "password" not in oauth
        assert oauth["extra"] == {"auth_type": "oauth", **hubcomm_fake.oauth_client}

    @pytest.mark.parametrize("auth", ["private_app", "oauth"])
    def test_uri_form_round_trips_through_airflow(self, hubcomm_fake: FakeHubSpot, auth: Any) -> None:
        from airflow.sdk import Connection

        parsed = Connection.from_uri(hubcomm_fake.connection_uri(auth=auth, timeout=5), conn_id="hubcomm_default")
        as_json = json.loads(hubcomm_fake.connection_json(auth=auth, timeout=5))
        assert parsed.conn_type == "hubcomm"
        assert parsed.host == hubcomm_fake.url
        assert (parsed.password or None) == as_json.get("password")
        assert parsed.extra_dejson == as_json["extra"]


class TestCli:
    def test_prints_url_and_connection_and_exits_on_sigterm(self, tmp_path: Path) -> None:
        ready, state = tmp_path / "ready", tmp_path / "state.json"
        cmd = [sys.executable, "-m", "airflow_provider_hubcomm.testing", "--ready-file", str(ready)]
        cmd += ["--state-file", str(state), "--requests-per-window", "50", "--seed", "3"]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            assert proc.stdout is not None
            url = proc.stdout.readline().strip()
            line = proc.stdout.readline().strip()
            assert url.startswith("http://127.0.0.1:")
            words = shlex.split(line)  # the line is ready to paste into a shell
            assert words[0] == "export"
            name, _, value = words[1].partition("=")
            assert name == "AIRFLOW_CONN_HUBCOMM_DEFAULT"
            conn = json.loads(value)
            assert conn["host"] == url
            deadline = time.monotonic() + 10
            while not ready.exists() and time.monotonic() < deadline:
                time.sleep(0.02)
            assert ready.read_text().strip() == url
            body = {"channel": "EMAIL", "statusState": "UNSUBSCRIBED", "subscriptionId": 103}
            headers = {"Authorization": f"Bearer {conn['password']}"}
            resp = httpx.post(f"{url}{API}/statuses/cli%40x.com", json=body, headers=headers)
            assert resp.headers["X-HubSpot-RateLimit-Max"] == "50"
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=10) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        dumped = json.loads(state.read_text())
        assert dumped["statuses"][0]["subscriberIdString"] == "cli@x.com"
        assert dumped["statuses"][0]["status"] == "UNSUBSCRIBED"
        assert dumped["counters"]["ok"] == 1

    def test_refuses_non_loopback_host(self) -> None:
        from airflow_provider_hubcomm.testing.__main__ import main

        with pytest.raises(SystemExit) as exc:
            main(["--host", "0.0.0.0"])
        assert exc.value.code == 2


def test_importing_fake_and_plugin_is_light() -> None:
    code = (
        "import sys, airflow_provider_hubcomm.testing.pytest_plugin, airflow_provider_hubcomm.testing;"
        "import airflow_provider_hubcomm.testing.__main__;"
        "print(sorted(m for m in ('airflow', 'httpx', 'pydantic', 'starlette', 'uvicorn') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_plugin_fixture_is_registered(hubcomm_fake: FakeHubSpot) -> None:
    assert hubcomm_fake.running
    headers = {"Authorization": f"Bearer {hubcomm_fake.token}"}
    assert httpx.get(f"{hubcomm_fake.url}{API}/definitions", headers=headers).status_code == 200
