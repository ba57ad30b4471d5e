from __future__ import annotations

import pickle

import httpx
import pytest

from airflow_provider_hubcomm.exceptions import (
    HubCommAPIError,
    HubCommAuthError,
    HubCommError,
    HubCommNotFoundError,
    HubCommRateLimitError,
    HubCommRequestRejectedError,
    HubCommServerError,
    HubCommUnconfirmedError,
    make_api_error,
    raise_for_response,
)


def response(status: int, **kwargs: object) -> httpx.Response:
    request = httpx.Request("POST", "https://api.hubapi.com/communication-preferences/v4/x?token=should-not-show")
    return httpx.Response(status, request=request, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, HubCommRequestRejectedError),
        (401, HubCommAuthError),
        (403, HubCommAuthError),
        (404, HubCommNotFoundError),
        (423, HubCommRequestRejectedError),
        (429, HubCommRateLimitError),
        (500, HubCommServerError),
        (503, HubCommServerError),
    ],
)
def test_mapping(status: int, cls: type[HubCommAPIError]) -> None:
    err = make_api_error(response(status, json={"message": "m", "correlationId": "c"}))
    assert type(err) is cls
    assert isinstance(err, HubCommError)
    assert err.status_code == status


def test_message_carries_hubspot_details_not_query() -> None:
    body = {
        "status": "error",
        "message": "Property values were not valid",
        "correlationId": "abc-123",
        "category": "VALIDATION_ERROR",
        "subCategory": "X.Y",
    }
    err = make_api_error(response(400, json=body))
    text = str(err)
    assert text.startswith("correlationId=abc-123 HTTP 400 category=VALIDATION_ERROR subCategory=X.Y")
    assert text.endswith(": Property values were not valid")
    assert "should-not-show" not in text


def test_non_json_body_and_header_correlation() -> None:
    err = make_api_error(response(502, content=b"<html>Bad gateway</html>", headers={"x-hubspot-correlation-id": "h"}))
    assert "correlationId=h HTTP 502" in str(err)
    assert "<html>Bad gateway" in str(err)


def test_pickle_round_trip_keeps_fields() -> None:
    err = make_api_error(response(429, json={"message": "slow down", "policyName": "TEN_SECONDLY_ROLLING"}))
    copy = pickle.loads(pickle.dumps(err))
    assert type(copy) is HubCommRateLimitError
    assert str(copy) == str(err)
    assert copy.policy_name == "TEN_SECONDLY_ROLLING"


def test_raise_for_response() -> None:
    raise_for_response(response(207, json={}))
    with pytest.raises(HubCommNotFoundError):
        raise_for_response(response(404, json={}))


def test_huge_url_and_message_are_clipped() -> None:
    request = httpx.Request("POST", "https://api.hubapi.com/x/" + "a" * 20_000)
    err = make_api_error(httpx.Response(400, request=request, json={"message": "m" * 5_000, "correlationId": "c"}))
    assert len(str(err)) < 1_300
    assert "(20025 characters)" in str(err)
    assert "correlationId=c HTTP 400" in str(err)


@pytest.mark.parametrize(
    ("body", "daily"),
    [
        ({"policyName": "DAILY", "category": "RATE_LIMITS"}, True),
        ({"policyName": "daily"}, True),
        ({"policyName": "TEN_SECONDLY_ROLLING"}, False),
        ({}, False),
    ],
)
def test_rate_limit_is_daily(body: dict[str, object], daily: bool) -> None:
    err = make_api_error(response(429, json=body))
    assert isinstance(err, HubCommRateLimitError)
    assert err.is_daily is daily
    assert pickle.loads(pickle.dumps(err)).is_daily is daily


@pytest.mark.parametrize(
    ("status", "category", "missing"),
    [(403, "MISSING_SCOPES", True), (403, "FORBIDDEN", False), (401, "MISSING_SCOPES", False)],
)
def test_auth_error_missing_scopes(status: int, category: str, missing: bool) -> None:
    err = make_api_error(response(status, json={"category": category, "message": "scopes"}))
    assert isinstance(err, HubCommAuthError)
    assert err.missing_scopes is missing


def test_redact_and_note_survive_pickle() -> None:
    body = {"message": "echo Bearer sekret-123", "context": {"h": ["sekret-123"]}}
    err = make_api_error(
        response(400, json=body, headers={"x-request-id": "sekret-123"}),
        redact=lambda text: text.replace("sekret-123", "***"),
        note="the run's deadline was reached",
    )
    revived = pickle.loads(pickle.dumps(err))
    for e in (err, revived):
        assert "sekret-123" not in f"{e} {e!r} {e.body} {e.correlation_id}"
        assert str(e).endswith("(the run's deadline was reached)")


def test_unconfirmed_is_a_response_validation_error() -> None:
    err = make_api_error(response(200, json={}), HubCommUnconfirmedError, note="confirmed no write")
    assert isinstance(err, HubCommUnconfirmedError)
    assert "HTTP 200" in str(err)
    assert "confirmed no write" in str(err)
