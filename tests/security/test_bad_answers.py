"""HubSpot answers that are not JSON, truncated, oddly shaped or missing fields end in typed, readable errors.

A tiny scripted HTTP server on 127.0.0.1 answers every request with one configured status, headers and body
(optionally cutting the body short of its ``Content-Length``). The hook must raise a
:class:`~airflow_provider_hubcomm.exceptions.HubCommError` subclass whose message carries the HTTP status and
the correlation id, never a raw ``httpx``/``pydantic``/``json`` exception; the batch engine must fail the
affected rows with that reason instead of aborting the run.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

import pytest

from airflow_provider_hubcomm.batch.engine import BatchWriteEngine
from airflow_provider_hubcomm.batch.options import BatchWriteOptions
from airflow_provider_hubcomm.exceptions import (
    HubCommAPIError,
    HubCommAuthError,
    HubCommConnectionError,
    HubCommError,
    HubCommNotFoundError,
    HubCommRateLimitError,
    HubCommRequestRejectedError,
    HubCommResponseValidationError,
    HubCommServerError,
)
from airflow_provider_hubcomm.hooks.hubcomm import HubCommHook

if TYPE_CHECKING:
    from pathlib import Path

TOKEN = "pat-bad-answers-token-0042"
WRITE = [
    {"subscriberIdString": "a@example.com", "subscriptionId": 101, "statusState": "UNSUBSCRIBED", "channel": "EMAIL"}
]
JSON = {"Content-Type": "application/json;charset=utf-8"}
HTML = {"Content-Type": "text/html"}


class Script:
    """The answer every request gets, and how many requests came."""

    def __init__(self) -> None:
        self.status = 200
        self.headers: dict[str, str] = {}
        self.body = b"{}"
        self.truncate_to: int | None = None
        self.hits = 0
        self.paths: list[str] = []
        self.lock = threading.Lock()
        #: Subscriptions ``GET …/definitions`` lists (200, JSON); ``None``: it gets the scripted answer too.
        self.definitions: tuple[int, ...] | None = None

    def set(
        self, status: int, body: bytes, headers: dict[str, str] | None = None, truncate_to: int | None = None
    ) -> None:
        self.status, self.body, self.headers, self.truncate_to = status, body, dict(headers or {}), truncate_to


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    script: Script

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        script = self.script
        with script.lock:
            script.hits += 1
            script.paths.append(self.path)
        if script.definitions is not None and self.command == "GET" and "/definitions" in self.path:
            self._definitions(script.definitions)
            return
        self.send_response(script.status)
        for name, value in script.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(script.body)))
        if script.truncate_to is not None:
            self.send_header("Connection", "close")
        self.end_headers()
        body = script.body if script.truncate_to is None else script.body[: script.truncate_to]
        self.wfile.write(body)
        self.wfile.flush()
        if script.truncate_to is not None:
            self.close_connection = True

    def _definitions(self, ids: tuple[int, ...]) -> None:
        results = [{"id": str(i), "name": f"Subscription {i}", "businessUnitId": 0, "isActive": True} for i in ids]
        body = json.dumps({"results": results}).encode()
        self.send_response(200)
        self.send_header("Content-Type", JSON["Content-Type"])
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()

    do_GET = do_POST = _answer

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[Script]:
    script = Script()
    handler = type("Handler", (_Handler,), {"script": script})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    conn = {"conn_type": "hubcomm", "host": f"http://127.0.0.1:{httpd.server_address[1]}", "password": TOKEN}
    monkeypatch.setenv("AIRFLOW_CONN_HUBCOMM_DEFAULT", json.dumps(conn))
    yield script
    httpd.shutdown()
    httpd.server_close()


def hook() -> HubCommHook:
    return HubCommHook(retry_sleep=lambda _s: None)


def headers(correlation: str, base: dict[str, str] | None = None) -> dict[str, str]:
    return {**(base or JSON), "X-HubSpot-Correlation-Id": correlation}


def assert_readable(err: BaseException, status: int | None, correlation: str | None) -> None:
    """Typed, and the one-line message says what happened; nothing secret, nothing huge."""
    assert isinstance(err, HubCommError), f"untyped {type(err).__name__}: {err}"
    text = str(err)
    if status is not None:
        assert isinstance(err, HubCommAPIError)
        assert err.status_code == status
        assert f"HTTP {status}" in text
    if correlation is not None:
        assert err.correlation_id == correlation  # type: ignore[attr-defined]
        assert f"correlationId={correlation}" in text
    assert TOKEN not in text
    assert TOKEN not in repr(err)
    assert len(text) < 2_000


SUCCESS_CASES = {
    "HTML page": (b"<html><body><h1>502 Bad Gateway</h1></body></html>", HTML, "non-JSON body: '<html>"),
    "truncated JSON": (b'{"status":"COMPLETE","results":[{"subscriberIdStr', JSON, "non-JSON body"),
    "empty body": (b"", JSON, "HTTP 200"),
    "not UTF-8": (b"\xff\xfe\x00garbage", JSON, "non-JSON body"),
    "JSON array": (b"[]", JSON, "HTTP 200"),
    "JSON string": (b'"COMPLETE"', JSON, "HTTP 200"),
    "results not a list": (b'{"status":"COMPLETE","results":"oops"}', JSON, "HTTP 200"),
    "result not an object": (b'{"status":"COMPLETE","results":[42]}', JSON, "HTTP 200"),
    "errors of the wrong type": (b'{"status":"COMPLETE","results":[],"errors":{"a":1}}', JSON, "HTTP 200"),
}


@pytest.mark.parametrize("case", list(SUCCESS_CASES))
def test_unusable_2xx_answer_is_a_typed_error(server: Script, case: str) -> None:
    body, base, expected = SUCCESS_CASES[case]
    server.set(200, body, headers(f"corr-{len(body)}", base))
    h = hook()
    with pytest.raises(HubCommError) as info:
        h.batch_write(WRITE)
    assert_readable(info.value, 200, f"corr-{len(body)}")
    assert isinstance(info.value, HubCommResponseValidationError)
    assert expected in str(info.value)
    assert server.hits == 1
    assert h.retry_policy.retries == 0


def test_answers_missing_fields_do_not_crash(server: Script) -> None:
    server.set(200, b"{}", headers("corr-empty-object"))
    assert hook().batch_write(WRITE).results == []
    assert hook().get_statuses("a@example.com").results == []
    assert hook().get_definitions().results == []
    server.set(200, b'{"results":[{}],"errors":[{}],"numErrors":"1"}', headers("corr-partial"))
    answer = hook().batch_write(WRITE)
    assert answer.results[0].subscriber_id_string is None
    assert answer.errors[0].message is None


ERROR_CASES = [
    # status, body, content type, error class, attempts (1 + retries)
    (500, b"<html>Internal Server Error</html>", HTML, HubCommServerError, 6),
    (502, b"", JSON, HubCommServerError, 6),
    (503, b"Service Unavailable", {"Content-Type": "text/plain"}, HubCommServerError, 6),
    (429, b"slow down", {"Content-Type": "text/plain"}, HubCommRateLimitError, 6),
    (401, b"<html>Unauthorized</html>", HTML, HubCommAuthError, 1),
    (403, b'{"status":"error","category":7,"errors":"x","context":[1]}', JSON, HubCommAuthError, 1),
    (404, b"[1,2,3]", JSON, HubCommNotFoundError, 1),
    (400, b'{"status":"error","message":null,"correlationId":null}', JSON, HubCommRequestRejectedError, 1),
    (302, b"", {"Location": "http://127.0.0.1:9/elsewhere"}, HubCommRequestRejectedError, 1),
]


@pytest.mark.parametrize(("status", "body", "base", "cls", "attempts"), ERROR_CASES)
def test_error_answers_are_typed_with_status_and_correlation(
    server: Script, status: int, body: bytes, base: dict[str, str], cls: type[Exception], attempts: int
) -> None:
    server.set(status, body, headers(f"corr-{status}", base))
    with pytest.raises(HubCommError) as info:
        hook().batch_write(WRITE)
    assert type(info.value) is cls
    assert_readable(info.value, status, f"corr-{status}")
    assert server.hits == attempts


def test_correlation_id_from_the_body_wins(server: Script) -> None:
    server.set(500, b'{"message":"boom","correlationId":"c-from-body","category":"INTERNAL"}', headers("c-header"))
    with pytest.raises(HubCommServerError) as info:
        hook().get_statuses("a@example.com")
    assert_readable(info.value, 500, "c-from-body")
    assert "boom" in str(info.value)


def test_body_cut_short_is_retried_then_a_typed_connection_error(server: Script) -> None:
    body = json.dumps({"status": "COMPLETE", "results": [{"subscriptionId": 101}] * 50}).encode()
    server.set(200, body, headers("corr-cut"), truncate_to=40)
    h = hook()
    with pytest.raises(HubCommConnectionError) as info:
        h.batch_write(WRITE)
    assert_readable(info.value, None, None)
    assert "gave no usable answer (retry budget 5)" in str(info.value)
    assert "RemoteProtocolError" in str(info.value)
    assert "/statuses/batch/write" in str(info.value)
    assert server.hits == 6


def test_corrupt_compressed_body_is_a_typed_error(server: Script) -> None:
    """Regression (fixed in 482976d): a body whose Content-Encoding does not decode is retried, then typed.

    It is treated like a connection that broke mid-answer (a proxy's corruption), so the error is a
    :class:`HubCommConnectionError` naming the request and the decoding failure (no HTTP status: the answer
    was never usable).
    """
    server.set(200, b"this is not gzip", headers("corr-gzip", {**JSON, "Content-Encoding": "gzip"}))
    with pytest.raises(HubCommConnectionError) as info:
        hook().batch_write(WRITE)
    assert_readable(info.value, None, None)
    assert "DecodingError" in str(info.value)
    assert "/statuses/batch/write" in str(info.value)
    assert server.hits == 6


def test_token_endpoint_answers_are_typed(server: Script, monkeypatch: pytest.MonkeyPatch) -> None:
    conn = json.loads(os.environ["AIRFLOW_CONN_HUBCOMM_DEFAULT"])
    conn.pop("password")
    conn["extra"] = {"auth_type": "oauth", "client_id": "cid", "client_secret": "cs-0042", "refresh_token": "rt-0042"}
    monkeypatch.setenv("AIRFLOW_CONN_HUBCOMM_DEFAULT", json.dumps(conn))
    server.set(200, b"<html>login page</html>", headers("corr-token-html", HTML))
    with pytest.raises(HubCommError) as info:
        hook().get_definitions()
    assert_readable(info.value, 200, "corr-token-html")
    server.set(500, b"oops", headers("corr-token-500", {"Content-Type": "text/plain"}))
    with pytest.raises(HubCommAuthError) as auth:
        hook().get_definitions()
    assert_readable(auth.value, 500, None)
    assert "correlationId=corr-token-500" in str(auth.value)
    assert "OAuth refresh for connection 'hubcomm_default' failed" in str(auth.value)
    server.set(200, b'{"token_type": "bearer", "expires_in": 1800}', headers("corr-token-missing"))  # no token
    with pytest.raises(HubCommError) as missing:
        hook().get_definitions()
    assert_readable(missing.value, 200, "corr-token-missing")
    for err in (info.value, auth.value, missing.value):
        assert "cs-0042" not in str(err)
        assert "rt-0042" not in str(err)


# -- the batch engine: bad answers fail rows with a reason, they do not abort the run ---------------------


def rows(n: int) -> list[dict[str, Any]]:
    return [
        {"subscriberIdString": f"u{i}@example.com", "subscriptionId": 101, "statusState": "UNSUBSCRIBED"}
        for i in range(n)
    ]


def failed_lines(summary: dict[str, Any]) -> list[dict[str, Any]]:
    with open(summary["failed_rows_path"], encoding="utf-8") as fh:
        return [json.loads(line) for line in fh]


@pytest.mark.parametrize(
    ("status", "body", "base"),
    [(200, b"<html>proxy error</html>", HTML), (200, b'{"results": "oops"}', JSON), (500, b"", JSON)],
)
def test_engine_fails_rows_with_status_and_correlation(
    server: Script, tmp_path: Path, status: int, body: bytes, base: dict[str, str]
) -> None:
    server.set(status, body, headers("corr-engine", base))
    summary = BatchWriteEngine(hook(), BatchWriteOptions(batch_size=10, output_dir=str(tmp_path))).run(rows(25))
    assert (summary["written"], summary["failed"]) == (0, 25)
    lines = failed_lines(summary)
    assert len(lines) == 25
    assert {line["correlationId"] for line in lines} == {"corr-engine"}
    assert all(f"HTTP {status}" in f"{line['category']} {line['message']}" for line in lines)


def test_engine_answer_without_results_fails_rows_truthfully(server: Script, tmp_path: Path) -> None:
    server.set(200, b'{"status": "COMPLETE"}', headers("corr-no-results"))
    server.definitions = (101,)  # the preflight sees 101 defined; only the write answer lacks results
    summary = BatchWriteEngine(hook(), BatchWriteOptions(output_dir=str(tmp_path))).run(rows(5))
    assert (summary["written"], summary["failed"]) == (0, 5)
    assert [p.partition("?")[0].rsplit("/", 1)[-1] for p in server.paths] == ["definitions", "write"]
    assert {line["message"] for line in failed_lines(summary)} == {"missing from HubSpot's results"}


def test_engine_answer_without_results_keeps_the_correlation_id(server: Script, tmp_path: Path) -> None:
    """Regression (fixed in 0a7dacc): rows missing from a 2xx answer keep the answer's correlation id."""
    server.set(200, b'{"status": "COMPLETE"}', headers("corr-no-results"))
    server.definitions = (101,)
    summary = BatchWriteEngine(hook(), BatchWriteOptions(output_dir=str(tmp_path))).run(rows(5))
    assert {line["correlationId"] for line in failed_lines(summary)} == {"corr-no-results"}


def test_engine_survives_a_corrupt_compressed_answer(server: Script, tmp_path: Path) -> None:
    """Regression (fixed in 482976d): one corrupt answer fails its chunk, it does not abort the run."""
    server.set(200, b"this is not gzip", headers("corr-gzip", {**JSON, "Content-Encoding": "gzip"}))
    summary = BatchWriteEngine(hook(), BatchWriteOptions(batch_size=10, output_dir=str(tmp_path))).run(rows(25))
    assert (summary["written"], summary["failed"]) == (0, 25)


def test_token_endpoint_error_keeps_the_correlation_id_attribute(
    server: Script, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Regression (fixed in 0a7dacc): token-endpoint errors keep the header's correlation id as an attribute."""
    conn = json.loads(os.environ["AIRFLOW_CONN_HUBCOMM_DEFAULT"])
    conn.pop("password")
    conn["extra"] = {"auth_type": "oauth", "client_id": "cid", "client_secret": "cs-0042", "refresh_token": "rt-0042"}
    monkeypatch.setenv("AIRFLOW_CONN_HUBCOMM_DEFAULT", json.dumps(conn))
    server.set(500, b"oops", headers("corr-token-500", {"Content-Type": "text/plain"}))
    with pytest.raises(HubCommAuthError) as auth:
        hook().get_definitions()
    assert auth.value.correlation_id == "corr-token-500"
