"""Deadlines that hold (issue 17.4): a total time per attempt, a run deadline, a short connection test."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from airflow_provider_hubcomm.exceptions import HubCommConnectionError, HubCommRateLimitError
from airflow_provider_hubcomm.hooks import hubcomm as hubcomm_module
from airflow_provider_hubcomm.hooks.hubcomm import HubCommHook
from tests.hooks.conftest import TOKEN, Recorder, ok_status, set_conn

#: Generous bound for "fails within a few seconds" on a loaded 2-core machine (the drip lasts ~40 s).
QUICK = 12.0
JSON_BODY = b'{"status": "COMPLETE", "results": [], "pad": "' + b"x" * 200 + b'"}'


class DripServer:
    """A TCP server on 127.0.0.1 that answers every request one byte every ``interval`` seconds.

    :param where: ``"headers"`` drips the whole answer; ``"body"`` sends the headers at once, then drips the body.
    """

    def __init__(self, where: str, interval: float = 0.5) -> None:
        self.where = where
        self.interval = interval
        self.connections = 0
        self._stop = threading.Event()
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(8)
        self._sock.settimeout(0.1)
        self.port = self._sock.getsockname()[1]
        self._threads: list[threading.Thread] = []
        self._accept = threading.Thread(target=self._serve, name="drip-accept", daemon=True)
        self._accept.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                continue
            self.connections += 1
            worker = threading.Thread(target=self._drip, args=(conn,), daemon=True)
            self._threads.append(worker)
            worker.start()

    def _drip(self, conn: socket.socket) -> None:
        head = f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(JSON_BODY)}\r\n\r\n"
        with conn:
            conn.settimeout(2)
            try:
                conn.recv(65536)
                if self.where == "body":
                    conn.sendall(head.encode())
                    payload = JSON_BODY
                else:
                    payload = head.encode() + JSON_BODY
                for i in range(len(payload)):
                    if self._stop.wait(self.interval):
                        return
                    conn.sendall(payload[i : i + 1])
            except OSError:
                return

    def close(self) -> None:
        self._stop.set()
        self._sock.close()
        self._accept.join(5)
        for worker in self._threads:
            worker.join(5)


@pytest.fixture(params=["headers", "body"])
def drip(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[DripServer]:
    server = DripServer(request.param)
    set_conn(monkeypatch, host=f"http://127.0.0.1:{server.port}", password=TOKEN)
    yield server
    server.close()


class TestAttemptDeadline:
    def test_sync_timeout_bounds_a_dripping_answer(self, drip: DripServer) -> None:
        hook = HubCommHook(timeout=2, max_retries=0)
        start = time.monotonic()
        with pytest.raises(HubCommConnectionError, match="Timeout"):
            hook.get_statuses("a@b.co")
        elapsed = time.monotonic() - start
        hook.close()
        assert 1.5 <= elapsed < QUICK
        assert drip.connections == 1

    async def test_async_timeout_bounds_a_dripping_answer(self, drip: DripServer) -> None:
        hook = HubCommHook(timeout=2, max_retries=0)
        start = time.monotonic()
        with pytest.raises(HubCommConnectionError, match=r"AttemptDeadlineExceeded: GET \S+ did not complete within"):
            await hook.aget_statuses("a@b.co")
        elapsed = time.monotonic() - start
        await hook.aclose()
        assert 1.5 <= elapsed < QUICK

    def test_timed_out_attempt_is_retried(self, drip: DripServer) -> None:
        hook = HubCommHook(timeout=1, max_retries=1, retry_sleep=lambda _s: None)
        start = time.monotonic()
        with pytest.raises(HubCommConnectionError, match=r"retry budget 1"):
            hook.get_statuses("a@b.co")
        hook.close()
        assert time.monotonic() - start < QUICK
        assert drip.connections == 2
        assert hook.counters()["retries"] == 1

    def test_run_deadline_shortens_the_attempt(self, drip: DripServer) -> None:
        hook = HubCommHook(timeout=60, max_retries=5, deadline=time.time() + 2, retry_sleep=lambda _s: None)
        start = time.monotonic()
        with pytest.raises(HubCommConnectionError, match="deadline was reached"):
            hook.get_statuses("a@b.co")
        hook.close()
        assert time.monotonic() - start < QUICK

    def test_connection_test_is_one_short_try(self, drip: DripServer, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(hubcomm_module, "TEST_CONNECTION_DEADLINE", 2.0)
        hook = HubCommHook(timeout=60)  # max_retries 5 by default: the test must not use them
        start = time.monotonic()
        ok, message = hook.test_connection()
        assert not ok
        assert "Timeout" in message
        assert time.monotonic() - start < QUICK
        assert drip.connections == 1
        assert hook.retry_policy.max_retries == 5  # restored for later use
        assert hook.deadline is None


@pytest.mark.usefixtures("private_conn")
class TestRunDeadline:
    def test_retry_after_past_the_deadline_gives_up_at_once(self) -> None:
        rec = Recorder(lambda r, n: httpx.Response(429, headers={"Retry-After": "60"}, json={"message": "slow down"}))
        slept: list[float] = []
        hook = HubCommHook(
            transport=httpx.MockTransport(rec), deadline=time.time() + 3, retry_sleep=slept.append, max_retries=5
        )
        start = time.monotonic()
        with pytest.raises(HubCommRateLimitError, match="deadline was reached") as info:
            hook.get_statuses("a@b.co")
        assert time.monotonic() - start < 2.0
        assert len(rec.requests) == 1
        assert slept == []
        assert info.value.status_code == 429

    def test_backoff_that_fits_is_still_retried(self) -> None:
        rec = Recorder(lambda r, n: httpx.Response(503) if n == 1 else ok_status())
        slept: list[float] = []
        hook = HubCommHook(transport=httpx.MockTransport(rec), deadline=time.time() + 60, retry_sleep=slept.append)
        assert hook.get_statuses("a@b.co").results
        assert len(rec.requests) == 2
        assert len(slept) == 1

    def test_past_deadline_sends_nothing(self) -> None:
        rec = Recorder(lambda r, n: ok_status())
        hook = HubCommHook(transport=httpx.MockTransport(rec), deadline=time.time() - 1, retry_sleep=lambda _s: None)
        with pytest.raises(HubCommConnectionError, match="deadline was reached"):
            hook.get_statuses("a@b.co")
        assert rec.requests == []

    async def test_async_retry_after_past_the_deadline_gives_up_at_once(self) -> None:
        rec = Recorder(lambda r, n: httpx.Response(429, headers={"Retry-After": "60"}, json={"message": "slow"}))
        slept: list[float] = []

        async def asleep(seconds: float) -> None:
            slept.append(seconds)

        hook = HubCommHook(
            async_transport=httpx.MockTransport(rec), deadline=time.time() + 3, retry_asleep=asleep, max_retries=5
        )
        with pytest.raises(HubCommRateLimitError, match="deadline was reached"):
            await hook.aget_statuses("a@b.co")
        await hook.aclose()
        assert len(rec.requests) == 1
        assert slept == []

    def test_deadline_is_json_friendly_and_settable(self) -> None:
        hook = HubCommHook(deadline=1_900_000_000.5)
        assert hook.deadline == 1_900_000_000.5
        hook.deadline = None
        assert hook.deadline is None


def test_refused_port_connection_test_answers_without_retrying(monkeypatch: pytest.MonkeyPatch) -> None:
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()  # nothing listens there now
    set_conn(monkeypatch, host=f"http://127.0.0.1:{port}", password=TOKEN)
    slept: list[float] = []
    hook = HubCommHook(retry_sleep=slept.append)
    ok, message = hook.test_connection()
    assert not ok
    assert "ConnectError" in message
    assert slept == []  # one try, no backoff
