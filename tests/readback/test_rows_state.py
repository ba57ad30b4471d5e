from __future__ import annotations

import gzip
import json

import pytest

from airflow_provider_hubcomm.hooks._catalog import Subscription, SubscriptionCatalog
from airflow_provider_hubcomm.readback import BatchSummaryError
from airflow_provider_hubcomm.readback.loop import plan_reads
from airflow_provider_hubcomm.readback.rows import (
    ReadbackRow,
    iter_written_rows,
    parse_summary,
    rows_to_check,
    select_rows,
)
from airflow_provider_hubcomm.readback.state import (
    VerificationState,
    build_result,
    canceled_message,
    mismatch_message,
    timeout_message,
)
from tests.sensors.readback import make_rows, record, summary, write_jsonl

ALL_BRAND_0 = SubscriptionCatalog([Subscription(101, "A", 0, True), Subscription(102, "B", 0, True)], [0])


def rows_of(records: list[dict]) -> list[ReadbackRow]:
    return [ReadbackRow.from_record(r) for r in records]


def test_failures_importable_from_the_package_and_the_sensor_module():
    from airflow_provider_hubcomm import readback
    from airflow_provider_hubcomm.sensors import hubcomm as sensor_module

    for name in ("BatchCanceledError", "BatchMismatchError", "BatchVerificationError", "BatchSummaryError"):
        assert getattr(readback, name) is getattr(sensor_module, name)
        assert issubclass(getattr(readback, name), readback.BatchVerificationError)


class TestParseSummary:
    def test_dict_json_and_python_literal(self):
        s = summary(make_rows(3))
        assert parse_summary(s) == s
        assert parse_summary(json.dumps(s)) == s
        assert parse_summary(repr(s)) == s

    @pytest.mark.parametrize("bad", [None, 3, "not a summary", ["a"]])
    def test_refuses_what_is_not_a_summary(self, bad):
        with pytest.raises(BatchSummaryError, match="batch"):
            parse_summary(bad)

    def test_refuses_written_rows_without_rows(self):
        s = summary(make_rows(3), inline=False)
        with pytest.raises(BatchSummaryError, match="neither 'written_rows' nor 'written_rows_path'"):
            parse_summary(s)

    def test_bad_record_names_it(self):
        with pytest.raises(BatchSummaryError, match="not usable"):
            ReadbackRow.from_record({"subscriberIdString": "a@x.com"})


class TestRows:
    def test_inline_rows_win_over_the_file(self, tmp_path):
        records = make_rows(4)
        s = summary(records, path=write_jsonl(tmp_path / "w.jsonl", make_rows(9)))
        assert len(list(iter_written_rows(s))) == 4

    @pytest.mark.parametrize("gz", [False, True])
    def test_streams_local_file_and_file_url(self, tmp_path, gz):
        records = make_rows(25)
        path = tmp_path / ("w.jsonl.gz" if gz else "w.jsonl")
        data = "".join(json.dumps(r) + "\n\n" for r in records).encode()
        path.write_bytes(gzip.compress(data) if gz else data)
        for where in (str(path), f"file://{path}"):
            rows = list(iter_written_rows(summary(records, path=where, inline=False)))
            assert [r.subscriber for r in rows] == [r["subscriberIdString"] for r in records]

    def test_key_is_case_insensitive(self):
        assert ReadbackRow.from_record(record("A@X.com", 101, "subscribed")).key == ("a@x.com", 101)
        assert ReadbackRow.from_record(record("A@X.com", 101, "subscribed")).expected == "SUBSCRIBED"


class TestSelection:
    def test_sample_is_deterministic_and_keeps_every_not_complete_row(self):
        rows = rows_of(make_rows(5000, per_op=100, not_complete_ops=[3, 17]))
        first = select_rows(rows, "sample", 300, seed=0)
        assert first == select_rows(iter(rows), "sample", 300, seed=0)
        assert first != select_rows(rows, "sample", 300, seed=1)
        not_complete = [r for r in first if not r.complete_at_write]
        assert len(not_complete) == 200
        assert {r.operation for r in not_complete} == {3, 17}
        assert len(first) == 500

    def test_sample_larger_than_rows_takes_all(self):
        rows = rows_of(make_rows(50))
        assert sorted(select_rows(rows, "sample", 1000, 0), key=lambda r: r.subscriber) == sorted(
            rows, key=lambda r: r.subscriber
        )

    def test_sample_is_spread_over_the_stream(self):
        rows = rows_of(make_rows(10_000))
        picked = {int(r.subscriber[4:].split("@")[0]) for r in select_rows(rows, "sample", 1000, 0)}
        assert len(picked) == 1000
        assert min(picked) < 1000
        assert max(picked) > 9000

    def test_none_reads_only_not_complete_rows_and_all_reads_all(self):
        rows = rows_of(make_rows(100, not_complete_ops=[2]))
        assert {r.operation for r in select_rows(rows, "none", 5, 0)} == {2}
        assert len(select_rows(rows, "all", 5, 0)) == 100

    def test_all_streams_the_file(self, tmp_path):
        s = summary(make_rows(30), path=write_jsonl(tmp_path / "w.jsonl", make_rows(30)), inline=False)
        stream = rows_to_check(iter_written_rows(s), "all", 5, 0)
        assert not isinstance(stream, list)
        assert len(list(stream)) == 30

    def test_duplicate_key_is_checked_once(self):
        rows = rows_of([record("a@x.com", 101, "SUBSCRIBED"), record("A@x.com", 101, "UNSUBSCRIBED")])
        assert [r.expected for r in select_rows(rows, "all", 1, 0)] == ["UNSUBSCRIBED"]


class TestPlanReads:
    def test_groups_by_subscriber_with_at_most_n_ids(self):
        rows = rows_of([record(f"u{i // 2}@x.com", 101 + i % 2, "SUBSCRIBED") for i in range(500)])
        plans = list(plan_reads(rows, ALL_BRAND_0, 100))
        assert [len(p.subscriber_ids) for p in plans] == [100, 100, 50]
        assert all(len(p.rows) == 2 * len(p.subscriber_ids) for p in plans)
        assert {p.brand for p in plans} == {0}


def meta(s: dict, **over) -> dict:
    return {
        "verify": "sample",
        "sample_size": 1000,
        "sample_seed": 0,
        "fail_on_mismatch": True,
        "conn_id": "hubcomm_default",
        "channel": "EMAIL",
        "rows_written": s["written"],
        "operations": s["operations"],
        **over,
    }


class TestState:
    def test_match_pending_then_complete(self):
        records = make_rows(20, per_op=10, not_complete_ops=[1])
        rows = rows_of(records)
        state = VerificationState()
        actual = {r.key: r.expected for r in rows if r.complete_at_write}
        state.observe(rows, actual, first_read=True)
        result = build_result(meta(summary(records)), state)
        assert (result["rows_verified"], result["rows_matching"], result["pending"]) == (20, 10, 10)
        assert result["operations"]["still_not_complete"] == [1]
        assert result["operations"]["by_status"] == {"COMPLETE": 1, "PENDING": 1}
        assert result["pending_rows"][0]["actual"] is None

        state.observe(list(state.outstanding.values()), {r.key: r.expected for r in rows}, first_read=False)
        result = build_result(meta(summary(records)), state)
        assert (result["rows_verified"], result["rows_matching"], result["pending"]) == (20, 20, 0)
        ops = result["operations"]
        assert ops["by_status"] == {"COMPLETE": 2, "PENDING": 0}
        assert ops["by_status_at_write"] == {"COMPLETE": 1, "PENDING": 1}
        assert ops["not_complete"][0]["status"] == "COMPLETE"
        assert ops["not_complete"][0]["status_at_write"] == "PENDING"
        assert ops["all_complete"]
        assert ops["verified_complete_by_read_back"] == [1]

    def test_mismatch_needs_two_identical_reads_of_a_complete_row(self):
        rows = rows_of([record("a@x.com", 101, "UNSUBSCRIBED"), record("b@x.com", 101, "UNSUBSCRIBED", 1, "PENDING")])
        wrong = {r.key: "SUBSCRIBED" for r in rows}
        state = VerificationState()
        state.observe(rows, wrong, first_read=True)
        assert state.confirmed() == []
        assert state.candidates() == [rows[0]]
        state.observe(rows, wrong, first_read=False)
        assert state.confirmed() == [rows[0]]  # the PENDING operation's row stays pending
        result = build_result(meta(summary([])), state)
        assert result["mismatches"] == [
            {
                "subscriber": "a@x.com",
                "subscription": 101,
                "expected": "UNSUBSCRIBED",
                "actual": "SUBSCRIBED",
                "operation": 0,
                "operationStatus": "COMPLETE",
            }
        ]
        assert result["pending"] == 1
        assert result["rows_verified"] == 2
        assert "a@x.com subscription 101: expected UNSUBSCRIBED, read SUBSCRIBED" in mismatch_message(result)

    def test_a_changing_or_missing_value_is_not_confirmed(self):
        rows = rows_of([record("a@x.com", 101, "UNSUBSCRIBED")])
        state = VerificationState()
        state.observe(rows, {}, first_read=True)
        state.observe(rows, {}, first_read=False)
        assert state.confirmed() == []  # not found twice: pending, not a mismatch
        state.observe(rows, {rows[0].key: "SUBSCRIBED"}, first_read=False)
        state.observe(rows, {rows[0].key: "NOT_SPECIFIED"}, first_read=False)
        assert state.confirmed() == []
        state.observe(rows, {rows[0].key: "UNSUBSCRIBED"}, first_read=False)
        assert not state.outstanding
        assert state.matching == 1

    def test_missing_status_matches_not_specified(self):
        rows = rows_of([record("a@x.com", 101, "NOT_SPECIFIED")])
        state = VerificationState()
        state.observe(rows, {}, first_read=True)
        assert state.matching == 1
        assert not state.outstanding

    def test_json_round_trip(self):
        rows = rows_of(make_rows(6, per_op=3, not_complete_ops=[1]))
        state = VerificationState()
        state.observe(rows, {rows[0].key: "SUBSCRIBED"}, first_read=True)
        state.checks = 1
        data = json.loads(json.dumps(state.to_json()))
        again = VerificationState.from_json(data)
        assert again.to_json() == state.to_json()
        assert again.outstanding == state.outstanding
        assert again.ops_at_write == {1: "PENDING"}

    def test_mismatch_list_is_capped(self):
        records = [record(f"u{i}@x.com", 101, "UNSUBSCRIBED") for i in range(1200)]
        rows = rows_of(records)
        state = VerificationState()
        for first in (True, False):
            state.observe(rows, {r.key: "SUBSCRIBED" for r in rows}, first_read=first)
        result = build_result(meta(summary(records)), state)
        assert result["mismatch_count"] == 1200
        assert len(result["mismatches"]) == 1000
        assert result["mismatches_truncated"]
        assert len(json.dumps(result)) < 200_000


class TestMessages:
    def test_canceled_names_operations_and_reason(self):
        s = summary(make_rows(10), canceled=[{"index": 4, "rows": 100, "reason": "HubSpot canceled it"}])
        text = canceled_message(s)
        assert text
        assert "operation #4 (100 rows): HubSpot canceled it" in text
        assert "CANCELED" in text
        assert canceled_message(summary(make_rows(10))) is None

    def test_timeout_gives_pending_count_and_rows(self):
        records = make_rows(3, not_complete_ops=[0])
        state = VerificationState()
        state.observe(rows_of(records), {}, first_read=True)
        text = timeout_message(build_result(meta(summary(records)), state), 12)
        assert "Timed out after 12s with 3 row(s) still pending" in text
        assert "user0@example.com subscription 101: expected UNSUBSCRIBED, read nothing" in text
