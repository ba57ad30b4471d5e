"""Every request the hook sends follows HubSpot's published contract (schemas in :mod:`.schemas`).

The hook talks to the bundled fake through a recording transport: each request is kept (method, path,
query, body) and forwarded unchanged through ``httpx.HTTPTransport()``. Each public hook method is called and
its requests are checked: the path is an endpoint of the contract, every required query parameter is present
and no undeclared one is, and the body validates against the declared request schema (or is absent where
the spec declares none). The fake's answers are validated too, so both directions are covered.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

import httpx
import pytest

from airflow_provider_hubcomm.batch.rows import WriteRow
from airflow_provider_hubcomm.hooks.hubcomm import HubCommHook
from airflow_provider_hubcomm.models import StatusUpdate, StatusWrite
from tests.contract import schemas
from tests.contract._check import assert_valid, endpoint_of
from tests.contract.test_fake_answers import check_answer

if TYPE_CHECKING:
    from collections.abc import Iterator

    from airflow_provider_hubcomm.testing import FakeHubSpot


@dataclass
class Sent:
    """One request as it left the hook, and the fake's answer."""

    method: str
    path: str
    query: list[tuple[str, str]]
    body: bytes
    content_type: str
    response: httpx.Response | None = None


class RecordingTransport(httpx.BaseTransport):
    """Keep every request, then forward it to the real server through ``httpx.HTTPTransport()``."""

    def __init__(self) -> None:
        self.sent: list[Sent] = []
        self._inner = httpx.HTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        body = request.read()
        query = parse_qsl(request.url.query.decode(), keep_blank_values=True)
        entry = Sent(request.method, request.url.raw_path.decode().split("?")[0], query, body, "")
        entry.content_type = request.headers.get("content-type", "")
        self.sent.append(entry)
        response = self._inner.handle_request(request)
        response.read()
        entry.response = response
        return response

    def close(self) -> None:
        self._inner.close()


@pytest.fixture
def recorded(
    hubcomm_fake_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[HubCommHook, RecordingTransport]]:
    fake: FakeHubSpot = hubcomm_fake_factory(subscriptions=[101, 102, {"id": 201, "businessUnitId": 1}])
    monkeypatch.setenv("AIRFLOW_CONN_HUBCOMM_DEFAULT", fake.connection_json())
    transport = RecordingTransport()
    hook = HubCommHook(transport=transport)
    try:
        yield hook, transport
    finally:
        transport.close()


UPDATE = {"statusState": "UNSUBSCRIBED", "subscriptionId": 101}
BASIS = {"legalBasis": "LEGITIMATE_INTEREST_CLIENT", "legalBasisExplanation": "Existing customer"}


def _rows() -> list[WriteRow]:
    return [
        WriteRow("a@x.com", 101, "SUBSCRIBED", "EMAIL", "CONSENT_WITH_NOTICE", "Web form"),
        WriteRow("b@x.com", 102, "UNSUBSCRIBED", "EMAIL", None, None),
    ]


#: Public hook method -> a call of it with typical arguments.
CALLS: dict[str, Callable[[HubCommHook], Any]] = {
    "set_status": lambda h: h.set_status("Mixed+Case/Tag@x.com", StatusUpdate.model_validate(UPDATE)),
    "set_status-basis": lambda h: h.set_status("a@x.com", StatusUpdate.model_validate({**UPDATE, **BASIS})),
    "set_status-guarded": lambda h: h.set_status(
        "a@x.com",
        StatusUpdate.model_validate({"statusState": "SUBSCRIBED", "subscriptionId": 101}),
        allow_resubscribe=False,
    ),
    "batch_write": lambda h: h.batch_write(
        [
            StatusWrite.model_validate({"subscriberIdString": "a@x.com", **UPDATE, **BASIS}),
            StatusWrite.model_validate(
                {"subscriberIdString": "b@x.com", "statusState": "SUBSCRIBED", "subscriptionId": 102}
            ),
        ]
    ),
    "batch_write-dicts": lambda h: h.batch_write(
        [{"subscriberIdString": "c@x.com", "statusState": "SUBSCRIBED", "subscriptionId": 101, "channel": "EMAIL"}]
    ),
    "batch_write_serialized": lambda h: h.batch_write_serialized(
        ('{"inputs":[' + ",".join(r.to_json() for r in _rows()) + "]}").encode()
    ),
    "unsubscribe_all": lambda h: h.unsubscribe_all("a@x.com"),
    "unsubscribe_all-verbose-brand": lambda h: h.unsubscribe_all("a@x.com", business_unit_id=1, verbose=True),
    "get_statuses": lambda h: h.get_statuses("a@x.com"),
    "get_statuses-brand": lambda h: h.get_statuses("a@x.com", business_unit_id=1),
    "get_unsubscribe_all_status": lambda h: h.get_unsubscribe_all_status("a@x.com"),
    "batch_read": lambda h: h.batch_read(["a@x.com", "b@x.com"]),
    "batch_read-brand": lambda h: h.batch_read(["a@x.com"], business_unit_id=1),
    "batch_read_wide": lambda h: h.batch_read_wide(["a@x.com", "b@x.com"]),
    "batch_unsubscribe_all": lambda h: h.batch_unsubscribe_all(["a@x.com", "b@x.com"]),
    "batch_unsubscribe_all-verbose": lambda h: h.batch_unsubscribe_all(["a@x.com"], verbose=True),
    "get_definitions": lambda h: h.get_definitions(),
    "get_definitions-brand-translations": lambda h: h.get_definitions(business_unit_id=1, include_translations=True),
}


def check_request(sent: Sent) -> str:
    """Validate one request against the contract; return its endpoint's name.

    :param sent: the recorded request.
    """
    endpoint = endpoint_of(sent.method, sent.path)
    assert sent.path.startswith("/communication-preferences/2026-03/"), f"not the default version: {sent.path}"
    names = [k for k, _ in sent.query]
    _, _, required = schemas.ENDPOINTS[endpoint]
    missing = [q for q in required if q not in names]
    assert not missing, f"{endpoint}: required query parameter(s) {missing} not sent ({sent.query})"
    undeclared = sorted(set(names) - schemas.QUERY_PARAMS[endpoint])
    assert not undeclared, f"{endpoint}: query parameter(s) {undeclared} are not in the contract"
    assert len(names) == len(set(names)), f"{endpoint}: repeated query parameters {names}"
    query = dict(sent.query)
    if "channel" in query:
        assert query["channel"] in schemas.CHANNEL["enum"]
    if "businessUnitId" in query:
        assert query["businessUnitId"].isdigit(), query
    for flag in ("verbose", "includeTranslations"):
        if flag in query:
            assert query[flag] in ("true", "false"), query
    declared = schemas.REQUEST_BODY[endpoint]
    if declared is None:
        assert sent.body == b"", f"{endpoint}: the spec declares no request body, the hook sent {sent.body[:200]!r}"
    else:
        assert sent.content_type.startswith("application/json"), sent.content_type
        assert_valid(json.loads(sent.body), declared, f"{endpoint} request body")
    return endpoint


@pytest.mark.parametrize("call", sorted(CALLS))
def test_hook_requests_follow_the_contract(call: str, recorded: tuple[HubCommHook, RecordingTransport]) -> None:
    hook, transport = recorded
    CALLS[call](hook)
    api_requests = [s for s in transport.sent if s.path.startswith("/communication-preferences/")]
    assert api_requests, "the hook sent nothing"
    endpoints = []
    for sent in api_requests:
        endpoint = check_request(sent)
        endpoints.append(endpoint)
        assert sent.response is not None
        check_answer(endpoint, sent.response)
    expected = call.split("-")[0]
    aliases = {
        "get_unsubscribe_all_status": "get_unsubscribe_all",
        "batch_read_wide": "batch_unsubscribe_all_read",
        "batch_write_serialized": "batch_write",
        "get_definitions": "definitions",
    }
    assert aliases.get(expected, expected) in endpoints, endpoints


def test_every_public_hook_method_is_covered() -> None:
    """A new public API method on the hook must get a contract case here."""
    methods = {
        "set_status",
        "batch_write",
        "batch_write_serialized",
        "unsubscribe_all",
        "get_statuses",
        "get_unsubscribe_all_status",
        "batch_read",
        "batch_read_wide",
        "batch_unsubscribe_all",
        "get_definitions",
    }
    assert methods <= {name.split("-")[0] for name in CALLS}
    for name in methods:
        assert callable(getattr(HubCommHook, name))


def test_single_write_path_encodes_the_address_once(recorded: tuple[HubCommHook, RecordingTransport]) -> None:
    """``subscriberIdString`` sits in the path fully percent-encoded (``+`` and ``/`` included)."""
    hook, transport = recorded
    hook.set_status("Mixed+Case/Tag@x.com", StatusUpdate.model_validate(UPDATE))
    (sent,) = [s for s in transport.sent if s.method == "POST"]
    assert sent.path.endswith("/statuses/Mixed%2BCase%2FTag%40x.com")


def test_checks_catch_a_bad_request() -> None:
    """The request checks are not vacuous: a body on a body-less endpoint, a missing channel, a stray field."""
    prefix = "/communication-preferences/2026-03"
    bad = [
        Sent("POST", f"{prefix}/statuses/a%40x.com/unsubscribe-all", [("channel", "EMAIL")], b"{}", "application/json"),
        Sent("GET", f"{prefix}/statuses/a%40x.com", [], b"", ""),
        Sent("POST", f"{prefix}/statuses/batch/write", [("channel", "EMAIL")], b'{"inputs":[]}', "application/json"),
        Sent(
            "POST",
            f"{prefix}/statuses/a%40x.com",
            [],
            json.dumps({**UPDATE, "channel": "EMAIL", "legalBasis": None}).encode(),
            "application/json",
        ),
    ]
    for sent in bad:
        with pytest.raises(AssertionError):
            check_request(sent)
