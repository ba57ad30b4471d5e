"""Sensor and trigger read back per brand, fall back to single reads without batch scopes, count unconfirmed rows."""

from __future__ import annotations

import time
from unittest import mock

import pytest

from airflow_provider_hubcomm.hooks.hubcomm import HubCommHook
from airflow_provider_hubcomm.readback import UnreadableRowsError
from airflow_provider_hubcomm.sensors import BatchStatusSensor
from airflow_provider_hubcomm.triggers import BatchStatusTrigger
from tests.sensors.readback import ReadBack, make_rows, record, set_conn, store_of, summary

BRANDS = {101: 0, 102: 7}


@pytest.fixture(autouse=True)
def _conn(monkeypatch):
    set_conn(monkeypatch, business_unit_ids=[7])


@pytest.fixture
def context():
    return {"ti": mock.MagicMock()}


def sensor(readback: ReadBack, batch, **kwargs) -> BatchStatusSensor:
    kwargs.setdefault("poke_interval", 0.05)
    kwargs.setdefault("timeout", 5)
    s = BatchStatusSensor(task_id="verify", batch=batch, **kwargs)
    s.__dict__["hook"] = HubCommHook(transport=readback.transport())
    return s


def trigger(readback: ReadBack, records, **meta_over) -> BatchStatusTrigger:
    s = summary(records)
    meta = {
        "verify": "all",
        "sample_size": 1000,
        "sample_seed": 0,
        "fail_on_mismatch": True,
        "conn_id": "hubcomm_default",
        "channel": "EMAIL",
        "rows_written": len(records),
        "operations": s["operations"],
        **meta_over,
    }
    from airflow_provider_hubcomm.readback.rows import ReadbackRow
    from airflow_provider_hubcomm.readback.state import VerificationState

    state = VerificationState()
    state.observe([ReadbackRow.from_record(r) for r in records], {}, first_read=True)
    return BatchStatusTrigger(
        meta=meta,  # type: ignore[arg-type]
        poke_interval=0.05,
        deadline=time.time() + 5,
        timeout=5,
        state=state.to_json(),
        async_transport=readback.async_transport(),
    )


def logged(caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]) -> str:
    """Task loggers write to stdout or through logging, depending on Airflow's routing."""
    return caplog.text + capfd.readouterr().out


async def payload(t: BatchStatusTrigger) -> dict:
    (event,) = [e async for e in t.run()]
    return event.payload


class TestBrands:
    def test_each_read_carries_the_brand_of_its_subscription(self, context):
        records = make_rows(40)  # subscriptions 101 (brand 0) and 102 (brand 7) alternate
        rb = ReadBack(store_of(records), brands=BRANDS)
        result = sensor(rb, summary(records), verify="all").execute(context)
        # Read without the brand, the brand-7 rows would never be seen and the sensor would wait forever.
        assert (result["rows_matching"], result["pending"]) == (40, 0)
        assert sorted(rb.brands_read) == [0, 7]
        assert all(len(ids) == 20 for ids in rb.requests)

    async def test_trigger_reads_per_brand_too(self):
        records = make_rows(20, not_complete_ops=[0, 1])
        rb = ReadBack(store_of(records), brands=BRANDS)
        event = await payload(trigger(rb, records))
        assert event["status"] == "success"
        assert event["result"]["rows_matching"] == 20
        assert sorted(rb.brands_read) == [0, 7]

    def test_subscription_in_no_known_brand_fails_at_once(self, context):
        records = [*make_rows(6), record("x@example.com", 555, "UNSUBSCRIBED")]
        rb = ReadBack(store_of(records), brands=BRANDS)
        with pytest.raises(UnreadableRowsError, match=r"subscription 555: 1 row\(s\), e\.g\. x@example\.com") as err:
            sensor(rb, summary(records), verify="all", timeout=60).execute(context)
        assert "business_unit_ids" in str(err.value)
        assert rb.requests == []  # refused before any read of the block

    def test_unknown_brand_with_soft_fail_skips_in_deferrable_mode(self, context):
        from airflow.providers.common.compat.sdk import AirflowSkipException

        records = [record("x@example.com", 555, "UNSUBSCRIBED")]
        rb = ReadBack(store_of(records), brands=BRANDS)
        with pytest.raises(AirflowSkipException, match="subscription 555"):
            sensor(rb, summary(records), deferrable=True, soft_fail=True).execute(context)


class TestSingleReads:
    def test_summary_in_single_mode_reads_one_subscriber_at_a_time(self, context, caplog, capfd):
        records = make_rows(12)
        rb = ReadBack(store_of(records), brands=BRANDS)
        result = sensor(rb, {**summary(records), "mode": "single"}, verify="all").execute(context)
        assert rb.requests == []
        assert sorted(rb.singles) == sorted(r["subscriberIdString"] for r in records)
        assert (result["rows_matching"], result["read_mode"]) == (12, "single")
        assert sorted(set(rb.brands_read)) == [0, 7]
        assert logged(caplog, capfd).count("one status read per subscriber") == 1

    def test_missing_batch_scopes_fall_back_once_and_stay_single(self, context, caplog, capfd):
        records = make_rows(30, not_complete_ops=[1])
        rb = ReadBack(store_of(records[:10] + records[20:]), brands=BRANDS, missing_scopes=True)
        s = sensor(rb, summary(records), verify="all")
        rb_calls = []
        original = rb.__call__

        def apply_later(request):
            rb_calls.append(request.url.path)
            if len(rb.singles) == 30:
                rb.store.update(store_of(records))
            return original(request)

        s.__dict__["hook"] = HubCommHook(transport=__import__("httpx").MockTransport(apply_later))
        result = s.execute(context)
        assert (result["rows_matching"], result["pending"], result["read_mode"]) == (30, 0, "single")
        batch_attempts = [p for p in rb_calls if p.endswith("/batch/read")]
        assert len(batch_attempts) == 1  # refused once, then single reads only, also on the next poke
        assert len(rb.singles) == 30 + 10  # first check: every row; second: the 10 pending rows
        assert logged(caplog, capfd).count("403 MISSING_SCOPES") == 1

    async def test_trigger_falls_back_on_missing_scopes(self, caplog):
        records = make_rows(8, not_complete_ops=[0])
        rb = ReadBack(store_of(records), brands=BRANDS, missing_scopes=True)
        event = await payload(trigger(rb, records))
        assert event["status"] == "success"
        assert event["result"]["read_mode"] == "single"
        assert len(rb.singles) == 8

    def test_other_403_is_not_a_fallback(self, context):
        from airflow_provider_hubcomm.exceptions import HubCommAuthError

        rb = ReadBack(store_of(make_rows(4)), brands=BRANDS)
        rb.fail_with = 403
        with pytest.raises(HubCommAuthError):
            sensor(rb, summary(make_rows(4)), verify="all").execute(context)
        assert rb.singles == []


class TestUnconfirmed:
    def test_result_counts_confirmed_unconfirmed_rows(self, context):
        records = make_rows(30, not_complete_ops=[1, 2])  # 20 rows of PENDING operations
        rb = ReadBack(store_of(records[:25]), brands=BRANDS)
        s = sensor(rb, {**summary(records), "unconfirmed": 20}, verify="none", timeout=0.3)
        from airflow.providers.common.compat.sdk import AirflowSensorTimeout

        with pytest.raises(AirflowSensorTimeout):
            s.execute(context)
        (call,) = context["ti"].xcom_push.call_args_list
        unconfirmed = call.kwargs["value"]["unconfirmed"]
        assert unconfirmed == {"at_write": 20, "read": 20, "confirmed": 15, "still_unconfirmed": 5}
        rb.store.update(store_of(records))
        result = sensor(rb, {**summary(records), "unconfirmed": 20}, verify="none").execute(context)
        assert result["unconfirmed"] == {"at_write": 20, "read": 20, "confirmed": 20, "still_unconfirmed": 0}


class TestHandOver:
    def test_single_mode_found_in_the_worker_travels_to_the_trigger(self, context):
        from airflow.providers.common.compat.sdk import TaskDeferred

        records = make_rows(10, not_complete_ops=[0])
        rb = ReadBack({}, brands=BRANDS, missing_scopes=True)
        s = sensor(rb, {**summary(records), "unconfirmed": 10}, deferrable=True, poke_interval=5, timeout=60)
        with pytest.raises(TaskDeferred) as deferred:
            s.execute(context)
        _, kwargs = deferred.value.trigger.serialize()
        assert kwargs["meta"]["read_mode"] == "single"  # the trigger does not retry batch reads first
        assert kwargs["meta"]["unconfirmed_at_write"] == 10
        assert len(kwargs["state"]["rows"]) == 10
