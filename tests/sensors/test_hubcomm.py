from __future__ import annotations

import json
from datetime import timedelta
from unittest import mock

import httpx
import pytest
from airflow.providers.common.compat.sdk import (
    AirflowSensorTimeout,
    AirflowSkipException,
    TaskDeferred,
)

from airflow_provider_hubcomm.exceptions import HubCommError
from airflow_provider_hubcomm.hooks.hubcomm import HubCommHook
from airflow_provider_hubcomm.readback import BatchCanceledError, BatchMismatchError, BatchSummaryError
from airflow_provider_hubcomm.sensors import BatchStatusSensor
from airflow_provider_hubcomm.triggers.hubcomm import BatchStatusTrigger
from tests.sensors.readback import TOKEN, ReadBack, make_rows, set_conn, store_of, summary, write_jsonl

CANCELED = [{"index": 2, "rows": 100, "reason": "HubSpot answered CANCELED"}]


@pytest.fixture(autouse=True)
def _conn(monkeypatch):
    set_conn(monkeypatch)


def sensor(readback: ReadBack, batch, **kwargs) -> BatchStatusSensor:
    kwargs.setdefault("poke_interval", 0.05)
    kwargs.setdefault("timeout", 5)
    s = BatchStatusSensor(task_id="verify", batch=batch, **kwargs)
    s.__dict__["hook"] = HubCommHook(transport=readback.transport())
    return s


@pytest.fixture
def context():
    return {"ti": mock.MagicMock()}


def pushed(context) -> dict:
    (call,) = context["ti"].xcom_push.call_args_list
    assert call.kwargs["key"] == "return_value"
    return call.kwargs["value"]


class TestArguments:
    def test_bad_arguments(self):
        with pytest.raises(ValueError, match="verify must be one of"):
            BatchStatusSensor(task_id="s", batch={}, verify="some")
        with pytest.raises(ValueError, match="sample_size"):
            BatchStatusSensor(task_id="s", batch={}, sample_size=0)
        with pytest.raises(ValueError, match="read_batch_size"):
            BatchStatusSensor(task_id="s", batch={}, read_batch_size=1001)

    def test_batch_is_templated_and_defaults(self):
        s = BatchStatusSensor(task_id="s", batch="{{ ti.xcom_pull('write') }}")
        assert "batch" in s.template_fields
        assert (s.verify, s.sample_size, s.sample_seed, s.fail_on_mismatch) == ("sample", 1000, 0, True)
        assert s.hubcomm_conn_id == "hubcomm_default"
        assert s.deferrable is False

    def test_summary_as_json_string(self, context):
        records = make_rows(4)
        rb = ReadBack(store_of(records))
        result = sensor(rb, json.dumps(summary(records))).execute(context)
        assert result["rows_matching"] == 4

    def test_unusable_summary_fails_without_retry(self, context):
        with pytest.raises(BatchSummaryError):
            sensor(ReadBack(), "nonsense").execute(context)


class TestPokeMode:
    @pytest.mark.parametrize(
        ("verify", "rows_read"),
        [("all", 500), ("sample", 10 + 20), ("none", 20)],
    )
    def test_verify_modes_read_what_they_promise(self, context, verify, rows_read):
        records = make_rows(500, per_op=20, not_complete_ops=[7])
        rb = ReadBack(store_of(records))
        result = sensor(rb, summary(records), verify=verify, sample_size=10).execute(context)
        assert rb.rows_read == rows_read
        assert max(len(ids) for ids in rb.requests) <= 100
        assert result["rows_verified"] == rows_read
        assert result["rows_matching"] == rows_read
        assert result["pending"] == 0
        assert result["operations"]["by_status"] == {"COMPLETE": 25, "PENDING": 0}
        assert result["operations"]["not_complete"][0]["status"] == "COMPLETE"

    def test_none_with_everything_complete_reads_nothing(self, context):
        records = make_rows(50)
        rb = ReadBack()
        result = sensor(rb, summary(records), verify="none").execute(context)
        assert rb.requests == []
        assert result["rows_verified"] == 0
        assert result["operations"]["all_complete"]

    def test_rows_file_is_read(self, context, tmp_path):
        records = make_rows(40)
        rb = ReadBack(store_of(records))
        s = summary(records, path=write_jsonl(tmp_path / "w.jsonl", records), inline=False)
        assert sensor(rb, s, verify="all").execute(context)["rows_matching"] == 40

    def test_pending_rows_are_re_read_until_they_match(self, context):
        records = make_rows(20, not_complete_ops=[1])
        rb = ReadBack(store_of(r for r in records if r["operationStatus"] == "COMPLETE"))
        s = sensor(rb, summary(records), verify="all")
        calls = 0
        original = rb.__call__

        def apply_on_third_read(request):
            nonlocal calls
            calls += request.url.path.endswith("/batch/read")
            if calls == 3:
                rb.store.update(store_of(records))
            return original(request)

        s.__dict__["hook"] = HubCommHook(transport=httpx.MockTransport(apply_on_third_read))
        result = s.execute(context)
        assert result["rows_matching"] == 20
        assert result["checks"] == 3
        assert [len(ids) for ids in rb.requests] == [20, 10, 10]  # later pokes re-read only pending rows

    def test_canceled_fails_at_once_without_reading(self, context):
        rb = ReadBack()
        with pytest.raises(BatchCanceledError, match=r"operation #2 \(100 rows\)"):
            sensor(rb, summary(make_rows(5), canceled=CANCELED)).execute(context)
        assert rb.requests == []

    def test_canceled_with_soft_fail_skips(self, context):
        with pytest.raises(AirflowSkipException):
            sensor(ReadBack(), summary(make_rows(5), canceled=CANCELED), soft_fail=True).execute(context)

    def test_timeout_fails_with_pending_count_and_pushes_result(self, context):
        records = make_rows(20, not_complete_ops=[1])
        rb = ReadBack(store_of(r for r in records if r["operationStatus"] == "COMPLETE"))
        with pytest.raises(AirflowSensorTimeout, match=r"10 row\(s\) still pending") as err:
            sensor(rb, summary(records), timeout=0.2).execute(context)
        assert "user10@example.com subscription 101: expected UNSUBSCRIBED, read nothing" in str(err.value)
        assert pushed(context)["pending"] == 10

    def test_timeout_with_soft_fail_skips_with_details(self, context):
        records = make_rows(20, not_complete_ops=[1])
        rb = ReadBack(store_of(r for r in records if r["operationStatus"] == "COMPLETE"))
        with pytest.raises(AirflowSkipException, match=r"10 row\(s\) still pending"):
            sensor(rb, summary(records), timeout=0.2, soft_fail=True).execute(context)

    def test_mismatch_fails_after_two_reads_with_rows(self, context):
        records = make_rows(30, not_complete_ops=[2])
        store = store_of(records)
        store[("user4@example.com", 101)] = "SUBSCRIBED"
        rb = ReadBack(store)
        with pytest.raises(
            BatchMismatchError, match=r"user4@example\.com subscription 101: expected UNSUBSCRIBED"
        ) as e:
            sensor(rb, summary(records), verify="all").execute(context)
        assert e.value.result["mismatches"][0]["actual"] == "SUBSCRIBED"
        assert e.value.result["checks"] == 2
        assert pushed(context)["mismatch_count"] == 1

    def test_mismatch_reported_but_not_fatal_when_asked(self, context):
        records = make_rows(30)
        store = store_of(records)
        store[("user4@example.com", 101)] = "SUBSCRIBED"
        result = sensor(ReadBack(store), summary(records), verify="all", fail_on_mismatch=False).execute(context)
        assert result["mismatch_count"] == 1
        assert result["rows_matching"] == 29
        assert result["pending"] == 0

    def test_reschedule_mode_keeps_no_state_and_confirms_within_the_poke(self, context):
        records = make_rows(10)
        rb = ReadBack(store_of(records[:5]))  # the other rows are not found yet: pending, not mismatching
        s = sensor(rb, summary(records), verify="all", mode="reschedule")
        assert not s.poke(context)
        assert not s.poke(context)
        assert s._state is None
        assert [len(ids) for ids in rb.requests] == [10, 10]  # every poke starts from the summary
        rb.store[("user1@example.com", 102)] = "SUBSCRIBED"
        rb.store.update(store_of(records[5:]))
        with pytest.raises(BatchMismatchError):
            s.poke(context)
        assert [len(ids) for ids in rb.requests][-2:] == [10, 1]  # same-poke confirmation read


class TestDeferrable:
    def test_done_in_the_worker_does_not_defer(self, context):
        records = make_rows(10)
        result = sensor(ReadBack(store_of(records)), summary(records), deferrable=True).execute(context)
        assert result["rows_matching"] == 10

    def test_defers_with_inline_state_and_no_secret(self, context):
        records = make_rows(20, not_complete_ops=[0])
        rb = ReadBack(store_of(records[10:]))
        s = sensor(rb, summary(records), deferrable=True, poke_interval=3, timeout=60)
        with pytest.raises(TaskDeferred) as deferred:
            s.execute(context)
        trigger = deferred.value.trigger
        assert isinstance(trigger, BatchStatusTrigger)
        assert deferred.value.method_name == "execute_complete"
        assert deferred.value.timeout > timedelta(seconds=60)
        _, kwargs = trigger.serialize()
        text = json.dumps(kwargs)
        assert TOKEN not in text
        assert kwargs["rows_path"] is None
        assert len(kwargs["state"]["rows"]) == 10
        assert kwargs["poke_interval"] == 3
        assert kwargs["next_check_at"] is not None

    def test_big_verify_all_defers_the_whole_read_with_the_path(self, context, tmp_path):
        records = make_rows(6000)
        path = write_jsonl(tmp_path / "w.jsonl", records)
        rb = ReadBack()
        s = sensor(rb, summary(records, path=path, inline=False), verify="all", deferrable=True)
        with pytest.raises(TaskDeferred) as deferred:
            s.execute(context)
        _, kwargs = deferred.value.trigger.serialize()
        assert rb.requests == []
        assert kwargs["state"] is None
        assert kwargs["rows_path"] == path
        assert kwargs["next_check_at"] is None

    def test_canceled_fails_before_deferring(self, context):
        with pytest.raises(BatchCanceledError):
            sensor(ReadBack(), summary(make_rows(3), canceled=CANCELED), deferrable=True).execute(context)
        with pytest.raises(AirflowSkipException):
            sensor(ReadBack(), summary(make_rows(3), canceled=CANCELED), deferrable=True, soft_fail=True).execute(
                context
            )

    def test_execute_complete(self, context):
        s = sensor(ReadBack(), summary(make_rows(3)), deferrable=True)
        result = {"rows_matching": 3, "pending": 0}
        assert s.execute_complete(context, {"status": "success", "result": result}) == result
        with pytest.raises(AirflowSensorTimeout, match="7 row"):
            s.execute_complete(context, {"status": "timeout", "message": "7 rows pending", "result": {"pending": 7}})
        assert pushed(context) == {"pending": 7}
        with pytest.raises(BatchMismatchError, match="read SUBSCRIBED"):
            s.execute_complete(context, {"status": "mismatch", "message": "read SUBSCRIBED", "result": {}})
        with pytest.raises(BatchCanceledError):
            s.execute_complete(context, {"status": "canceled", "message": "canceled"})
        with pytest.raises(HubCommError, match="HTTP 403"):
            s.execute_complete(context, {"status": "error", "message": "HTTP 403"})

    def test_trigger_timeout_with_soft_fail_skips(self, context):
        s = sensor(ReadBack(), summary(make_rows(3)), deferrable=True, soft_fail=True)
        with pytest.raises(AirflowSkipException):
            s.resume_execution("execute_complete", {"event": {"status": "timeout", "message": "x"}}, context)
