"""Secrets masked even when a server echoes them (issue 17.3): errors, bodies, logs and parsed 2xx answers."""

from __future__ import annotations

import logging
import pickle

import httpx
import pytest

from airflow_provider_hubcomm.exceptions import (
    HubCommAPIError,
    HubCommAuthError,
    HubCommConnectionError,
    HubCommRequestRejectedError,
    HubCommServerError,
    HubCommUnconfirmedError,
)
from airflow_provider_hubcomm.hooks.hubcomm import HubCommHook
from airflow_provider_hubcomm.models import StatusUpdate, StatusWrite
from airflow_provider_hubcomm.redact import Redactor
from tests.hooks.conftest import CLIENT_SECRET, REFRESH_TOKEN, TOKEN, Recorder

ACCESS = "oat-echo-access-token-000111222"
UPDATE = StatusUpdate(statusState="UNSUBSCRIBED", subscriptionId=101)
WRITE = StatusWrite(subscriberIdString="a@b.co", statusState="UNSUBSCRIBED", subscriptionId=101)


def echo_headers(request: httpx.Request) -> str:
    """What a careless proxy puts in its error text: every request header, the form body too."""
    headers = "; ".join(f"{k}: {v}" for k, v in request.headers.items())
    return f"request headers were {headers}; body was {request.read().decode()}"


def hook_with(rec: Recorder) -> HubCommHook:
    transport = httpx.MockTransport(rec)
    return HubCommHook(transport=transport, async_transport=transport, max_retries=0)


def leaks(*texts: object, secrets: tuple[str, ...] = (TOKEN, CLIENT_SECRET, REFRESH_TOKEN, ACCESS)) -> list[str]:
    return [f"{s} in {str(t)[:80]!r}" for t in texts for s in secrets if s in str(t)]


def error_texts(err: HubCommAPIError) -> list[object]:
    revived = pickle.loads(pickle.dumps(err))
    return [str(err), repr(err), err.body, err.text, err.hubspot_message, str(revived), revived.body, err.url]


@pytest.mark.usefixtures("private_conn")
class TestPrivateAppEcho:
    def test_json_error_echoing_authorization(self, caplog: pytest.LogCaptureFixture) -> None:
        def respond(request: httpx.Request, n: int) -> httpx.Response:
            echo = echo_headers(request)
            body = {"category": "VALIDATION_ERROR", "message": echo, "context": {"headers": [echo]}, "token": TOKEN}
            return httpx.Response(400, json=body)

        caplog.set_level(logging.DEBUG)
        with pytest.raises(HubCommRequestRejectedError) as info:
            hook_with(Recorder(respond)).set_status("a@b.co", UPDATE)
        assert "request headers were" in str(info.value)  # the message itself is kept, only secrets go
        assert "***" in str(info.value)
        assert leaks(*error_texts(info.value), caplog.text) == []

    def test_non_json_error_echoing_a_bearer_token_of_any_case(self) -> None:
        def respond(request: httpx.Request, n: int) -> httpx.Response:
            text = f"<html>proxy: authorization=BEARER {TOKEN}, other bearer xyz-secret</html>"
            return httpx.Response(502, text=text)

        with pytest.raises(HubCommServerError) as info:
            hook_with(Recorder(respond)).get_statuses("a@b.co")
        assert leaks(*error_texts(info.value), secrets=(TOKEN, "xyz-secret")) == []

    def test_batch_errors_inside_a_2xx_answer(self) -> None:
        def respond(request: httpx.Request, n: int) -> httpx.Response:
            error = {
                "status": "error",
                "category": "VALIDATION_ERROR",
                "message": f"rejected, auth was Bearer {TOKEN}",
                "context": {"authorization": [f"Bearer {TOKEN}"], "raw": [TOKEN]},
            }
            return httpx.Response(200, json={"status": "COMPLETE", "results": [], "errors": [error], "numErrors": 1})

        answer = hook_with(Recorder(respond)).batch_write([WRITE])
        assert answer.num_errors == 1
        assert answer.errors[0].message == "rejected, auth was Bearer ***"
        assert leaks(answer.model_dump_json(), repr(answer)) == []

    def test_answer_without_secret_is_parsed_untouched(self) -> None:
        body = {"status": "COMPLETE", "results": [{"subscriptionId": 101, "status": "SUBSCRIBED", "note": "token=abc"}]}
        answer = hook_with(Recorder(lambda r, n: httpx.Response(200, json=body))).set_status("a@b.co", UPDATE)
        # no known secret and no "bearer" in the bytes: the fast path keeps the text as HubSpot sent it
        assert answer.results[0].model_extra == {"note": "token=abc"}

    def test_no_answer_message_is_redacted(self) -> None:
        def respond(request: httpx.Request, n: int) -> Exception:
            return httpx.ConnectError(f"proxy refused {request.headers['authorization']}")

        with pytest.raises(HubCommConnectionError) as info:
            hook_with(Recorder(respond)).get_statuses("a@b.co")
        assert "ConnectError: proxy refused Bearer ***" in str(info.value)
        assert leaks(str(info.value), repr(info.value)) == []

    def test_unconfirmed_write_message_is_redacted(self) -> None:
        def respond(request: httpx.Request, n: int) -> httpx.Response:
            return httpx.Response(200, json={"echo": request.headers["authorization"]})

        with pytest.raises(HubCommUnconfirmedError) as info:
            hook_with(Recorder(respond)).set_status("a@b.co", UPDATE)
        assert "confirmed no write" in str(info.value)
        assert leaks(*error_texts(info.value)) == []


@pytest.mark.usefixtures("oauth_conn")
class TestOAuthEcho:
    def test_token_endpoint_quoting_the_form(self, caplog: pytest.LogCaptureFixture) -> None:
        def respond(request: httpx.Request, n: int) -> httpx.Response:
            form = request.read().decode()
            return httpx.Response(400, json={"status": "BAD_REFRESH_TOKEN", "message": f"invalid grant: {form}"})

        caplog.set_level(logging.DEBUG)
        with pytest.raises(HubCommAuthError) as info:
            hook_with(Recorder(respond)).get_statuses("a@b.co")
        assert "OAuth refresh for connection 'hubcomm_default' failed" in str(info.value)
        assert "grant_type=refresh_token" in str(info.value)
        assert leaks(*error_texts(info.value), caplog.text) == []

    async def test_issued_access_token_echoed_bare(self) -> None:
        def respond(request: httpx.Request, n: int) -> httpx.Response:
            if request.url.path == "/oauth/v3/token":
                return httpx.Response(200, json={"access_token": ACCESS, "refresh_token": REFRESH_TOKEN})
            # the token without its "Bearer " prefix: only the redactor's list of known secrets catches it
            return httpx.Response(403, json={"category": "MISSING_SCOPES", "message": f"token {ACCESS} lacks scopes"})

        hook = hook_with(Recorder(respond))
        with pytest.raises(HubCommAuthError) as info:
            await hook.aget_statuses("a@b.co")
        await hook.aclose()
        assert info.value.missing_scopes
        assert leaks(*error_texts(info.value)) == []


class TestRedactor:
    def test_cheap_check_finds_known_secrets_and_bearer_words(self) -> None:
        redactor = Redactor([TOKEN])
        assert redactor.may_contain_secret(f'{{"x": "{TOKEN}"}}'.encode())
        assert redactor.may_contain_secret(b'{"x": "BeArEr abc"}')
        assert not redactor.may_contain_secret(b'{"status": "COMPLETE", "results": []}')
        redactor.add(ACCESS)
        assert redactor.may_contain_secret(ACCESS.encode())
