"""Every answer of the bundled fake follows HubSpot's published contract (schemas in :mod:`.schemas`).

Each case sends one request to a fresh fake and validates the answer against the schema the spec declares
for that endpoint and status: the 2xx envelopes and records, ``Error`` for error statuses, the rate-limit
body for 429s. A 2xx status the spec does not declare for the endpoint fails the test.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from tests.contract import schemas
from tests.contract._check import assert_valid, path_of

if TYPE_CHECKING:
    from airflow_provider_hubcomm.testing import FakeHubSpot

BRANDS = [101, 102, {"id": 201, "name": "Brand one", "businessUnitId": 1}, {"id": 103, "isActive": False}]
BASIS: dict[str, Any] = {"legalBasis": "CONSENT_WITH_NOTICE", "legalBasisExplanation": "Ticked the box"}


def _write(sub_id: int = 101, state: str = "SUBSCRIBED", **extra: Any) -> dict[str, Any]:
    return {"channel": "EMAIL", "statusState": state, "subscriptionId": sub_id, **extra}


def _item(subscriber: str, sub_id: int = 101, **extra: Any) -> dict[str, Any]:
    return {**_write(sub_id, **extra), "subscriberIdString": subscriber}


#: One valid request per endpoint: (subscriber for the path, query, JSON body).
VALID: dict[str, tuple[str, dict[str, str], Any]] = {
    "definitions": ("", {}, None),
    "get_statuses": ("a@x.com", {"channel": "EMAIL"}, None),
    "set_status": ("a@x.com", {}, _write(**BASIS)),
    "get_unsubscribe_all": ("a@x.com", {"channel": "EMAIL"}, None),
    "unsubscribe_all": ("a@x.com", {"channel": "EMAIL", "verbose": "true"}, None),
    "batch_read": ("", {"channel": "EMAIL"}, {"inputs": ["a@x.com", "b@x.com"]}),
    "batch_write": ("", {}, {"inputs": [_item("a@x.com", **BASIS), _item("b@x.com", 102, state="UNSUBSCRIBED")]}),
    "batch_unsubscribe_all": ("", {"channel": "EMAIL", "verbose": "true"}, {"inputs": ["a@x.com"]}),
    "batch_unsubscribe_all_read": ("", {"channel": "EMAIL"}, {"inputs": ["a@x.com"]}),
}
BATCH = ("batch_read", "batch_write", "batch_unsubscribe_all", "batch_unsubscribe_all_read")


@dataclass
class Case:
    """One request to a fresh fake and the status the contract (or the knob) makes us expect."""

    endpoint: str
    expect: int
    subscriber: str = "a@x.com"
    query: dict[str, str] = field(default_factory=dict)
    body: Any = None
    knobs: dict[str, Any] = field(default_factory=dict)
    setup: Callable[[httpx.Client], None] | None = None
    token: str | None = None
    warm_up: bool = False


def _opt_out(api: httpx.Client) -> None:
    for bu in ("0", "1"):
        resp = api.post(path_of("unsubscribe_all"), params={"channel": "EMAIL", "businessUnitId": bu})
        assert resp.status_code == 200


def valid(endpoint: str, expect: int = 200, **kw: Any) -> Case:
    subscriber, query, body = VALID[endpoint]
    return Case(endpoint, expect, subscriber or "a@x.com", {**query, **kw.pop("query", {})}, body, **kw)


CASES: dict[str, Case] = {
    # -- success -----------------------------------------------------------------------------------------
    **{f"{name}-ok": valid(name) for name in VALID},
    "definitions-brand": valid("definitions", query={"businessUnitId": "1"}),
    "definitions-translations": valid("definitions", query={"includeTranslations": "true"}),
    "definitions-lenient-brands": valid("definitions", knobs={"strict_brands": False}),
    "get_statuses-brand": valid("get_statuses", query={"businessUnitId": "1"}),
    "get_statuses-after-write": valid("get_statuses", setup=lambda api: _opt_out(api)),
    "set_status-no-basis": Case("set_status", 200, body=_write()),
    "set_status-resubscribe": Case("set_status", 200, body=_write(**BASIS), setup=lambda api: _opt_out(api)),
    "get_unsubscribe_all-opted-out": valid("get_unsubscribe_all", setup=_opt_out),
    "unsubscribe_all-quiet": Case("unsubscribe_all", 200, query={"channel": "EMAIL"}),
    "unsubscribe_all-brand": valid("unsubscribe_all", query={"businessUnitId": "1"}),
    "batch_read-brand": valid("batch_read", query={"businessUnitId": "1"}),
    "batch_write-pending": valid("batch_write", knobs={"batch_mode": "delayed"}),
    "batch_write-canceled": valid("batch_write", knobs={"batch_mode": "cancel"}),
    "batch_write-after-opt-out": valid("batch_write", setup=_opt_out),
    "batch_unsubscribe_all_read-opted-out": valid("batch_unsubscribe_all_read", setup=_opt_out),
    "batch_unsubscribe_all_read-brand": valid(
        "batch_unsubscribe_all_read", setup=_opt_out, query={"businessUnitId": "1"}
    ),
    # -- per-input errors --------------------------------------------------------------------------------
    "batch_read-partial": Case("batch_read", 207, query={"channel": "EMAIL"}, body={"inputs": ["a@x.com", "nope"]}),
    "batch_write-partial": Case(
        "batch_write",
        200,
        body={"inputs": [_item("a@x.com"), _item("b@x.com", 999), _item("nope"), _item("c@x.com", 103)]},
    ),
    "batch_write-partial-404": Case(
        "batch_write", 200, body={"inputs": [_item("b@x.com", 999)]}, knobs={"unknown_subscription_status": 404}
    ),
    "batch_write-partial-legal-basis": Case(
        "batch_write",
        200,
        body={"inputs": [_item("a@x.com", **BASIS), _item("b@x.com")]},
        knobs={"require_legal_basis": True},
    ),
    "batch_write-partial-pending": Case(
        "batch_write", 200, body={"inputs": [_item("a@x.com"), _item("nope")]}, knobs={"batch_mode": "delayed"}
    ),
    "batch_unsubscribe_all-partial": Case(
        "batch_unsubscribe_all", 200, query={"channel": "EMAIL"}, body={"inputs": ["a@x.com", "nope"]}
    ),
    "batch_unsubscribe_all_read-partial": Case(
        "batch_unsubscribe_all_read", 207, query={"channel": "EMAIL"}, body={"inputs": ["a@x.com", "nope"]}
    ),
    # -- whole-request errors ----------------------------------------------------------------------------
    "get_statuses-no-channel": Case("get_statuses", 400),
    "get_statuses-not-an-address": Case("get_statuses", 400, subscriber="nope", query={"channel": "EMAIL"}),
    "get_statuses-bad-brand": Case("get_statuses", 400, query={"channel": "EMAIL", "businessUnitId": "x"}),
    "set_status-unknown-subscription": Case("set_status", 400, body=_write(999)),
    "set_status-unknown-subscription-404": Case(
        "set_status", 404, body=_write(999), knobs={"unknown_subscription_status": 404}
    ),
    "set_status-inactive": Case("set_status", 400, body=_write(103)),
    "set_status-bad-enum": Case("set_status", 400, body=_write(state="MAYBE")),
    "set_status-no-body": Case("set_status", 400),
    "set_status-legal-basis-required": Case("set_status", 400, body=_write(), knobs={"require_legal_basis": True}),
    "unsubscribe_all-no-channel": Case("unsubscribe_all", 400),
    "batch_read-no-inputs": Case("batch_read", 400, query={"channel": "EMAIL"}, body={"items": []}),
    "batch_write-bad-json": Case("batch_write", 400, body=b'{"inputs": ['),
    "batch_write-too-large": valid("batch_write", 400, knobs={"max_batch_size": 1}),
    "unknown-version": Case("definitions", 404, knobs={"api_versions": ("v4",)}),
    # -- modes, every endpoint ---------------------------------------------------------------------------
    **{f"{name}-401": valid(name, 401, token="not-a-token") for name in VALID},
    **{f"{name}-5xx": valid(name, 500, knobs={"error_rate_5xx": 1.0}) for name in VALID},
    **{f"{name}-429-storm": valid(name, 429, knobs={"error_rate_429": 1.0}) for name in VALID},
    **{f"{name}-429-window": valid(name, 429, knobs={"requests_per_window": 1}, warm_up=True) for name in VALID},
    **{f"{name}-429-daily": valid(name, 429, knobs={"daily_limit": 1}, warm_up=True) for name in VALID},
    **{
        f"{name}-echo": valid(name, 500, knobs={"error_rate_5xx": 1.0, "echo_secrets": True}, token=None)
        for name in VALID
    },
    **{f"{name}-403-scopes": valid(name, 403, knobs={"batch_scopes": False}) for name in BATCH},
    **{f"{name}-drip": valid(name, knobs={"drip_interval": 0.0005}) for name in ("set_status", "batch_read")},
}


def _send(fake: FakeHubSpot, case: Case, api: httpx.Client) -> httpx.Response:
    method = schemas.ENDPOINTS[case.endpoint][0]
    prefix = "/communication-preferences/2026-03"
    url = path_of(case.endpoint, case.subscriber, prefix)
    headers = {"Authorization": f"Bearer {case.token or fake.token}"}
    if isinstance(case.body, bytes):
        return api.request(method, url, params=case.query, content=case.body, headers=headers)
    return api.request(method, url, params=case.query, json=case.body, headers=headers)


def check_answer(endpoint: str, resp: httpx.Response) -> None:
    """Validate one answer against the schema the contract declares for its endpoint and status.

    :param endpoint: the endpoint's name.
    :param resp: the answer.
    """
    status = resp.status_code
    declared = schemas.SUCCESS[endpoint]
    if 200 <= status < 300:
        assert status in declared, f"{endpoint} answered {status}; the spec declares only {sorted(declared)}"
        assert_valid(resp.json(), declared[status], f"{endpoint} {status}")
    elif status == 429:
        assert_valid(resp.json(), schemas.RATE_LIMIT_ERROR, f"{endpoint} 429")
    else:
        assert resp.headers["Content-Type"].startswith("application/json")
        assert_valid(resp.json(), schemas.ERROR, f"{endpoint} {status}")


@pytest.mark.parametrize("name", sorted(CASES))
def test_answer_follows_the_contract(name: str, hubcomm_fake_factory: Any) -> None:
    case = CASES[name]
    fake = hubcomm_fake_factory(subscriptions=BRANDS, **case.knobs)
    with httpx.Client(base_url=fake.url, timeout=10) as api:
        if case.setup is not None:
            case.setup(api_with_token(api, fake))
        if case.warm_up:
            assert _send(fake, case, api).status_code < 300
        resp = _send(fake, case, api)
    if case.expect == 500:  # any injected 5xx
        assert resp.status_code in (500, 502, 503, 504), resp.text
    else:
        assert resp.status_code == case.expect, resp.text
    check_answer(case.endpoint, resp)


def api_with_token(api: httpx.Client, fake: FakeHubSpot) -> httpx.Client:
    """Return ``api`` with the fake's private-app token set (for set-up calls).

    :param api: the test's client.
    :param fake: the fake it talks to.
    """
    api.headers["Authorization"] = f"Bearer {fake.token}"
    return api


def test_partial_errors_carry_standard_error_fields(hubcomm_fake_factory: Any) -> None:
    """Beyond the schema: each per-input error names its input in ``context``, as the provider relies on."""
    fake = hubcomm_fake_factory(subscriptions=BRANDS)
    inputs = [_item("a@x.com"), _item("b@x.com", 999), _item("nope", 101)]
    with httpx.Client(base_url=fake.url, headers={"Authorization": f"Bearer {fake.token}"}) as api:
        body = api.post(path_of("batch_write"), json={"inputs": inputs}).json()
    assert body["numErrors"] == len(body["errors"]) == 2
    contexts = [e["context"] for e in body["errors"]]
    assert contexts == [
        {"subscriberIdString": ["b@x.com"], "subscriptionId": ["999"]},
        {"subscriberIdString": ["nope"], "subscriptionId": ["101"]},
    ]


def test_html_5xx_is_outside_the_contract_on_purpose(hubcomm_fake_factory: Any) -> None:
    """``html_5xx`` models a load balancer, not HubSpot: the page is no ``Error`` body (clients must cope)."""
    fake = hubcomm_fake_factory(error_rate_5xx=1.0, html_5xx=True)
    resp = httpx.get(f"{fake.url}{path_of('definitions')}", headers={"Authorization": f"Bearer {fake.token}"})
    assert resp.status_code in (500, 502, 503, 504)
    assert resp.headers["Content-Type"].startswith("text/html")


@pytest.mark.parametrize("partial_status", [207])
def test_old_partial_status_knob_is_the_only_undeclared_2xx(hubcomm_fake_factory: Any, partial_status: int) -> None:
    """``partial_status=207`` reproduces the old assumption; its body still has the declared 200 shape."""
    fake = hubcomm_fake_factory(partial_status=partial_status)
    with httpx.Client(base_url=fake.url, headers={"Authorization": f"Bearer {fake.token}"}) as api:
        resp = api.post(path_of("batch_write"), json={"inputs": [_item("a@x.com"), _item("b@x.com", 999)]})
    assert resp.status_code == 207
    assert 207 not in schemas.SUCCESS["batch_write"]
    assert_valid(resp.json(), schemas.SUCCESS["batch_write"][200], "batch_write 207 (old behaviour knob)")


class TestTokenEndpoint:
    def test_grant_and_refusal(self, hubcomm_fake: FakeHubSpot) -> None:
        form = {"grant_type": "refresh_token", **hubcomm_fake.oauth_client}
        granted = httpx.post(f"{hubcomm_fake.url}/oauth/v3/token", data=form)
        assert granted.status_code == 200
        assert_valid(granted.json(), schemas.ACCESS_TOKEN_RESPONSE, "token grant")
        refused = httpx.post(f"{hubcomm_fake.url}/oauth/v3/token", data={**form, "refresh_token": "unknown"})
        assert refused.status_code == 400
        assert_valid(refused.json(), schemas.OAUTH_ERROR, "token refusal")


def test_schemas_reject_what_the_spec_forbids() -> None:
    """The schemas are not vacuous: known-bad documents fail them."""
    assert_invalid = [
        ({"channel": "SMS", "statusState": "SUBSCRIBED", "subscriptionId": 1}, schemas.PARTIAL_PUBLIC_STATUS_REQUEST),
        (
            {"channel": "EMAIL", "statusState": "SUBSCRIBED", "subscriptionId": "1"},
            schemas.PARTIAL_PUBLIC_STATUS_REQUEST,
        ),
        (
            {"channel": "EMAIL", "statusState": "SUBSCRIBED", "subscriptionId": 1, "x": 1},
            schemas.PARTIAL_PUBLIC_STATUS_REQUEST,
        ),
        (
            {"inputs": [{"channel": "EMAIL", "statusState": "SUBSCRIBED", "subscriptionId": 1}]},
            schemas.BATCH_INPUT_PUBLIC_STATUS_REQUEST,
        ),
        ({"inputs": [1]}, schemas.BATCH_INPUT_STRING),
        (
            {
                "status": "DONE",
                "results": [],
                "startedAt": "2026-01-01T00:00:00Z",
                "completedAt": "2026-01-01T00:00:00Z",
            },
            schemas.BATCH_RESPONSE_PUBLIC_STATUS,
        ),
        ({"status": "COMPLETE", "results": []}, schemas.BATCH_RESPONSE_PUBLIC_STATUS),
        ({"status": "400", "category": "X", "message": "m", "context": {}}, schemas.STANDARD_ERROR),
        ({"message": "m", "correlationId": "c"}, schemas.ERROR),
    ]
    from tests.contract._check import problems

    for doc, schema in assert_invalid:
        assert problems(doc, schema), doc
