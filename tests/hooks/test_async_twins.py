"""The hook's async readers answer what their sync twins answer, against the bundled fake.

The read-back's trigger is the only production caller of several async twins (``abatch_read``,
``abatch_read_wide``, ``aget_unsubscribe_all_status``); here each is called directly and compared with its sync
twin after real writes, for a brand other than the default one too.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from airflow_provider_hubcomm.hooks.hubcomm import HubCommHook
from airflow_provider_hubcomm.models import StatusUpdate

if TYPE_CHECKING:
    from collections.abc import Iterator

    from airflow_provider_hubcomm.testing.pytest_plugin import FakeFactory

A, B = "a@example.com", "b@example.com"


@pytest.fixture
def hook(hubcomm_fake_factory: FakeFactory, monkeypatch: pytest.MonkeyPatch) -> Iterator[HubCommHook]:
    fake = hubcomm_fake_factory(subscriptions=[101, 102, {"id": 201, "businessUnitId": 1}])
    monkeypatch.setenv("AIRFLOW_CONN_HUBCOMM_DEFAULT", fake.connection_json(business_unit_ids=[1]))
    hook = HubCommHook()
    hook.set_status(A, StatusUpdate.model_validate({"subscriptionId": 101, "statusState": "SUBSCRIBED"}))
    hook.set_status(A, StatusUpdate.model_validate({"subscriptionId": 201, "statusState": "UNSUBSCRIBED"}))
    hook.unsubscribe_all(B, business_unit_id=1)
    yield hook
    hook.close()


class TestAsyncTwins:
    async def test_status_reads(self, hook: HubCommHook) -> None:
        for brand in (0, 1):
            single = hook.get_statuses(A, business_unit_id=brand)
            assert (await hook.aget_statuses(A, business_unit_id=brand)).results == single.results
            batch = hook.batch_read([A, B], business_unit_id=brand)
            assert (await hook.abatch_read([A, B], business_unit_id=brand)).results == batch.results
        assert {(s.subscription_id, s.status) for s in single.results} >= {(201, "UNSUBSCRIBED")}
        await hook.aclose()

    async def test_opt_out_of_all_reads(self, hook: HubCommHook) -> None:
        wide = hook.get_unsubscribe_all_status(B, business_unit_id=1)
        assert wide.results, "B opted out of all e-mail of brand 1"
        assert (await hook.aget_unsubscribe_all_status(B, business_unit_id=1)).results == wide.results
        batch = hook.batch_read_wide([A, B], business_unit_id=1)
        assert (await hook.abatch_read_wide([A, B], business_unit_id=1)).results == batch.results
        assert B in {r.subscriber_id_string for r in batch.results}
        await hook.aclose()

    async def test_definitions_and_catalog(self, hook: HubCommHook) -> None:
        assert (await hook.aget_definitions(business_unit_id=1)).results == hook.get_definitions(
            business_unit_id=1
        ).results
        fresh = HubCommHook()
        catalog = await fresh.asubscription_catalog()
        assert catalog.brand_of(201) == 1
        assert catalog.brand_of(101) == hook.subscription_catalog().brand_of(101) == 0
        await fresh.aclose()
        await hook.aclose()
