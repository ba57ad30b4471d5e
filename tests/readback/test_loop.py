"""The one read-back loop: reads planned per brand, driven the same way by the sync and the async runner."""

from __future__ import annotations

import pytest

from airflow_provider_hubcomm.hooks._catalog import Subscription, SubscriptionCatalog
from airflow_provider_hubcomm.readback import UnreadableRowsError
from airflow_provider_hubcomm.readback.loop import (
    ReadBackLoop,
    ReadRequest,
    plan_reads,
    run_async,
    run_sync,
)
from airflow_provider_hubcomm.readback.rows import ReadbackRow
from airflow_provider_hubcomm.readback.state import VerificationState
from tests.sensors.readback import make_rows, record

CATALOG = SubscriptionCatalog([Subscription(101, "A", 0, True), Subscription(102, "B", 7, True)], [0, 7])


def rows_of(records: list[dict]) -> list[ReadbackRow]:
    return [ReadbackRow.from_record(r) for r in records]


class TestPlanReads:
    def test_groups_by_brand_then_by_subscriber(self):
        rows = rows_of(make_rows(250))  # 101 (brand 0) and 102 (brand 7) alternate, one subscriber each
        plans = list(plan_reads(rows, CATALOG, 100))
        assert [(p.brand, len(p.subscriber_ids)) for p in plans] == [(0, 100), (0, 25), (7, 100), (7, 25)]
        for p in plans:
            assert {CATALOG.brand_of(r.subscription) for r in p.rows} == {p.brand}

    def test_unknown_subscription_is_refused_before_any_request(self):
        rows = rows_of([*make_rows(4), record("a@x.com", 999, "SUBSCRIBED"), record("b@x.com", 999, "SUBSCRIBED")])
        with pytest.raises(UnreadableRowsError, match=r"\[0, 7\]\): subscription 999: 2 row\(s\), e\.g\. a@x\.com"):
            plan_reads(rows, CATALOG, 100)


def _answer_all(request: ReadRequest) -> dict:
    return {r.key: r.expected for r in request.rows}


class TestOneLoopTwoRunners:
    async def test_sync_and_async_runners_send_the_same_requests_and_reach_the_same_state(self):
        records = make_rows(400, per_op=50, not_complete_ops=[1, 3])
        seen_sync: list[ReadRequest] = []
        seen_async: list[ReadRequest] = []
        sync_state, async_state = VerificationState(), VerificationState()

        def read(request: ReadRequest) -> dict:
            seen_sync.append(request)
            return _answer_all(request)

        async def aread(request: ReadRequest) -> dict:
            seen_async.append(request)
            return _answer_all(request)

        run_sync(ReadBackLoop(sync_state, CATALOG, 60).check(rows_of(records), confirm_now=False), read)
        await run_async(ReadBackLoop(async_state, CATALOG, 60).check(iter(rows_of(records)), confirm_now=False), aread)
        assert seen_sync == seen_async
        assert sync_state.to_json() == async_state.to_json()
        assert (sync_state.verified, sync_state.matching, sync_state.checks) == (400, 400, 1)
        assert sync_state.unconfirmed_read == 100

    def test_a_recheck_reads_only_outstanding_rows(self):
        rows = rows_of(make_rows(30, not_complete_ops=[0]))
        state = VerificationState()
        run_sync(ReadBackLoop(state, CATALOG, 100).check(rows, confirm_now=False), lambda r: {})
        assert len(state.outstanding) == 30  # nothing found: every row written UNSUBSCRIBED is outstanding
        asked: list[int] = []

        def read(request: ReadRequest) -> dict:
            asked.append(len(request.rows))
            return _answer_all(request)

        run_sync(ReadBackLoop(state, CATALOG, 100).check(None, confirm_now=False), read)
        assert sum(asked) == 30
        assert not state.outstanding
        assert state.checks == 2
