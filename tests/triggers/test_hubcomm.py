from __future__ import annotations

import asyncio
import functools
import importlib
import json
import operator
import time
from typing import TYPE_CHECKING

import pytest

from airflow_provider_hubcomm.readback.rows import ReadbackRow
from airflow_provider_hubcomm.readback.state import VerificationState
from airflow_provider_hubcomm.triggers import BatchStatusTrigger
from tests.sensors.readback import TOKEN, ReadBack, make_rows, set_conn, store_of, summary, write_jsonl

if TYPE_CHECKING:
    from airflow.triggers.base import TriggerEvent

    from airflow_provider_hubcomm.hooks.hubcomm import HubCommHook


@pytest.fixture(autouse=True)
def _conn(monkeypatch):
    set_conn(monkeypatch)


def meta_for(records, **over):
    s = summary(records)
    return {
        "verify": "sample",
        "sample_size": 1000,
        "sample_seed": 0,
        "fail_on_mismatch": True,
        "conn_id": "hubcomm_default",
        "channel": "EMAIL",
        "rows_written": len(records),
        "operations": s["operations"],
        **over,
    }


def handoff(records, store) -> dict:
    """The state the sensor hands over after its own first check."""
    state = VerificationState()
    rows = [ReadbackRow.from_record(r) for r in records]
    state.observe(rows, {k: v for k, v in store.items()}, first_read=True)
    state.checks = 1
    return state.to_json()


class SpyTrigger(BatchStatusTrigger):
    """Keeps the hook it built, to check that its async client was closed."""

    def _hook(self) -> HubCommHook:
        self.built = super()._hook()
        return self.built


def trigger(readback: ReadBack, records, **over) -> SpyTrigger:
    kwargs = {
        "meta": meta_for(records),
        "poke_interval": 0.05,
        "deadline": time.time() + 5,
        "timeout": 5,
        "state": handoff(records, readback.store),
        "async_transport": readback.async_transport(),
    }
    kwargs.update(over)
    return SpyTrigger(**kwargs)


async def events(t: BatchStatusTrigger) -> list[TriggerEvent]:
    return [e async for e in t.run()]


class TestBatchStatusTrigger:
    def test_serialize_round_trip_is_json_without_secrets(self):
        records = make_rows(4, not_complete_ops=[0])
        t = BatchStatusTrigger(
            meta=meta_for(records),
            poke_interval=2,
            deadline=123.5,
            timeout=60,
            state=handoff(records, {}),
            async_transport=ReadBack().async_transport(),
        )
        path, kwargs = t.serialize()
        assert path == "airflow_provider_hubcomm.triggers.hubcomm.BatchStatusTrigger"
        text = json.dumps(kwargs)
        assert TOKEN not in text
        assert "async_transport" not in kwargs
        module, name = path.rsplit(".", 1)
        again = getattr(importlib.import_module(module), name)(**json.loads(text))
        assert again.serialize() == (path, kwargs)

    def test_needs_state_or_path(self):
        with pytest.raises(ValueError, match="state or a rows_path"):
            BatchStatusTrigger(meta={}, poke_interval=1, deadline=0, timeout=0)

    async def test_condition_already_true_completes_at_once(self):
        records = make_rows(30, not_complete_ops=[1])
        rb = ReadBack(store_of(records))
        t = trigger(rb, records, poke_interval=30, state=handoff(records, {}))
        started = time.monotonic()
        got = await events(t)
        assert time.monotonic() - started < 5
        assert len(got) == 1
        event = got[0].payload
        assert event["status"] == "success"
        result = event["result"]
        assert (result["rows_verified"], result["rows_matching"], result["pending"]) == (30, 30, 0)
        assert result["operations"]["by_status"] == {"COMPLETE": 3, "PENDING": 0}
        assert "async_client" not in t.built.__dict__  # closed

    async def test_waits_for_pending_rows_then_succeeds(self):
        records = make_rows(20, not_complete_ops=[1])
        rb = ReadBack(store_of(r for r in records if r["operationStatus"] == "COMPLETE"))
        t = trigger(rb, records)

        async def apply_later():
            await asyncio.sleep(0.3)
            rb.store.update(store_of(records))

        applier = asyncio.create_task(apply_later())
        got = await events(t)
        await applier
        assert [e.payload["status"] for e in got] == ["success"]
        result = got[0].payload["result"]
        assert result["checks"] > 2
        assert result["rows_matching"] == 20
        assert result["operations"]["verified_complete_by_read_back"] == [1]
        # only the outstanding rows were re-read after the hand-over
        assert {len(ids) for ids in rb.requests} == {10}

    async def test_timeout_reports_pending_count(self):
        records = make_rows(12, not_complete_ops=[0])
        rb = ReadBack(store_of(r for r in records if r["operationStatus"] == "COMPLETE"))
        t = trigger(rb, records, deadline=time.time() + 0.3, timeout=0.3)
        got = await events(t)
        assert len(got) == 1
        event = got[0].payload
        assert event["status"] == "timeout"
        assert event["pending"] == 10
        assert "10 row(s) still pending" in event["message"]
        assert event["result"]["pending_rows"][0]["subscriber"] == "user0@example.com"

    async def test_mismatch_on_complete_operation(self):
        records = make_rows(5)
        store = store_of(records)
        store[("user3@example.com", 102)] = "SUBSCRIBED"
        rb = ReadBack(store)
        got = await events(trigger(rb, records))
        event = got[0].payload
        assert event["status"] == "mismatch"
        assert event["result"]["mismatches"][0]["subscriber"] == "user3@example.com"
        assert "expected UNSUBSCRIBED, read SUBSCRIBED" in event["message"]

    async def test_mismatch_reported_without_failing_when_asked(self):
        records = make_rows(5)
        store = store_of(records)
        store[("user3@example.com", 102)] = "SUBSCRIBED"
        got = await events(trigger(ReadBack(store), records, meta=meta_for(records, fail_on_mismatch=False)))
        event = got[0].payload
        assert event["status"] == "success"
        assert event["result"]["mismatch_count"] == 1

    async def test_starts_from_the_rows_file_for_verify_all(self, tmp_path):
        records = make_rows(250)
        path = write_jsonl(tmp_path / "written.jsonl", records)
        rb = ReadBack(store_of(records))
        t = trigger(rb, records, state=None, rows_path=path, meta=meta_for(records, verify="all"))
        got = await events(t)
        assert got[0].payload["status"] == "success"
        assert got[0].payload["result"]["rows_verified"] == 250
        assert [len(ids) for ids in rb.requests] == [100, 100, 50]

    async def test_recomputes_the_same_sample_from_the_file(self, tmp_path):
        records = make_rows(400)
        path = write_jsonl(tmp_path / "written.jsonl", records)
        rb = ReadBack(store_of(records))
        t = trigger(rb, records, state=None, rows_path=path, meta=meta_for(records, sample_size=25, sample_seed=7))
        got = await events(t)
        assert got[0].payload["result"]["rows_verified"] == 25
        first = sorted(functools.reduce(operator.iadd, rb.requests, []))
        rb.requests.clear()
        await events(
            trigger(rb, records, state=None, rows_path=path, meta=meta_for(records, sample_size=25, sample_seed=7))
        )
        assert sorted(functools.reduce(operator.iadd, rb.requests, [])) == first

    async def test_api_error_becomes_error_event_and_client_is_closed(self):
        records = make_rows(3)
        rb = ReadBack(store_of(records))
        rb.fail_with = 403
        t = trigger(rb, records, state=None, rows_path="/nonexistent", meta=meta_for(records))
        got = await events(t)
        assert len(got) == 1
        assert got[0].payload["status"] == "error"
        assert "FileNotFoundError" in got[0].payload["message"]
        t2 = trigger(rb, records, state=handoff(records, {}))
        got = await events(t2)
        assert got[0].payload["status"] == "error"
        assert "HTTP 403" in got[0].payload["message"]
        assert "async_client" not in t2.built.__dict__

    async def test_next_check_at_delays_the_first_read_only(self):
        records = make_rows(4, not_complete_ops=[0])
        rb = ReadBack(store_of(records))
        t = trigger(rb, records, state=handoff(records, {}), next_check_at=time.time() + 0.4)
        started = time.monotonic()
        got = await events(t)
        assert time.monotonic() - started >= 0.35
        assert got[0].payload["status"] == "success"
        assert len(rb.requests) == 1
