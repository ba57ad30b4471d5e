"""Endpoints of the fake: shapes, semantics and state (against a real server on 127.0.0.1)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import httpx
import pytest

if TYPE_CHECKING:
    from collections.abc import Iterator

    from airflow_provider_hubcomm.testing import FakeHubSpot

V4 = "/communication-preferences/v4"
LATEST = "/communication-preferences/2026-03"
ISO_MS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")


@pytest.fixture
def api(hubcomm_fake: FakeHubSpot) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {hubcomm_fake.token}"}
    with httpx.Client(base_url=hubcomm_fake.url, headers=headers, timeout=5) as client:
        yield client


def write(status: str, sub_id: int = 101, **extra: Any) -> dict[str, Any]:
    return {"channel": "EMAIL", "statusState": status, "subscriptionId": sub_id, **extra}


class TestDefinitions:
    def test_default_definitions_have_string_ids(self, api: httpx.Client) -> None:
        body = api.get(f"{LATEST}/definitions").json()
        assert body["status"] == "COMPLETE"
        assert [d["id"] for d in body["results"]] == ["101", "102", "103"]
        for key in ("requestedAt", "startedAt", "completedAt"):
            assert ISO_MS.match(body[key])
        assert {"name", "description", "isActive", "isDefault", "isInternal", "createdAt", "updatedAt"} <= set(
            body["results"][0]
        )

    def test_custom_subscriptions_and_business_unit_filter(self, hubcomm_fake_factory: Any) -> None:
        fake = hubcomm_fake_factory(subscriptions=[7, {"id": 8, "name": "News", "businessUnitId": 2}])
        headers = {"Authorization": f"Bearer {fake.token}"}
        default = httpx.get(f"{fake.url}{LATEST}/definitions", headers=headers).json()["results"]
        assert [(d["id"], d["businessUnitId"]) for d in default] == [("7", 0)]  # brand 0 only, as documented
        bu2 = httpx.get(f"{fake.url}{LATEST}/definitions?businessUnitId=2", headers=headers).json()["results"]
        assert [(d["name"], d["businessUnitId"]) for d in bu2] == [("News", 2)]

    def test_lenient_brands_list_every_brand(self, hubcomm_fake_factory: Any) -> None:
        fake = hubcomm_fake_factory(subscriptions=[7, {"id": 8, "businessUnitId": 2}], strict_brands=False)
        headers = {"Authorization": f"Bearer {fake.token}"}
        all_defs = httpx.get(f"{fake.url}{LATEST}/definitions", headers=headers).json()["results"]
        assert [(d["id"], d["businessUnitId"]) for d in all_defs] == [("7", 0), ("8", 2)]


class TestSetStatus:
    def test_reasons_follow_the_state(self, api: httpx.Client, hubcomm_fake: FakeHubSpot) -> None:
        url = f"{LATEST}/statuses/a%40example.com"
        first = api.post(url, json=write("UNSUBSCRIBED", legalBasis="NON_GDPR", legalBasisExplanation="why"))
        assert first.status_code == 200
        rec = first.json()["results"][0]
        assert rec["setStatusSuccessReason"] == "REQUESTED_CHANGE_OCCURRED"
        assert rec["source"] == "Public status API"
        assert (rec["subscriptionId"], rec["status"], rec["businessUnitId"]) == (101, "UNSUBSCRIBED", 0)
        assert (rec["legalBasis"], rec["legalBasisExplanation"]) == ("NON_GDPR", "why")
        assert rec["subscriptionName"] == "Marketing Information"
        assert ISO_MS.match(rec["timestamp"])
        again = api.post(url, json=write("UNSUBSCRIBED")).json()["results"][0]
        assert again["setStatusSuccessReason"] == "NO_STATUS_CHANGE"
        back = api.post(url, json=write("SUBSCRIBED")).json()["results"][0]
        assert back["setStatusSuccessReason"] == "RESUBSCRIBE_OCCURRED"
        assert hubcomm_fake.status("A@Example.com", 101)["status"] == "SUBSCRIBED"  # type: ignore[index]

    def test_v4_and_latest_share_state(self, api: httpx.Client) -> None:
        api.post(f"{V4}/statuses/b%40example.com", json=write("SUBSCRIBED", 102))
        body = api.get(f"{LATEST}/statuses/b%40example.com", params={"channel": "EMAIL"}).json()
        by_id = {r["subscriptionId"]: r for r in body["results"]}
        assert by_id[102]["status"] == "SUBSCRIBED"
        assert by_id[101]["status"] == "NOT_SPECIFIED"
        assert by_id[101]["source"] == "Default"

    def test_unknown_subscription_is_400_by_default(self, api: httpx.Client, hubcomm_fake: FakeHubSpot) -> None:
        resp = api.post(f"{LATEST}/statuses/c%40example.com", json=write("SUBSCRIBED", 999))
        assert resp.status_code == 400
        assert resp.json()["category"] == "VALIDATION_ERROR"
        assert "999" in resp.json()["message"]
        assert hubcomm_fake.snapshot() == {}
        assert hubcomm_fake.counters["validation_error"] == 1

    def test_unknown_subscription_404_as_an_option(self, hubcomm_fake_factory: Any) -> None:
        fake = hubcomm_fake_factory(unknown_subscription_status=404)
        headers = {"Authorization": f"Bearer {fake.token}"}
        resp = httpx.post(f"{fake.url}{LATEST}/statuses/c%40x.com", json=write("SUBSCRIBED", 999), headers=headers)
        assert (resp.status_code, resp.json()["category"]) == (404, "OBJECT_NOT_FOUND")
        assert fake.snapshot() == {}

    def test_subscriber_is_lowercased(self, api: httpx.Client, hubcomm_fake: FakeHubSpot) -> None:
        rec = api.post(f"{LATEST}/statuses/MiXeD%40Example.COM", json=write("SUBSCRIBED")).json()["results"][0]
        assert rec["subscriberIdString"] == "mixed@example.com"
        assert hubcomm_fake.snapshot() == {("mixed@example.com", 101): "SUBSCRIBED"}


class TestPathEncoding:
    def test_encoded_slash_stays_data(self, api: httpx.Client, hubcomm_fake: FakeHubSpot) -> None:
        resp = api.post(f"{LATEST}/statuses/a%2Fb%40x.com", json=write("UNSUBSCRIBED"))
        assert resp.status_code == 200
        assert resp.json()["results"][0]["subscriberIdString"] == "a/b@x.com"
        assert hubcomm_fake.snapshot() == {("a/b@x.com", 101): "UNSUBSCRIBED"}
        # the same id with an encoded slash also routes to unsubscribe-all, never to another endpoint
        resp = api.post(f"{LATEST}/statuses/a%2Fb%40x.com/unsubscribe-all", params={"channel": "EMAIL"})
        assert resp.status_code == 200
        assert hubcomm_fake.request_log[0]["path"] == f"{LATEST}/statuses/a%2Fb%40x.com"

    def test_decoded_once_only(self, api: httpx.Client, hubcomm_fake: FakeHubSpot) -> None:
        # %2540 is "%40" after one decoding: not an address, so it is refused rather than decoded twice
        resp = api.post(f"{LATEST}/statuses/a%2540x.com", json=write("SUBSCRIBED"))
        assert resp.status_code == 400
        assert resp.json()["errors"][0]["in"] == "subscriberIdString"

    def test_plus_is_kept(self, api: httpx.Client, hubcomm_fake: FakeHubSpot) -> None:
        api.post(f"{LATEST}/statuses/a%2Btag%40x.com", json=write("SUBSCRIBED"))
        assert ("a+tag@x.com", 101) in hubcomm_fake.snapshot()

    def test_raw_slash_is_another_route(self, api: httpx.Client) -> None:
        assert api.post(f"{LATEST}/statuses/a/b@x.com", json=write("SUBSCRIBED")).status_code == 404


class TestUnsubscribeAll:
    def test_verbose_lists_changes_and_sets_wide_flag(self, api: httpx.Client, hubcomm_fake: FakeHubSpot) -> None:
        api.post(f"{LATEST}/statuses/d%40example.com", json=write("UNSUBSCRIBED", 101))
        resp = api.post(f"{LATEST}/statuses/d%40example.com/unsubscribe-all?channel=EMAIL&verbose=true")
        results = resp.json()["results"]
        assert [r["subscriptionId"] for r in results] == [102, 103]  # 101 was already unsubscribed
        assert {r["setStatusSuccessReason"] for r in results} == {"UNSUBSCRIBE_FROM_ALL_OCCURRED"}
        wide = api.get(f"{LATEST}/statuses/d%40example.com/unsubscribe-all", params={"channel": "EMAIL"}).json()
        assert wide["results"][0]["wideStatusType"] == "PORTAL_WIDE"
        assert wide["results"][0]["status"] == "UNSUBSCRIBED"
        assert hubcomm_fake.opted_out_of_all("d@example.com")

    def test_not_verbose_has_empty_results(self, api: httpx.Client, hubcomm_fake: FakeHubSpot) -> None:
        resp = api.post(f"{LATEST}/statuses/e%40example.com/unsubscribe-all", params={"channel": "EMAIL"})
        assert resp.json()["results"] == []
        assert set(hubcomm_fake.snapshot().values()) == {"UNSUBSCRIBED"}
        assert len(hubcomm_fake.snapshot()) == 3

    def test_resubscribe_clears_wide_flag(self, api: httpx.Client, hubcomm_fake: FakeHubSpot) -> None:
        api.post(f"{LATEST}/statuses/f%40example.com/unsubscribe-all", params={"channel": "EMAIL"})
        rec = api.post(f"{LATEST}/statuses/f%40example.com", json=write("SUBSCRIBED", 103)).json()["results"][0]
        assert rec["setStatusSuccessReason"] == "RESUBSCRIBE_OCCURRED"
        assert not hubcomm_fake.opted_out_of_all("f@example.com")
        wide = api.get(f"{LATEST}/statuses/f%40example.com/unsubscribe-all", params={"channel": "EMAIL"}).json()
        assert wide["results"] == []

    def test_missing_channel_is_400(self, api: httpx.Client) -> None:
        resp = api.post(f"{LATEST}/statuses/g%40example.com/unsubscribe-all")
        assert resp.status_code == 400
        assert resp.json()["errors"][0]["in"] == "channel"


class TestBatch:
    def test_batch_write_then_batch_read(self, api: httpx.Client) -> None:
        inputs = [write("SUBSCRIBED", 101, subscriberIdString=f"u{i}@example.com") for i in range(3)]
        resp = api.post(f"{LATEST}/statuses/batch/write", json={"inputs": inputs})
        assert resp.status_code == 200
        body = resp.json()
        assert body["status"] == "COMPLETE"
        assert "errors" not in body
        assert [r["subscriberIdString"] for r in body["results"]] == [
            "u0@example.com",
            "u1@example.com",
            "u2@example.com",
        ]
        read = api.post(f"{LATEST}/statuses/batch/read?channel=EMAIL", json={"inputs": ["u1@example.com"]})
        assert read.status_code == 200
        [entry] = read.json()["results"]
        assert entry["subscriberIdString"] == "u1@example.com"
        assert [s["status"] for s in entry["statuses"]] == ["SUBSCRIBED", "NOT_SPECIFIED", "NOT_SPECIFIED"]

    def test_batch_read_207_for_non_addresses(self, api: httpx.Client) -> None:
        payload = {"inputs": ["ok@x.com", "nope"]}
        resp = api.post(f"{LATEST}/statuses/batch/read", params={"channel": "EMAIL"}, json=payload)
        assert resp.status_code == 207
        body = resp.json()
        assert [r["subscriberIdString"] for r in body["results"]] == ["ok@x.com"]
        assert body["numErrors"] == 1
        assert body["errors"][0]["status"] == "400"
        assert body["errors"][0]["context"] == {"subscriberIdString": ["nope"]}

    def test_batch_unsubscribe_all_and_read(self, api: httpx.Client, hubcomm_fake: FakeHubSpot) -> None:
        resp = api.post(f"{LATEST}/statuses/batch/unsubscribe-all?channel=EMAIL", json={"inputs": ["h@x.com"]})
        assert resp.status_code == 200
        assert hubcomm_fake.opted_out_of_all("h@x.com")
        read = api.post(
            f"{LATEST}/statuses/batch/unsubscribe-all/read?channel=EMAIL", json={"inputs": ["h@x.com", "i@x.com"]}
        )
        results = read.json()["results"]
        assert [len(r["wideStatuses"]) for r in results] == [1, 0]


class TestRouting:
    def test_unknown_path_is_404_with_hubspot_body(self, api: httpx.Client) -> None:
        resp = api.get("/communication-preferences/v9/definitions")
        assert resp.status_code == 404
        body = resp.json()
        assert body["status"] == "error"
        assert body["correlationId"]

    def test_wrong_method_is_405(self, api: httpx.Client) -> None:
        assert api.delete(f"{LATEST}/definitions").status_code == 405


class TestBehindTheBack:
    def test_set_state_is_visible_to_reads(self, api: httpx.Client, hubcomm_fake: FakeHubSpot) -> None:
        hubcomm_fake.set_state("j@x.com", 102, "UNSUBSCRIBED")
        body = api.get(f"{LATEST}/statuses/j%40x.com?channel=EMAIL").json()
        assert body["results"][1]["status"] == "UNSUBSCRIBED"
        hubcomm_fake.set_state("j@x.com", 102, None)
        assert hubcomm_fake.status("j@x.com", 102) is None
        with pytest.raises(ValueError, match="status must be one of"):
            hubcomm_fake.set_state("j@x.com", 102, "GONE")
