"""Unit tests of the HubComm operators, with HubSpot faked by httpx.MockTransport."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any
from unittest import mock

import httpx
import pytest
from airflow.sdk import Connection

from airflow_provider_hubcomm.exceptions import BatchAbortedError, HubCommThresholdError, HubCommValidationError
from airflow_provider_hubcomm.hooks.hubcomm import HubCommHook
from airflow_provider_hubcomm.operators import (
    BatchWriteStatusesOperator,
    SetStatusOperator,
    UnsubscribeAllOperator,
)

Handler = Callable[[httpx.Request], httpx.Response]


class Api:
    """Records requests; answers with ``handler``."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        request.read()
        self.requests.append(request)
        return self.handler(request)

    def hook(self) -> HubCommHook:
        conn = Connection(conn_id="hubcomm_default", conn_type="hubcomm", host="https://api.unit.test", password="pat")
        return HubCommHook(transport=httpx.MockTransport(self), connection=conn, max_retries=0)

    @property
    def calls(self) -> list[str]:
        return [f"{r.method} {r.url.raw_path.decode()}" for r in self.requests]


def status_answer(state: str, reason: str | None = "REQUESTED_CHANGE_OCCURRED", sid: int = 101) -> httpx.Response:
    status = {"subscriptionId": sid, "status": state, "channel": "EMAIL", "setStatusSuccessReason": reason}
    return httpx.Response(200, json={"status": "COMPLETE", "results": [status]})


#: Subscriptions defined in brand 0 of the mocked account.
DEFINED = (101, 102, 103)


def is_definitions(request: httpx.Request) -> bool:
    """Whether ``request`` reads the subscription definitions (``GET …/definitions``)."""
    return request.method == "GET" and request.url.path.endswith("/definitions")


def definitions_answer(ids: tuple[int, ...] = DEFINED) -> httpx.Response:
    """Answer ``GET /definitions``: the subscriptions ``ids``, active, in brand 0."""
    results = [{"id": str(i), "name": f"Subscription {i}", "businessUnitId": 0, "isActive": True} for i in ids]
    return httpx.Response(200, json={"results": results})


def with_hook(op: Any, api: Api) -> Any:
    op.hook = api.hook()
    return op


class TestSetStatusOperator:
    def test_init_stores_arguments_only(self) -> None:
        op = SetStatusOperator(
            task_id="t", subscriber_id="a@x.com", subscription_id=101, status="SUBSCRIBED", hubcomm_conn_id="nope"
        )
        assert "hook" not in op.__dict__
        assert op.hubcomm_conn_id == "nope"
        assert set(op.template_fields) == {
            "subscriber_id",
            "subscription_id",
            "status",
            "legal_basis",
            "legal_basis_explanation",
            "channel",
        }

    def test_writes_templated_arguments_and_returns_json(self) -> None:
        api = Api(lambda r: status_answer("UNSUBSCRIBED"))
        op = SetStatusOperator(
            task_id="t",
            subscriber_id="{{ params.email }}",
            subscription_id="{{ params.sid }}",
            status="unsubscribed",
            legal_basis="legitimate_interest_client",
            legal_basis_explanation="asked support",
            params={"email": "Ann+news@x.com", "sid": 101},
        )
        op.render_template_fields({"params": {"email": "Ann+news@x.com", "sid": 101}})
        result = with_hook(op, api).execute({})
        assert api.calls == ["POST /communication-preferences/2026-03/statuses/Ann%2Bnews%40x.com"]
        assert json.loads(api.requests[0].content) == {
            "channel": "EMAIL",
            "statusState": "UNSUBSCRIBED",
            "subscriptionId": 101,
            "legalBasis": "LEGITIMATE_INTEREST_CLIENT",
            "legalBasisExplanation": "asked support",
        }
        assert result["results"][0]["setStatusSuccessReason"] == "REQUESTED_CHANGE_OCCURRED"
        json.dumps(result)

    @pytest.mark.parametrize(
        ("kwargs", "match"),
        [
            (
                {"status": "subscribd"},
                r"status: invalid value 'subscribd'; allowed values \(any case\): "
                r"SUBSCRIBED, UNSUBSCRIBED, NOT_SPECIFIED",
            ),
            ({"subscription_id": "-5"}, r"subscription_id: invalid value '-5': must be a subscription id"),
            ({"subscription_id": 0}, r"subscription_id: invalid value 0"),
            ({"subscription_id": True}, r"subscription_id: invalid value True"),
            ({"status": None}, r"status: is required"),
            ({"channel": "SMS"}, r"channel: invalid value 'SMS'; allowed values \(any case\): EMAIL$"),
            ({"legal_basis": "NON_GDPR"}, r"legal_basis and legal_basis_explanation must be given together"),
            ({"legal_basis": "GDPR", "legal_basis_explanation": "x"}, r"legal_basis: invalid value 'GDPR';.*CONSENT"),
            (
                {"subscriber_id": "not-an-email"},
                r"subscriber_id: invalid value 'not-an-email': is not an e-mail address",
            ),
        ],
    )
    def test_validation_happens_before_any_request(self, kwargs: dict[str, Any], match: str) -> None:
        api = Api(lambda r: status_answer("UNSUBSCRIBED"))
        args = {"subscriber_id": "a@x.com", "subscription_id": 101, "status": "UNSUBSCRIBED", **kwargs}
        op = with_hook(SetStatusOperator(task_id="t", **args), api)
        with pytest.raises(HubCommValidationError, match=match):
            op.execute({})
        assert api.requests == []

    def test_refuses_to_resubscribe_an_opted_out_contact(self) -> None:
        def handler(request: httpx.Request) -> httpx.Response:
            if is_definitions(request):
                return definitions_answer()
            if request.url.path.endswith("/unsubscribe-all"):
                return httpx.Response(200, json={"status": "COMPLETE", "results": []})
            return status_answer("UNSUBSCRIBED", reason=None)

        api = Api(handler)
        op = SetStatusOperator(task_id="t", subscriber_id="a@x.com", subscription_id=101, status="subscribed")
        with pytest.raises(HubCommValidationError, match=r"refusing to re-subscribe a@x\.com to subscription 101"):
            with_hook(op, api).execute({})
        with pytest.raises(HubCommValidationError, match=r"allow_resubscribe=True"):
            op.execute({})
        # The guard reads the definitions, then the statuses in the subscription's brand; never writes.
        assert [c for c in api.calls if "/definitions" not in c] == [
            "GET /communication-preferences/2026-03/statuses/a%40x.com?channel=EMAIL&businessUnitId=0"
        ] * 2
        assert all(r.method == "GET" for r in api.requests)
        assert any(is_definitions(r) for r in api.requests)

    def test_refuses_to_resubscribe_a_contact_opted_out_of_all(self) -> None:
        def handler(request: httpx.Request) -> httpx.Response:
            if is_definitions(request):
                return definitions_answer()
            if request.url.path.endswith("/unsubscribe-all"):
                wide = {"status": "UNSUBSCRIBED", "wideStatusType": "PORTAL_WIDE", "businessUnitId": 0}
                return httpx.Response(200, json={"status": "COMPLETE", "results": [wide]})
            return status_answer("SUBSCRIBED", reason=None)

        api = Api(handler)
        op = SetStatusOperator(task_id="t", subscriber_id="a@x.com", subscription_id=101, status="SUBSCRIBED")
        with pytest.raises(HubCommValidationError, match=r"opted out of all e-mail"):
            with_hook(op, api).execute({})
        assert all(r.method == "GET" for r in api.requests)

    def test_subscribes_when_not_opted_out(self) -> None:
        def handler(request: httpx.Request) -> httpx.Response:
            if is_definitions(request):
                return definitions_answer()
            if request.method == "GET" and request.url.path.endswith("/unsubscribe-all"):
                return httpx.Response(200, json={"status": "COMPLETE", "results": []})
            if request.method == "GET":
                return status_answer("UNSUBSCRIBED", reason=None, sid=102)  # another subscription
            return status_answer("SUBSCRIBED")

        api = Api(handler)
        op = SetStatusOperator(task_id="t", subscriber_id="a@x.com", subscription_id=101, status="SUBSCRIBED")
        assert with_hook(op, api).execute({})["results"][0]["status"] == "SUBSCRIBED"
        base = "/communication-preferences/2026-03"
        assert [c.partition("?")[0] for c in api.calls] == [
            f"GET {base}/definitions",
            f"GET {base}/statuses/a%40x.com",
            f"GET {base}/statuses/a%40x.com/unsubscribe-all",
            f"POST {base}/statuses/a%40x.com",
        ]
        assert [r.url.params.get("businessUnitId") for r in api.requests[1:3]] == ["0", "0"]

    def test_allow_resubscribe_skips_the_read(self) -> None:
        api = Api(lambda r: status_answer("SUBSCRIBED", reason="RESUBSCRIBE_OCCURRED"))
        op = SetStatusOperator(
            task_id="t", subscriber_id="a@x.com", subscription_id=101, status="SUBSCRIBED", allow_resubscribe=True
        )
        assert with_hook(op, api).execute({})["results"][0]["setStatusSuccessReason"] == "RESUBSCRIBE_OCCURRED"
        assert [c.split()[0] for c in api.calls] == ["POST"]


class TestUnsubscribeAllOperator:
    def test_passes_verbose_and_business_unit(self) -> None:
        api = Api(lambda r: status_answer("UNSUBSCRIBED", reason="UNSUBSCRIBE_FROM_ALL_OCCURRED"))
        op = UnsubscribeAllOperator(task_id="t", subscriber_id=" a@x.com ", business_unit_id="3", verbose=True)
        result = with_hook(op, api).execute({})
        (request,) = api.requests
        path = request.url.raw_path.decode().partition("?")[0]
        assert path == "/communication-preferences/2026-03/statuses/a%40x.com/unsubscribe-all"
        assert dict(request.url.params) == {"channel": "EMAIL", "businessUnitId": "3", "verbose": "true"}
        assert result["results"][0]["setStatusSuccessReason"] == "UNSUBSCRIBE_FROM_ALL_OCCURRED"

    def test_not_verbose_by_default(self) -> None:
        api = Api(lambda r: httpx.Response(200, json={"status": "COMPLETE", "results": []}))
        assert with_hook(UnsubscribeAllOperator(task_id="t", subscriber_id="a@x.com"), api).execute({})["results"] == []
        assert "verbose" not in api.requests[0].url.params

    @pytest.mark.parametrize(
        ("kwargs", "match"),
        [
            ({"channel": "sms"}, r"channel: invalid value 'sms'; allowed values \(any case\): EMAIL"),
            ({"business_unit_id": "brand-a"}, r"business_unit_id: invalid value 'brand-a': must be a brand id"),
            ({"business_unit_id": -1}, r"business_unit_id: invalid value -1"),
            ({"business_unit_id": 1.5}, r"business_unit_id: invalid value 1.5"),
            ({"subscriber_id": "nope"}, r"subscriber_id"),
        ],
    )
    def test_validation(self, kwargs: dict[str, Any], match: str) -> None:
        api = Api(lambda r: httpx.Response(500))
        op = with_hook(UnsubscribeAllOperator(task_id="t", **{"subscriber_id": "a@x.com", **kwargs}), api)
        with pytest.raises(HubCommValidationError, match=match):
            op.execute({})
        assert api.requests == []

    def test_template_fields(self) -> None:
        assert set(UnsubscribeAllOperator.template_fields) == {"subscriber_id", "channel", "business_unit_id"}


def batch_handler(request: httpx.Request, defined: tuple[int, ...] = DEFINED) -> httpx.Response:
    """Answer the definitions read with ``defined``; fail subscription 999 per input, as HubSpot does."""
    if is_definitions(request):
        return definitions_answer(defined)
    inputs = json.loads(request.content)["inputs"]
    good = [i for i in inputs if i["subscriptionId"] != 999]
    results = [{**i, "status": i["statusState"]} for i in good]
    errors = [
        {
            "category": "OBJECT_NOT_FOUND",
            "message": "unknown",
            "context": {"subscriberIdString": [i["subscriberIdString"]]},
        }
        for i in inputs
        if i not in good
    ]
    return httpx.Response(207 if errors else 200, json={"status": "COMPLETE", "results": results, "errors": errors})


class TestBatchWriteStatusesOperator:
    def test_template_fields(self) -> None:
        op = BatchWriteStatusesOperator(task_id="t", inputs="{{ params.path }}")
        assert {"inputs", "column_map", "defaults", "failed_rows_path", "output_dir"} <= set(op.template_fields)
        assert "hook" not in op.__dict__

    def test_execute_returns_summary(self, tmp_path: Path) -> None:
        api = Api(batch_handler)
        op = BatchWriteStatusesOperator(
            task_id="t",
            inputs=[{"email": f"u{i}@x.com", "sub": 101, "state": "unsubscribed"} for i in range(5)],
            column_map={"email": "subscriberIdString", "sub": "subscriptionId", "state": "statusState"},
            batch_size=2,
            output_dir=str(tmp_path),
        )
        summary = with_hook(op, api).execute({})
        # One definitions read (the preflight, brand 0), then 3 batch writes of at most 2 rows.
        assert (summary["rows_read"], summary["written"], summary["requests"]) == (5, 5, 4)
        assert [r.method for r in api.requests] == ["GET", "POST", "POST", "POST"]
        assert is_definitions(api.requests[0])
        json.dumps(summary)

    @pytest.mark.parametrize("error", ["threshold", "abort"])
    def test_failure_pushes_summary_and_raises(self, tmp_path: Path, error: str) -> None:
        def handler(request: httpx.Request) -> httpx.Response:
            if error == "abort":
                return httpx.Response(401, json={"category": "INVALID_AUTHENTICATION", "message": "revoked"})
            # 999 is defined (the preflight lets the row through) but HubSpot fails it per input.
            return batch_handler(request, defined=(*DEFINED, 999))

        api = Api(handler)
        rows = [{"subscriberIdString": "a@x.com", "subscriptionId": 999, "statusState": "UNSUBSCRIBED"}]
        op = BatchWriteStatusesOperator(task_id="t", inputs=rows, max_failed_rows=0, output_dir=str(tmp_path))
        ti = mock.MagicMock()
        with pytest.raises(HubCommThresholdError if error == "threshold" else BatchAbortedError):
            with_hook(op, api).execute({"ti": ti})
        (call,) = ti.xcom_push.call_args_list
        assert call.kwargs["key"] == "summary"
        assert call.kwargs["value"]["failed"] == 1

    def test_invalid_rows_fail_without_requests(self, tmp_path: Path) -> None:
        api = Api(batch_handler)
        rows = [{"subscriberIdString": "a@x.com", "subscriptionId": 101, "statusState": "maybe"}]
        op = with_hook(BatchWriteStatusesOperator(task_id="t", inputs=rows, output_dir=str(tmp_path)), api)
        with pytest.raises(HubCommValidationError, match=r"row 1, field 'statusState'"):
            op.execute({"ti": mock.MagicMock()})
        assert api.requests == []

    def test_hook_from_connection_id(self, monkeypatch: pytest.MonkeyPatch) -> None:
        conn = {"conn_type": "hubcomm", "host": "https://api.unit.test", "password": "pat"}
        monkeypatch.setenv("AIRFLOW_CONN_MY_HUBSPOT", json.dumps(conn))
        op = BatchWriteStatusesOperator(task_id="t", inputs=[], hubcomm_conn_id="my_hubspot")
        assert op.hook.hubcomm_conn_id == "my_hubspot"
        assert op.hook.config.base_url == "https://api.unit.test"
