"""Single writes: a 2xx must confirm the write (issue 16), and the re-subscribe guard reads the right brand (16.1)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from airflow_provider_hubcomm.exceptions import (
    HubCommResponseValidationError,
    HubCommUnconfirmedError,
    HubCommValidationError,
)
from airflow_provider_hubcomm.hooks.hubcomm import HubCommHook
from airflow_provider_hubcomm.models import StatusUpdate
from tests.hooks.conftest import TOKEN, Recorder, ok_status, set_conn

UNSUB = StatusUpdate(statusState="UNSUBSCRIBED", subscriptionId=101)


def hook_with(rec: Recorder) -> HubCommHook:
    transport = httpx.MockTransport(rec)
    return HubCommHook(transport=transport, async_transport=transport, max_retries=0)


def posts(rec: Recorder) -> list[httpx.Request]:
    return [r for r in rec.requests if r.method == "POST"]


@pytest.mark.usefixtures("private_conn")
class TestWriteConfirmation:
    @pytest.mark.parametrize("body", [{}, {"status": "COMPLETE", "results": []}, {"results": None}])
    def test_2xx_that_confirms_nothing_is_not_a_success(self, body: dict[str, Any]) -> None:
        rec = Recorder(lambda r, n: httpx.Response(200, json=body))
        with pytest.raises(HubCommUnconfirmedError, match="confirmed no write: the answer was") as info:
            hook_with(rec).set_status("a@b.co", UNSUB)
        assert isinstance(info.value, HubCommResponseValidationError)
        assert info.value.status_code == 200

    def test_long_answer_is_clipped_in_the_message(self) -> None:
        rec = Recorder(lambda r, n: httpx.Response(200, json={"status": "COMPLETE", "junk": "z" * 5000}))
        with pytest.raises(HubCommUnconfirmedError) as info:
            hook_with(rec).set_status("a@b.co", UNSUB)
        assert len(str(info.value)) < 800
        assert "characters)" in str(info.value)

    @pytest.mark.parametrize("status", ["PENDING", "PROCESSING"])
    def test_not_final_envelope_is_returned_as_is(self, status: str) -> None:
        rec = Recorder(lambda r, n: httpx.Response(200, json={"status": status, "results": []}))
        answer = hook_with(rec).set_status("a@b.co", UNSUB)
        assert answer.status == status
        assert answer.results == []

    async def test_async_twin_refuses_an_empty_confirmation(self) -> None:
        hook = hook_with(Recorder(lambda r, n: httpx.Response(200, json={})))
        with pytest.raises(HubCommUnconfirmedError):
            await hook.aset_status("a@b.co", UNSUB)
        await hook.aclose()

    def test_unsubscribe_all_without_verbose_may_list_nothing(self) -> None:
        rec = Recorder(lambda r, n: httpx.Response(200, json={"status": "COMPLETE", "results": []}))
        answer = hook_with(rec).unsubscribe_all("a@b.co")
        assert answer.status == "COMPLETE"


class Portal:
    """Definitions in brands 0 and 7, statuses and opt-outs filtered by ``businessUnitId`` as HubSpot does."""

    def __init__(self, status: dict[tuple[int, int], str] | None = None, wide: set[int] | None = None) -> None:
        self.defs = {0: [{"id": "101", "name": "News"}, {"id": "102", "name": "Old", "isActive": False}]}
        self.defs[7] = [{"id": "701", "name": "Brand news", "businessUnitId": 7}]
        self.status = status or {}  # (brand, subscription) -> status
        self.wide = wide or set()  # brands the contact opted out of all e-mail in
        self.rec = Recorder(self.respond)

    def respond(self, request: httpx.Request, n: int) -> httpx.Response:
        brand = int(request.url.params.get("businessUnitId", "0"))
        path = request.url.path
        if path.endswith("/definitions"):
            return httpx.Response(200, json={"results": self.defs.get(brand, [])})
        if request.method == "GET" and path.endswith("/unsubscribe-all"):
            wide = [{"status": "UNSUBSCRIBED", "wideStatusType": "BUSINESS_UNIT_WIDE", "businessUnitId": brand}]
            return httpx.Response(200, json={"status": "COMPLETE", "results": wide if brand in self.wide else []})
        if request.method == "GET":
            rows = [{"subscriptionId": s, "status": v} for (b, s), v in self.status.items() if b == brand]
            return httpx.Response(200, json={"status": "COMPLETE", "results": rows})
        return ok_status()

    def reads(self) -> list[tuple[str, str | None]]:
        return [
            (r.url.path.rsplit("/", 1)[-1], r.url.params.get("businessUnitId"))
            for r in self.rec.requests
            if r.method == "GET" and not r.url.path.endswith("/definitions")
        ]


def subscribe(subscription_id: int) -> StatusUpdate:
    return StatusUpdate(statusState="SUBSCRIBED", subscriptionId=subscription_id)


class TestBrandAwareGuard:
    @pytest.fixture(autouse=True)
    def _brand_7_connection(self, monkeypatch: pytest.MonkeyPatch) -> None:
        set_conn(monkeypatch, password=TOKEN, extra={"business_unit_id": 7})

    def test_brand_0_opt_out_seen_from_a_brand_7_connection(self) -> None:
        portal = Portal(status={(0, 101): "UNSUBSCRIBED"})
        with pytest.raises(HubCommValidationError, match="UNSUBSCRIBED in brand 0"):
            hook_with(portal.rec).set_status("a@b.co", subscribe(101), allow_resubscribe=False)
        assert portal.reads() == [("a@b.co", "0")]  # read WITH the subscription's brand, not the connection's
        assert posts(portal.rec) == []

    def test_brand_7_subscription_read_with_brand_7(self) -> None:
        portal = Portal(status={(7, 701): "UNSUBSCRIBED"})
        with pytest.raises(HubCommValidationError, match="brand 7"):
            hook_with(portal.rec).set_status("a@b.co", subscribe(701), allow_resubscribe=False)
        assert posts(portal.rec) == []

    def test_opted_out_of_all_email_for_the_brand(self) -> None:
        portal = Portal(wide={0})
        with pytest.raises(HubCommValidationError, match="opted out of all e-mail for brand 0") as info:
            hook_with(portal.rec).set_status("a@b.co", subscribe(101), allow_resubscribe=False)
        assert info.value.errors[0]["field"] == "statusState"
        assert portal.reads() == [("a@b.co", "0"), ("unsubscribe-all", "0")]
        assert posts(portal.rec) == []

    @pytest.mark.parametrize(("sid", "reason"), [(999, "is not defined"), (102, "is not active")])
    def test_unknown_or_inactive_subscription_refused(self, sid: int, reason: str) -> None:
        portal = Portal()
        with pytest.raises(HubCommValidationError, match=reason) as info:
            hook_with(portal.rec).set_status("a@b.co", subscribe(sid), allow_resubscribe=False)
        text = str(info.value)
        assert str(sid) in text
        assert "101 (News, brand 0)" in text  # the known ones are listed
        assert info.value.errors[0]["field"] == "subscriptionId"
        assert portal.reads() == []
        assert posts(portal.rec) == []

    def test_allowed_write_goes_through_and_catalog_is_read_once(self) -> None:
        portal = Portal(status={(0, 101): "NOT_SPECIFIED"})
        hook = hook_with(portal.rec)
        for _ in range(2):
            hook.set_status("a@b.co", subscribe(101), allow_resubscribe=False)
        definitions = [r for r in portal.rec.requests if r.url.path.endswith("/definitions")]
        assert sorted(r.url.params["businessUnitId"] for r in definitions) == ["0", "7"]  # once per brand
        assert len(posts(portal.rec)) == 2

    def test_allow_resubscribe_skips_every_read(self) -> None:
        portal = Portal(status={(0, 101): "UNSUBSCRIBED"}, wide={0})
        hook_with(portal.rec).set_status("a@b.co", subscribe(101), allow_resubscribe=True)
        assert [r.method for r in portal.rec.requests] == ["POST"]

    async def test_async_twin_reads_the_brand_and_the_wide_status(self) -> None:
        portal = Portal(wide={7})
        hook = hook_with(portal.rec)
        with pytest.raises(HubCommValidationError, match="opted out of all e-mail for brand 7"):
            await hook.aset_status("a@b.co", subscribe(701), allow_resubscribe=False)
        with pytest.raises(HubCommValidationError, match="is not defined"):
            await hook.aset_status("a@b.co", subscribe(999), allow_resubscribe=False)
        await hook.aclose()
        assert posts(portal.rec) == []
        assert ("unsubscribe-all", "7") in portal.reads()
