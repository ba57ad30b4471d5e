"""Errors in the user's words, subscription names, unconfirmed answers and the task deadline (issue 15, 17.4)."""

from __future__ import annotations

import json
import logging
import time
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import httpx
import pytest

from airflow_provider_hubcomm.exceptions import HubCommValidationError
from airflow_provider_hubcomm.hooks.hubcomm import HubCommHook
from airflow_provider_hubcomm.operators import SetStatusOperator, UnsubscribeAllOperator
from airflow_provider_hubcomm.operators._base import task_deadline
from tests.operators.test_hubcomm import Api, status_answer, with_hook

DEFINITIONS = {
    "results": [
        {"id": "101", "name": "Newsletter", "businessUnitId": 0, "isActive": True},
        {"id": "102", "name": "Product updates", "businessUnitId": 0, "isActive": True},
        {"id": "103", "name": "Events", "businessUnitId": 0, "isActive": True},
        {"id": "104", "name": "events", "businessUnitId": 0, "isActive": True},
    ]
}


def catalog_handler(request: httpx.Request) -> httpx.Response:
    if request.url.path.endswith("/definitions"):
        return httpx.Response(200, json=DEFINITIONS)
    body = json.loads(request.content)
    return status_answer(body["statusState"], sid=body["subscriptionId"])


def set_status(api: Api, **kwargs: Any) -> SetStatusOperator:
    args = {"subscriber_id": "a@x.com", "subscription_id": 101, "status": "UNSUBSCRIBED", **kwargs}
    return with_hook(SetStatusOperator(task_id="t", **args), api)  # type: ignore[no-any-return]


class TestSpeaksTheUsersLanguage:
    def test_bad_status_names_the_argument_shows_the_value_and_lists_allowed_values_once(self) -> None:
        api = Api(catalog_handler)
        with pytest.raises(HubCommValidationError) as info:
            set_status(api, status="unsubscribe").execute({})
        message = str(info.value)
        assert "status: invalid value 'unsubscribe'" in message
        for value in ("SUBSCRIBED", "UNSUBSCRIBED", "NOT_SPECIFIED"):
            assert message.count(f" {value}") == 1, message
        assert "any case" in message
        assert info.value.errors[0]["field"] == "status"
        assert info.value.errors[0]["value"] == "unsubscribe"
        assert api.requests == []

    def test_every_bad_argument_is_reported_at_once(self) -> None:
        api = Api(catalog_handler)
        with pytest.raises(HubCommValidationError) as info:
            set_status(api, status="yes", channel="sms", legal_basis="gdpr", legal_basis_explanation="asked").execute(
                {}
            )
        fields = [e["field"] for e in info.value.errors]
        assert fields == ["status", "channel", "legal_basis"]
        assert "statusState" not in fields
        assert api.requests == []

    def test_any_case_is_accepted(self) -> None:
        api = Api(catalog_handler)
        set_status(api, status="unsubscribed", channel="email").execute({})
        assert json.loads(api.requests[0].content)["statusState"] == "UNSUBSCRIBED"

    @pytest.mark.parametrize(
        ("kwargs", "field"),
        [
            ({"channel": "fax"}, "channel"),
            ({"business_unit_id": "x"}, "business_unit_id"),
            ({"subscriber_id": 12}, "subscriber_id"),
        ],
    )
    def test_unsubscribe_all_names_its_arguments(self, kwargs: dict[str, Any], field: str) -> None:
        api = Api(lambda r: httpx.Response(500))
        op = with_hook(UnsubscribeAllOperator(task_id="t", **{"subscriber_id": "a@x.com", **kwargs}), api)
        with pytest.raises(HubCommValidationError, match=rf"^invalid arguments, nothing was sent:\n{field}: "):
            op.execute({})
        assert api.requests == []


class TestSubscriptionNames:
    def test_a_name_is_resolved_through_the_catalog(self) -> None:
        api = Api(catalog_handler)
        result = set_status(api, subscription_id=" product UPDATES ").execute({})
        assert [c.split("?")[0] for c in api.calls] == [
            "GET /communication-preferences/2026-03/definitions",
            "POST /communication-preferences/2026-03/statuses/a%40x.com",
        ]
        assert json.loads(api.requests[-1].content)["subscriptionId"] == 102
        assert result["results"][0]["subscriptionId"] == 102

    def test_an_id_is_not_looked_up(self) -> None:
        api = Api(catalog_handler)
        set_status(api, subscription_id="103").execute({})
        assert [c.split()[0] for c in api.calls] == ["POST"]

    @pytest.mark.parametrize(
        ("name", "match"),
        [("Newsleter", r"no subscription is named 'Newsleter'.*Newsletter"), ("EVENTS", r"ambiguous.*use the id")],
    )
    def test_unknown_or_ambiguous_names_fail_before_writing(self, name: str, match: str) -> None:
        api = Api(catalog_handler)
        with pytest.raises(HubCommValidationError, match=rf"subscription_id: .*{match}") as info:
            set_status(api, subscription_id=name).execute({})
        assert info.value.errors[0]["field"] == "subscription_id"
        assert all(r.method == "GET" for r in api.requests)


def warning_lines(caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]) -> list[str]:
    """Warnings the task logged (Airflow 3's task logger writes structured lines to stdout)."""
    lines = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    return lines + [line for line in capsys.readouterr().out.splitlines() if "[warning" in line]


@pytest.mark.parametrize("state", ["PENDING", "PROCESSING"])
def test_an_unconfirmed_answer_logs_a_warning(
    state: str, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    api = Api(lambda r: httpx.Response(200, json={"status": state, "results": []}))
    with caplog.at_level(logging.WARNING):
        set_status(api).execute({})
    warnings = warning_lines(caplog, capsys)
    assert any(state in w and "not confirmed" in w for w in warnings), warnings


def test_a_complete_answer_logs_no_warning(
    caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    api = Api(catalog_handler)
    with caplog.at_level(logging.WARNING):
        set_status(api).execute({})
    assert not [w for w in warning_lines(caplog, capsys) if "confirmed" in w]


class TestDeadline:
    def test_deadline_is_the_start_plus_execution_timeout(self) -> None:
        start = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
        ti = SimpleNamespace(start_date=start)
        assert task_deadline(timedelta(minutes=5), {"ti": ti}) == start.timestamp() + 300

    def test_no_timeout_no_deadline(self) -> None:
        assert task_deadline(None, {"ti": SimpleNamespace(start_date=datetime.now(UTC))}) is None

    def test_without_a_start_date_the_deadline_counts_from_now(self) -> None:
        before = time.time()
        deadline = task_deadline(timedelta(seconds=30), {})
        assert deadline is not None
        assert before + 30 <= deadline <= time.time() + 30

    def test_the_hook_gets_the_deadline_when_it_takes_one(self, monkeypatch: pytest.MonkeyPatch) -> None:
        conn = {"conn_type": "hubcomm", "host": "https://api.unit.test", "password": "pat"}
        monkeypatch.setenv("AIRFLOW_CONN_HUBCOMM_DEFAULT", json.dumps(conn))
        op = SetStatusOperator(
            task_id="t",
            subscriber_id="a@x.com",
            subscription_id=101,
            status="SUBSCRIBED",
            execution_timeout=timedelta(seconds=90),
        )
        op._start({"ti": SimpleNamespace(start_date=datetime.now(UTC))})
        assert op._deadline is not None
        hook = op.hook
        assert isinstance(hook, HubCommHook)
        assert hook.deadline == pytest.approx(op._deadline)
