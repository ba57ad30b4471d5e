"""Subscriber ids that try path or query injection land as data, never as another request.

Checked against the bundled fake, which routes on the *raw* path and percent-decodes the subscriber segment
exactly once: its request log shows the path and endpoint each call really reached, its state shows which
subscriber was written. Ids that are not e-mail addresses are refused before anything is sent, naming the row
(batches) or the argument (single-status operators) and the field.
"""

from __future__ import annotations

import contextlib
import json
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import pytest

from airflow_provider_hubcomm.batch.engine import BatchWriteEngine
from airflow_provider_hubcomm.batch.options import BatchWriteOptions
from airflow_provider_hubcomm.exceptions import HubCommError, HubCommRequestRejectedError, HubCommValidationError
from airflow_provider_hubcomm.hooks.hubcomm import HubCommHook
from airflow_provider_hubcomm.models import StatusUpdate
from airflow_provider_hubcomm.operators.hubcomm import SetStatusOperator, UnsubscribeAllOperator

if TYPE_CHECKING:
    from pathlib import Path

    from airflow_provider_hubcomm.testing import FakeHubSpot

#: Valid e-mail addresses (by the provider's and the fake's rule) full of URL syntax.
HOSTILE_IDS = [
    "a/../b@example.com",
    "../../definitions@example.com",
    "x?channel=EMAIL&businessUnitId=7@example.com",
    "frag#ment@example.com",
    "a%2Fb@example.com",
    "a%2F..%2F..%2Fdefinitions@example.com",
    "%2e%2e@example.com",
    "a@example.com/../../oauth/v3/token",
    "a@example.com?verbose=true",
    "a@example.com#unsubscribe-all",
    "semi;colon=1&amp@example.com",
    "plus+tag@example.com",
    "üñíçødé@exämple.com",
    "zero\u200bwidth\u202eRTL@example.com",
    "l" * 64 + "@" + ".".join(["d" * 61] * 3) + ".com",  # 254 characters, the longest address accepted
]
#: Not e-mail addresses: refused before anything is sent.
NOT_EMAILS = [
    "",
    "   ",
    "..",
    "../../oauth/v3/token",
    "no-at-sign.example.com",
    "two@@example.com",
    "a@b@example.com",
    "no-dot@localhost",
    "space in@example.com",
    "line\nbreak@example.com",
    "tab\t@example.com",
    "nul\x00@example.com",
    "x" * 65 + "@example.com",
    "l" * 64 + "@" + "d" * 250 + ".com",
]
UPDATE = StatusUpdate(subscription_id=101, status_state="UNSUBSCRIBED", channel="EMAIL")
READ_PREFIX = "/communication-preferences/2026-03/statuses/"
UNSUB_PREFIX = "/communication-preferences/2026-03/statuses/"


@pytest.fixture
def fake(hubcomm_fake_factory: Any, monkeypatch: pytest.MonkeyPatch) -> FakeHubSpot:
    fake = hubcomm_fake_factory()
    monkeypatch.setenv("AIRFLOW_CONN_HUBCOMM_DEFAULT", fake.connection_json(requests_per_10s=10_000))
    return fake


def hook() -> HubCommHook:
    return HubCommHook(retry_sleep=lambda _s: None)


def test_hostile_ids_are_valid_addresses() -> None:
    """Guard of the test data: these ids must pass validation, or the tests below would test nothing."""
    from airflow_provider_hubcomm.models import is_valid_email
    from airflow_provider_hubcomm.testing._config import is_email

    assert all(is_valid_email(i) and is_email(i) for i in HOSTILE_IDS)
    assert len(HOSTILE_IDS[-1]) == 254
    assert not any(is_valid_email(i.strip()) for i in NOT_EMAILS)


@pytest.mark.parametrize("subscriber", HOSTILE_IDS)
def test_single_calls_encode_the_id_as_one_path_segment(fake: FakeHubSpot, subscriber: str) -> None:
    h = hook()
    segment = quote(subscriber, safe="")
    answer = h.set_status(subscriber, UPDATE)
    assert answer.results[0].subscriber_id_string == subscriber.lower()
    read = h.get_statuses(subscriber)
    assert {s.subscriber_id_string for s in read.results} == {subscriber.lower()}
    h.unsubscribe_all(subscriber, verbose=True)
    h.close()

    log = fake.request_log
    assert [(e["method"], e["endpoint"], e["path"], e["query"]) for e in log] == [
        ("POST", "statuses", READ_PREFIX + segment, ""),
        ("GET", "statuses", READ_PREFIX + segment, "channel=EMAIL"),
        ("POST", "unsubscribe_all", UNSUB_PREFIX + segment + "/unsubscribe-all", "channel=EMAIL&verbose=true"),
    ]
    assert all(e["status"] == 200 for e in log)
    # Landed as data: exactly this subscriber (HubSpot matches addresses case-insensitively), nobody else.
    assert set(fake.snapshot()) == {(subscriber.lower(), sid) for sid in (101, 102, 103)}
    assert fake.opted_out_of_all(subscriber)


def test_batch_write_carries_hostile_ids_as_json_data(fake: FakeHubSpot, tmp_path: Path) -> None:
    rows = [{"subscriberIdString": s, "subscriptionId": 102, "statusState": "NOT_SPECIFIED"} for s in HOSTILE_IDS]
    summary = BatchWriteEngine(hook(), BatchWriteOptions(batch_size=5, output_dir=str(tmp_path))).run(rows)
    assert (summary["written"], summary["failed"], summary["skipped"]) == (len(HOSTILE_IDS), 0, 0)
    # The definitions preflight (one read of brand 0, no row data), then only the batch-write endpoint.
    first, *writes = fake.request_log
    assert (first["endpoint"], first["path"]) == ("definitions", "/communication-preferences/2026-03/definitions")
    assert writes
    assert {e["endpoint"] for e in writes} == {"batch_write"}
    assert {e["path"] for e in writes} == {"/communication-preferences/2026-03/statuses/batch/write"}
    assert fake.snapshot() == {(s.lower(), 102): "NOT_SPECIFIED" for s in HOSTILE_IDS}


def test_a_long_id_is_one_segment_and_refused_as_data(fake: FakeHubSpot) -> None:
    """A 20 kB id (no valid address) still reaches the one endpoint, as data, and is refused there."""
    subscriber = "x" * 20_000 + "/../../definitions?x=1#y@example.com"
    with pytest.raises(HubCommRequestRejectedError) as info:
        hook().set_status(subscriber, UPDATE)
    assert info.value.status_code == 400
    assert info.value.category == "VALIDATION_ERROR"
    (entry,) = fake.request_log
    assert (entry["endpoint"], entry["path"]) == ("statuses", READ_PREFIX + quote(subscriber, safe=""))
    assert fake.snapshot() == {}
    assert info.value.correlation_id
    assert info.value.correlation_id in str(info.value)


@pytest.mark.parametrize("subscriber", [".", "..", " .. "])
def test_dot_segments_never_reach_another_path(fake: FakeHubSpot, subscriber: str) -> None:
    """Regression (fixed in 482976d): '.' and '..' used to be normalised away by httpx, reaching another path."""
    h = hook()
    for call in (
        lambda: h.get_statuses(subscriber),
        lambda: h.set_status(subscriber, UPDATE),
        lambda: h.unsubscribe_all(subscriber),
    ):
        with contextlib.suppress(HubCommError):  # refusing the id is fine; reaching another endpoint is not
            call()
    wrong = [(e["method"], e["path"]) for e in fake.request_log if e["endpoint"] not in ("statuses", "unsubscribe_all")]
    assert wrong == []


@pytest.mark.parametrize("subscriber", NOT_EMAILS)
def test_batch_refuses_non_email_ids_before_sending(fake: FakeHubSpot, subscriber: str, tmp_path: Path) -> None:
    rows = [
        {"subscriberIdString": "ok@example.com", "subscriptionId": 101, "statusState": "UNSUBSCRIBED"},
        {"subscriberIdString": "also.ok@example.com", "subscriptionId": 101, "statusState": "UNSUBSCRIBED"},
        {"subscriberIdString": subscriber, "subscriptionId": 101, "statusState": "UNSUBSCRIBED"},
    ]
    with pytest.raises(HubCommValidationError) as info:
        BatchWriteEngine(hook(), BatchWriteOptions(output_dir=str(tmp_path))).run(rows)
    message = str(info.value)
    assert "row 3, field 'subscriberIdString'" in message
    assert "nothing was sent" in message
    assert [(e["row"], e["field"]) for e in info.value.errors] == [(3, "subscriberIdString")]
    assert len(message) < 2_000
    assert fake.counters.get("requests", 0) == 0
    assert list(tmp_path.iterdir()) == []


def test_batch_file_with_non_email_ids_names_each_row(fake: FakeHubSpot, tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    with path.open("w") as fh:
        for n, sub in enumerate(["fine@example.com", *NOT_EMAILS[3:8]], 1):
            fh.write(
                json.dumps({"subscriberIdString": sub, "subscriptionId": 101 + n % 3, "statusState": "UNSUBSCRIBED"})
            )
            fh.write("\n")
    with pytest.raises(HubCommValidationError) as info:
        BatchWriteEngine(hook(), BatchWriteOptions(output_dir=str(tmp_path / "out"))).run(str(path))
    assert [(e["row"], e["field"]) for e in info.value.errors] == [(n, "subscriberIdString") for n in range(2, 7)]
    assert "5 of 6 input rows are invalid" in str(info.value)
    assert fake.counters.get("requests", 0) == 0


@pytest.mark.parametrize("subscriber", NOT_EMAILS)
def test_single_status_operators_refuse_non_email_ids(fake: FakeHubSpot, subscriber: str) -> None:
    for operator in (
        SetStatusOperator(task_id="set", subscriber_id=subscriber, subscription_id=101, status="UNSUBSCRIBED"),
        UnsubscribeAllOperator(task_id="unsub", subscriber_id=subscriber),
    ):
        with pytest.raises(HubCommValidationError) as info:
            operator.execute({})  # type: ignore[arg-type]
        assert "subscriber_id" in str(info.value)
        assert [e["field"] for e in info.value.errors] == ["subscriber_id"]
    assert fake.counters.get("requests", 0) == 0
