"""The hook's per-request fast paths (issue 18, "Faster client") send what httpx would have sent."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from pydantic import BaseModel, ValidationError

from airflow_provider_hubcomm.exceptions import HubCommResponseValidationError
from airflow_provider_hubcomm.hooks._exchange import parse_answer
from airflow_provider_hubcomm.hooks.hubcomm import HubCommHook
from airflow_provider_hubcomm.models import BatchWriteAck, BatchWriteResponse, StatusResponse
from tests.hooks.conftest import BASE, Recorder, ok_status, set_conn


@pytest.mark.usefixtures("private_conn")
def test_cookies_set_by_an_answer_are_not_kept() -> None:
    """HubSpot authenticates by token; the hook's jar drops ``Set-Cookie`` (and skips httpx's cookie work)."""

    def answer(request: httpx.Request, n: int) -> httpx.Response:
        response = ok_status()
        if n == 1:
            response.headers["Set-Cookie"] = "__cf_bm=abc123; Path=/"
        return response

    rec = Recorder(answer)
    hook = HubCommHook(transport=httpx.MockTransport(rec))
    for _ in range(3):
        hook.get_statuses("a@b.co")
    assert len(rec.requests) == 3
    assert all("cookie" not in r.headers for r in rec.requests)
    assert len(hook.client.cookies) == 0


@pytest.mark.usefixtures("private_conn")
def test_async_cookies_are_not_kept_either() -> None:
    def answer(request: httpx.Request, n: int) -> httpx.Response:
        response = ok_status()
        if n == 1:
            response.headers["Set-Cookie"] = "__cf_bm=xyz; Path=/"
        return response

    rec = Recorder(answer)
    hook = HubCommHook(async_transport=httpx.MockTransport(rec))

    async def twice() -> None:
        await hook.aget_statuses("a@b.co")
        await hook.aget_statuses("a@b.co")
        await hook.aclose()

    asyncio.run(twice())
    assert len(rec.requests) == 2
    assert "cookie" not in rec.requests[1].headers


@pytest.mark.parametrize("host", [BASE, f"{BASE}/prefix", f"{BASE}/prefix/"])
def test_request_urls_are_joined_as_httpx_joins_them(monkeypatch: pytest.MonkeyPatch, host: str) -> None:
    set_conn(monkeypatch, host=host, password="pat-na1-unit-test-secret-0001")
    rec = Recorder(lambda r, n: ok_status())
    hook = HubCommHook(transport=httpx.MockTransport(rec))
    hook.get_statuses("odd/user?x@b.co")
    hook.get_statuses("odd/user?x@b.co")
    expected = httpx.Client(base_url=host).build_request(
        "GET", "/communication-preferences/2026-03/statuses/odd%2Fuser%3Fx%40b.co", params={"channel": "EMAIL"}
    )
    assert [str(r.url) for r in rec.requests] == [str(expected.url)] * 2


class TestParseAnswer:
    """``parse_answer`` (``from_json`` + ``model_validate``) gives what ``model_validate_json`` gave."""

    ANSWER = (
        b'{"status":"COMPLETE","results":[{"channel":"EMAIL","status":"SUBSCRIBED","subscriberIdString":"a@b.co",'
        b'"subscriptionId":101,"timestamp":"2026-12-02T11:13:08.408Z","businessUnitId":0,"extraField":[1,{"x":null}]},'
        b'{"subscriberIdString":"c@d.co","subscriptionId":"102"}],"numErrors":1,"errors":[{"status":"error",'
        b'"category":"VALIDATION_ERROR","message":"no","context":{"subscriptionId":["103"]}}],'
        b'"requestedAt":"2026-12-02T11:13:08.400Z","links":null,"big":123456789012345678901234567890,"nan":NaN}'
    )

    @pytest.mark.parametrize("model", [BatchWriteAck, BatchWriteResponse, StatusResponse])
    def test_same_model_as_model_validate_json(self, model: type[BaseModel]) -> None:
        parsed = parse_answer(model, self.ANSWER)
        expected = model.model_validate_json(self.ANSWER)
        assert type(parsed) is type(expected)
        assert parsed.model_dump_json() == expected.model_dump_json()  # NaN != NaN: compare as JSON (null)
        assert parsed.model_extra is not None
        assert parsed.model_extra["big"] == 123456789012345678901234567890

    @pytest.mark.parametrize("body", [b"", b"{", b"<html>502</html>", b"\xff\xfe{}", b"[]", b"null", b'"x"'])
    def test_bad_bodies_raise_a_validation_error(self, body: bytes) -> None:
        with pytest.raises(ValidationError):
            BatchWriteAck.model_validate_json(body)
        with pytest.raises(ValidationError):
            parse_answer(BatchWriteAck, body)

    @pytest.mark.usefixtures("private_conn")
    @pytest.mark.parametrize("body", [b"<html>502 Bad Gateway</html>", b"[]"])
    def test_hook_maps_a_2xx_that_is_not_an_envelope(self, body: bytes) -> None:
        rec = Recorder(lambda r, n: httpx.Response(200, content=body, headers={"Content-Type": "application/json"}))
        hook = HubCommHook(transport=httpx.MockTransport(rec))
        with pytest.raises(HubCommResponseValidationError):
            hook.batch_write_serialized(b'{"inputs":[]}')
