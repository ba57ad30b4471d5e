"""Validation answers of the fake: whole-request 400s and per-input errors, shaped like HubSpot's."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import httpx
import pytest

if TYPE_CHECKING:
    from collections.abc import Iterator

    from airflow_provider_hubcomm.testing import FakeHubSpot

API = "/communication-preferences/2026-03"
BATCH = f"{API}/statuses/batch/write"


@pytest.fixture
def api(hubcomm_fake: FakeHubSpot) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {hubcomm_fake.token}"}
    with httpx.Client(base_url=hubcomm_fake.url, headers=headers, timeout=5) as client:
        yield client


def item(**overrides: Any) -> dict[str, Any]:
    base = {"channel": "EMAIL", "statusState": "SUBSCRIBED", "subscriptionId": 101, "subscriberIdString": "a@x.com"}
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not ...}


def assert_validation_error(resp: httpx.Response, field: str) -> dict[str, Any]:
    assert resp.status_code == 400, resp.text
    body = resp.json()
    assert body["status"] == "error"
    assert body["category"] == "VALIDATION_ERROR"
    assert len(body["correlationId"]) == 36
    assert body["message"]
    assert any(field in e["in"] for e in body["errors"]), body["errors"]
    return body


class TestWholeRequest400:
    def test_malformed_json(self, api: httpx.Client) -> None:
        resp = api.post(BATCH, content=b'{"inputs": [', headers={"Content-Type": "application/json"})
        body = assert_validation_error(resp, "body")
        assert "Invalid input JSON" in body["message"]

    def test_missing_inputs(self, api: httpx.Client) -> None:
        assert_validation_error(api.post(BATCH, json={"items": []}), "inputs")

    @pytest.mark.parametrize(
        ("field", "value"),
        [("channel", "SMS"), ("statusState", "OPTED_OUT"), ("legalBasis", "BECAUSE")],
    )
    def test_bad_enum_names_the_field(
        self, api: httpx.Client, hubcomm_fake: FakeHubSpot, field: str, value: str
    ) -> None:
        body = assert_validation_error(api.post(BATCH, json={"inputs": [item(), item(**{field: value})]}), field)
        assert body["errors"][0]["in"] == f"inputs[1].{field}"
        assert value in body["message"]
        assert hubcomm_fake.snapshot() == {}  # nothing of a refused batch is applied

    @pytest.mark.parametrize("value", ["101", 1.5, True, None])
    def test_non_integer_subscription_id(self, api: httpx.Client, value: Any) -> None:
        assert_validation_error(api.post(BATCH, json={"inputs": [item(subscriptionId=value)]}), "subscriptionId")

    def test_single_write_bad_enum(self, api: httpx.Client) -> None:
        body = {"channel": "EMAIL", "statusState": "MAYBE", "subscriptionId": 101}
        resp = api.post(f"{API}/statuses/a%40x.com", json=body)
        assert assert_validation_error(resp, "statusState")["errors"][0]["in"] == "statusState"

    def test_single_write_missing_field(self, api: httpx.Client) -> None:
        resp = api.post(f"{API}/statuses/a%40x.com", json={"channel": "EMAIL", "subscriptionId": 101})
        assert "required" in assert_validation_error(resp, "statusState")["message"]

    def test_batch_too_large(self, hubcomm_fake_factory: Any) -> None:
        fake = hubcomm_fake_factory(max_batch_size=2)
        headers = {"Authorization": f"Bearer {fake.token}"}
        resp = httpx.post(f"{fake.url}{BATCH}", json={"inputs": [item()] * 3}, headers=headers)
        message = assert_validation_error(resp, "inputs")["message"]
        assert "too large" in message
        assert "limit is 2" in message
        assert fake.snapshot() == {}  # refused whole
        ok = httpx.post(f"{fake.url}{BATCH}", json={"inputs": [item()] * 2}, headers=headers)
        assert ok.status_code == 200

    def test_no_batch_cap_by_default(self, api: httpx.Client, hubcomm_fake: FakeHubSpot) -> None:
        inputs = [item(subscriberIdString=f"u{i}@x.com") for i in range(1500)]
        resp = api.post(BATCH, json={"inputs": inputs})
        assert resp.status_code == 200
        assert len(resp.json()["results"]) == 1500
        assert len(hubcomm_fake.snapshot()) == 1500

    def test_missing_channel_query(self, api: httpx.Client) -> None:
        assert_validation_error(api.get(f"{API}/statuses/a%40x.com"), "channel")
        assert_validation_error(api.post(f"{API}/statuses/batch/read", json={"inputs": []}), "channel")

    def test_bad_business_unit(self, api: httpx.Client) -> None:
        assert_validation_error(api.get(f"{API}/statuses/a%40x.com?channel=EMAIL&businessUnitId=x"), "businessUnitId")

    def test_counted_as_validation_error(self, api: httpx.Client, hubcomm_fake: FakeHubSpot) -> None:
        api.post(BATCH, json={})
        assert hubcomm_fake.counters["validation_error"] == 1


class TestPartialErrors:
    def test_good_inputs_applied_bad_ones_reported_in_a_200(self, api: httpx.Client, hubcomm_fake: FakeHubSpot) -> None:
        inputs = [
            item(subscriberIdString="good@x.com"),
            item(subscriberIdString="who@x.com", subscriptionId=999),
            item(subscriberIdString="not-an-address"),
        ]
        resp = api.post(BATCH, json={"inputs": inputs})
        assert resp.status_code == 200  # the spec declares only 200 for batch/write
        body = resp.json()
        assert body["status"] == "COMPLETE"
        assert [r["subscriberIdString"] for r in body["results"]] == ["good@x.com"]
        assert body["numErrors"] == 2
        missing, invalid = body["errors"]
        assert (missing["status"], missing["category"]) == ("400", "VALIDATION_ERROR")
        assert missing["context"] == {"subscriberIdString": ["who@x.com"], "subscriptionId": ["999"]}
        assert (invalid["status"], invalid["category"]) == ("400", "VALIDATION_ERROR")
        assert invalid["context"]["subscriberIdString"] == ["not-an-address"]
        for error in body["errors"]:  # StandardError's required fields
            assert {"status", "category", "message", "context", "errors", "links"} <= set(error)
            assert isinstance(error["errors"], list)
            assert isinstance(error["links"], dict)
        assert hubcomm_fake.snapshot() == {("good@x.com", 101): "SUBSCRIBED"}
        assert hubcomm_fake.counters["partial"] == 1

    def test_partial_status_207_and_unknown_404_as_options(self, hubcomm_fake_factory: Any) -> None:
        fake = hubcomm_fake_factory(partial_status=207, unknown_subscription_status=404)
        headers = {"Authorization": f"Bearer {fake.token}"}
        inputs = [item(), item(subscriberIdString="who@x.com", subscriptionId=999)]
        resp = httpx.post(f"{fake.url}{BATCH}", json={"inputs": inputs}, headers=headers)
        assert resp.status_code == 207
        assert (resp.json()["errors"][0]["status"], resp.json()["errors"][0]["category"]) == ("404", "OBJECT_NOT_FOUND")
        clean = httpx.post(f"{fake.url}{BATCH}", json={"inputs": [item()]}, headers=headers)
        assert clean.status_code == 200  # no errors: 200 whatever the knob

    def test_batch_unsubscribe_all_partial_is_200(self, api: httpx.Client, hubcomm_fake: FakeHubSpot) -> None:
        resp = api.post(f"{API}/statuses/batch/unsubscribe-all?channel=EMAIL", json={"inputs": ["a@x.com", "nope"]})
        assert resp.status_code == 200
        body = resp.json()
        assert body["numErrors"] == 1
        assert body["errors"][0]["context"] == {"subscriberIdString": ["nope"]}
        assert hubcomm_fake.opted_out_of_all("a@x.com")

    def test_batch_reads_keep_207(self, api: httpx.Client) -> None:
        for path in ("batch/read", "batch/unsubscribe-all/read"):
            resp = api.post(f"{API}/statuses/{path}?channel=EMAIL", json={"inputs": ["a@x.com", "nope"]})
            assert resp.status_code == 207, path
            assert resp.json()["numErrors"] == 1

    def test_inactive_subscription(self, hubcomm_fake_factory: Any) -> None:
        fake = hubcomm_fake_factory(subscriptions=[101, {"id": 102, "isActive": False}])
        headers = {"Authorization": f"Bearer {fake.token}"}
        resp = httpx.post(f"{fake.url}{BATCH}", json={"inputs": [item(subscriptionId=102)]}, headers=headers)
        assert resp.status_code == 200
        assert "not active" in resp.json()["errors"][0]["message"]
        assert resp.json()["results"] == []
