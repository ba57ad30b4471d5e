"""Unit tests of the batch-write engine, with an in-memory HubSpot behind httpx.MockTransport."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from airflow_provider_hubcomm.batch.chunk import reconcile
from airflow_provider_hubcomm.batch.options import BatchWriteOptions
from airflow_provider_hubcomm.batch.reasons import MISSING_REASON
from airflow_provider_hubcomm.batch.rows import WriteRow
from airflow_provider_hubcomm.exceptions import (
    BatchAbortedError,
    HubCommConfigError,
    HubCommThresholdError,
    HubCommValidationError,
)
from airflow_provider_hubcomm.models import BatchWriteResponse
from tests.batch._mini import MiniHubSpot, assert_adds_up, read_lines, rows, run


class TestReconcile:
    def test_matches_by_pair_then_subscriber_then_first_error(self) -> None:
        sent = [
            (1, WriteRow("A@x.com", 101, "SUBSCRIBED", "EMAIL", None, None)),
            (2, WriteRow("a@x.com", 102, "SUBSCRIBED", "EMAIL", None, None)),
            (3, WriteRow("b@x.com", 101, "SUBSCRIBED", "EMAIL", None, None)),
            (4, WriteRow("c@x.com", 101, "SUBSCRIBED", "EMAIL", None, None)),
        ]
        answer = BatchWriteResponse.model_validate(
            {
                "status": "COMPLETE",
                "results": [{"subscriberIdString": "a@x.com", "subscriptionId": 101}],
                "errors": [
                    {"category": "FIRST", "message": "first", "context": {}},
                    {"category": "BY_SUB", "message": "sub", "context": {"subscriberIdString": ["B@X.COM"]}},
                    {
                        "category": "BY_PAIR",
                        "message": "pair",
                        "context": {"subscriberIdString": ["a@x.com"], "subscriptionId": ["102"]},
                    },
                ],
            }
        )
        written, failed = reconcile(sent, answer)
        assert [r for r, _ in written] == [1]  # case-insensitive subscriber match
        assert {r: reason.key for r, _, reason in failed} == {2: "BY_PAIR: pair", 3: "BY_SUB: sub", 4: "FIRST: first"}

    def test_missing_without_errors(self) -> None:
        sent = [(7, WriteRow("a@x.com", 101, "SUBSCRIBED", "EMAIL", None, None))]
        written, failed = reconcile(sent, BatchWriteResponse.model_validate({"status": "COMPLETE", "results": []}))
        assert written == []
        assert failed[0][2].message == MISSING_REASON


class TestValidation:
    def test_fail_mode_names_rows_and_sends_nothing(self, tmp_path: Path) -> None:
        api = MiniHubSpot()
        bad = [*rows(3), {"subscriberIdString": "x@y.com", "subscriptionId": 101, "statusState": "subscribd"}]
        bad.append({"subscriberIdString": "nope", "subscriptionId": 101, "statusState": "SUBSCRIBED"})
        with pytest.raises(HubCommValidationError, match="2 of 5 input rows are invalid") as info:
            run(api, bad, tmp_path)
        message = str(info.value)
        assert "row 4" in message
        assert "statusState" in message
        assert "SUBSCRIBED, UNSUBSCRIBED, NOT_SPECIFIED" in message
        assert "row 5" in message
        assert "subscriberIdString" in message
        assert {e["row"] for e in info.value.errors} == {4, 5}
        assert api.calls == 0
        assert list(tmp_path.iterdir()) == []

    def test_skip_mode_counts_and_lists_invalid_rows(self, tmp_path: Path) -> None:
        api = MiniHubSpot()
        data = [*rows(3), {"subscriberIdString": "x@y.com", "subscriptionId": 0, "statusState": "SUBSCRIBED"}]
        summary = run(api, data, tmp_path, on_invalid="skip")
        assert_adds_up(summary)
        assert summary["written"] == 3
        assert summary["skipped_by_reason"]["invalid"] == 1
        (line,) = read_lines(summary["failed_rows_path"])
        assert line["row"] == 4
        assert line["outcome"] == "skipped"
        assert line["reason"] == "invalid"
        assert line["errors"][0]["field"] == "subscriptionId"
        assert line["input"]["subscriptionId"] == 0

    def test_status_is_case_insensitive_and_column_map_defaults_apply(self, tmp_path: Path) -> None:
        api = MiniHubSpot()
        data = [{"email": "A@example.com", "state": "subscribed"}, {"email": "b@example.com", "state": "Unsubscribed"}]
        summary = run(
            api,
            data,
            tmp_path,
            column_map={"email": "subscriberIdString", "state": "statusState"},
            defaults={"subscriptionId": 102},
            allow_resubscribe=True,
        )
        assert summary["written"] == 2
        assert api.writes[0] == [
            {
                "subscriberIdString": "A@example.com",
                "subscriptionId": 102,
                "statusState": "SUBSCRIBED",
                "channel": "EMAIL",
            },
            {
                "subscriberIdString": "b@example.com",
                "subscriptionId": 102,
                "statusState": "UNSUBSCRIBED",
                "channel": "EMAIL",
            },
        ]

    @pytest.mark.parametrize(
        ("option", "value"),
        [
            ("batch_size", 1001),
            ("batch_size", 0),
            ("max_concurrency", 0),
            ("max_failed_ratio", 1.5),
            ("on_invalid", "x"),
        ],
    )
    def test_bad_options(self, option: str, value: Any) -> None:
        with pytest.raises(HubCommConfigError, match=rf"\n{option}: invalid value {value!r}: must be"):
            BatchWriteOptions(**{option: value})


class TestSending:
    def test_chunks_and_duplicates_last_row_wins(self, tmp_path: Path) -> None:
        api = MiniHubSpot()
        data = rows(250, state="UNSUBSCRIBED")
        data.append({"subscriberIdString": "USER3@example.com", "subscriptionId": 101, "statusState": "NOT_SPECIFIED"})
        summary = run(api, data, tmp_path, batch_size=100)
        assert_adds_up(summary)
        assert sorted(len(w) for w in api.writes) == [50, 100, 100]  # row 4 superseded by row 251
        assert summary["skipped_by_reason"]["duplicate"] == 1
        assert summary["written"] == 250
        assert api.state[("user3@example.com", 101)] == "NOT_SPECIFIED"
        assert summary["plan"] == {
            "rows_to_send": 250,
            "chunks": 3,
            "batch_size": 100,
            "max_concurrency": 4,
            "batch_size_used": 100,
            "batch_size_reduced": False,
        }
        assert summary["mode"] == "batch"
        assert summary["requests"] == 4  # one definitions read (brand 0), three writes
        assert summary["operations"]["total"] == 3
        manifest = read_lines(summary["written_rows_path"])
        assert len(manifest) == 250
        assert summary["written_rows"] is not None
        assert len(summary["written_rows"]) == 250
        assert {"row", "subscriberIdString", "subscriptionId", "statusState", "operation", "operationStatus"} == set(
            manifest[0]
        )
        assert summary["failed_rows_path"] is None  # nothing failed: no file

    def test_207_per_row_failures(self, tmp_path: Path) -> None:
        api = MiniHubSpot()
        data = rows(10)
        data[2]["subscriptionId"] = data[7]["subscriptionId"] = 999
        failed_path = tmp_path / "out" / "failed.jsonl"
        summary = run(api, data, tmp_path, failed_rows_path=str(failed_path))
        assert_adds_up(summary)
        assert (summary["written"], summary["failed"]) == (8, 2)
        assert summary["failed_by_reason"] == {"OBJECT_NOT_FOUND: no such": 2}
        lines = read_lines(str(failed_path))
        assert sorted(line["row"] for line in lines) == [3, 8]
        assert lines[0]["outcome"] == "failed"
        assert lines[0]["input"]["subscriptionId"] == 999

    def test_whole_chunk_failures_fail_only_their_rows(self, tmp_path: Path) -> None:
        def override(request: httpx.Request, n: int) -> httpx.Response | Exception | None:
            first = json.loads(request.content)["inputs"][0]["subscriberIdString"]
            if first == "user0@example.com":
                body = {
                    "status": "error",
                    "category": "VALIDATION_ERROR",
                    "message": "bad batch",
                    "correlationId": "c-1",
                }
                return httpx.Response(400, json=body)
            if first == "user10@example.com":
                return httpx.Response(503, json={"message": "down"})
            if first == "user20@example.com":
                return httpx.ConnectError("refused")
            return None

        api = MiniHubSpot(override)
        summary = run(api, rows(40), tmp_path, batch_size=10)
        assert_adds_up(summary)
        assert (summary["written"], summary["failed"]) == (10, 30)
        reasons = summary["failed_by_reason"]
        assert reasons["VALIDATION_ERROR: bad batch"] == 10
        assert any(k.startswith("HTTP 503") and v == 10 for k, v in reasons.items())
        assert any(k.startswith("NO_ANSWER") and v == 10 for k, v in reasons.items())
        assert summary["retries"] == 2  # the 503 and the connect error were retried once each
        lines = {line["row"]: line for line in read_lines(summary["failed_rows_path"])}
        assert lines[1]["correlationId"] == "c-1"

    @pytest.mark.parametrize(
        ("status", "body"),
        [
            (401, {"category": "INVALID_AUTHENTICATION", "message": "token revoked"}),
            (429, {"errorType": "RATE_LIMIT", "policyName": "DAILY", "message": "daily limit"}),
        ],
    )
    def test_fatal_error_aborts_and_counts_the_rest(self, tmp_path: Path, status: int, body: dict[str, Any]) -> None:
        def override(request: httpx.Request, n: int) -> httpx.Response | None:
            return httpx.Response(status, json=body) if n == 3 else None

        api = MiniHubSpot(override)
        with pytest.raises(BatchAbortedError, match=body["message"]) as info:
            run(api, rows(100), tmp_path, batch_size=10, max_concurrency=1)
        summary = info.value.summary
        assert_adds_up(summary)
        # Chunks 1-2 were written, chunk 3 got the fatal answer; chunk 4 may already have been in flight
        # (at most 2 * max_concurrency are), nothing after it was sent.
        assert api.calls in (3, 4)
        assert summary["written"] == 10 * (api.calls - 1)
        fatal = [k for k in summary["failed_by_reason"] if body["message"] in k and not k.startswith("not sent")]
        assert len(fatal) == 1
        assert summary["failed_by_reason"][fatal[0]] == 10
        not_sent = [k for k in summary["failed_by_reason"] if k.startswith("not sent: run aborted:")]
        assert len(not_sent) == 1
        assert summary["failed_by_reason"][not_sent[0]] == 100 - 10 * api.calls
        assert len(read_lines(summary["failed_rows_path"])) == summary["failed"]

    def test_canceled_and_pending_operations(self, tmp_path: Path) -> None:
        canceled = run(MiniHubSpot(status="CANCELED"), rows(5), tmp_path)
        assert_adds_up(canceled)
        assert canceled["failed_by_reason"] == {"batch operation CANCELED by HubSpot": 5}
        assert canceled["operations"]["canceled"] == [
            {"index": 0, "rows": 5, "reason": "batch operation CANCELED by HubSpot"}
        ]
        pending = run(MiniHubSpot(status="PENDING"), rows(5), tmp_path)
        assert pending["written"] == 5
        assert pending["operations"]["by_status"]["PENDING"] == 1
        assert pending["operations"]["not_complete"][0]["rows"] == 5
        assert {r["operationStatus"] for r in pending["written_rows"]} == {"PENDING"}

    def test_concurrency_is_bounded(self, tmp_path: Path) -> None:
        api = MiniHubSpot(delay=0.01)
        summary = run(api, rows(300), tmp_path, batch_size=10, max_concurrency=3)
        assert summary["written"] == 300
        assert 1 < api.max_active <= 3

    def test_dry_run_sends_nothing(self, tmp_path: Path) -> None:
        api = MiniHubSpot()
        data = [*rows(250), *rows(5)]  # 5 duplicates
        summary = run(api, data, tmp_path, dry_run=True, batch_size=100)
        assert_adds_up(summary)
        assert api.calls == 0
        assert summary["dry_run"] is True
        assert summary["skipped_by_reason"]["dry_run"] == 250
        assert summary["skipped_by_reason"]["duplicate"] == 5
        assert summary["plan"]["rows_to_send"] == 250
        assert summary["plan"]["chunks"] == 3
        assert summary["written_rows_path"] is None
        assert summary["requests"] == api.definition_reads == 1  # a dry run preflights the subscriptions


class TestReads:
    def test_only_changes_skips_unchanged_rows(self, tmp_path: Path) -> None:
        api = MiniHubSpot()
        api.state.update({("user0@example.com", 101): "UNSUBSCRIBED", ("user1@example.com", 101): "UNSUBSCRIBED"})
        summary = run(api, rows(5, state="UNSUBSCRIBED"), tmp_path, only_changes=True)
        assert_adds_up(summary)
        assert (summary["written"], summary["unchanged"]) == (3, 2)
        assert [len(r) for r in api.reads] == [5]
        assert [i["subscriberIdString"] for i in api.writes[0]] == [f"user{i}@example.com" for i in (2, 3, 4)]

    def test_resubscribe_guard_skips_opted_out_contacts(self, tmp_path: Path) -> None:
        api = MiniHubSpot()
        api.state[("user1@example.com", 101)] = "UNSUBSCRIBED"
        summary = run(api, rows(3, state="SUBSCRIBED"), tmp_path)
        assert_adds_up(summary)
        assert summary["written"] == 2
        assert summary["skipped_by_reason"]["resubscribe_not_allowed"] == 1
        assert api.state[("user1@example.com", 101)] == "UNSUBSCRIBED"
        (line,) = read_lines(summary["failed_rows_path"])
        assert line["reason"] == "resubscribe_not_allowed"
        assert line["row"] == 2

    def test_resubscribe_allowed_reads_nothing(self, tmp_path: Path) -> None:
        api = MiniHubSpot()
        api.state[("user1@example.com", 101)] = "UNSUBSCRIBED"
        summary = run(api, rows(3, state="SUBSCRIBED"), tmp_path, allow_resubscribe=True)
        assert summary["written"] == 3
        assert api.reads == []
        assert api.state[("user1@example.com", 101)] == "SUBSCRIBED"

    def test_no_read_for_chunks_without_subscribed_rows(self, tmp_path: Path) -> None:
        api = MiniHubSpot()
        run(api, [*rows(10, state="UNSUBSCRIBED"), *rows(10, start=10, state="SUBSCRIBED")], tmp_path, batch_size=10)
        assert len(api.reads) == 1
        assert api.reads[0][0] == "user10@example.com"

    def test_failed_read_fails_the_chunk(self, tmp_path: Path) -> None:
        def override(request: httpx.Request, n: int) -> httpx.Response | None:
            if request.url.path.endswith("/batch/read"):
                return httpx.Response(400, json={"category": "VALIDATION_ERROR", "message": "nope"})
            return None

        api = MiniHubSpot(override)
        summary = run(api, rows(4, state="SUBSCRIBED"), tmp_path)
        assert summary["failed"] == 4
        assert api.writes == []
        assert list(summary["failed_by_reason"]) == ["VALIDATION_ERROR: status read before write failed: nope"]

    def test_unreadable_subscriber_is_not_resubscribed_blindly(self, tmp_path: Path) -> None:
        def override(request: httpx.Request, n: int) -> httpx.Response | None:
            if request.url.path.endswith("/batch/read"):
                context = {"subscriberIdString": ["user0@example.com"]}
                error = {"category": "VALIDATION_ERROR", "message": "cannot read", "context": context}
                return httpx.Response(207, json={"status": "COMPLETE", "results": [], "errors": [error]})
            return None

        api = MiniHubSpot(override)
        data = [*rows(1, state="SUBSCRIBED"), *rows(1, start=1, state="UNSUBSCRIBED")]
        summary = run(api, data, tmp_path)
        assert summary["written"] == 1
        assert [i["subscriberIdString"] for i in api.writes[0]] == ["user1@example.com"]
        (reason,) = summary["failed_by_reason"]
        assert reason.startswith("VALIDATION_ERROR: current status unreadable")


class TestThresholds:
    def test_max_failed_rows(self, tmp_path: Path) -> None:
        data = rows(10)
        for row in data[:3]:
            row["subscriptionId"] = 999
        assert run(MiniHubSpot(), data, tmp_path, max_failed_rows=3)["failed"] == 3
        with pytest.raises(HubCommThresholdError, match="3 rows failed, more than max_failed_rows=2") as info:
            run(MiniHubSpot(), data, tmp_path, max_failed_rows=2)
        assert info.value.summary["written"] == 7  # the writes happened; the task fails afterwards

    def test_max_failed_ratio(self, tmp_path: Path) -> None:
        data = rows(10)
        data[0]["subscriptionId"] = 999
        assert run(MiniHubSpot(), data, tmp_path, max_failed_ratio=0.1)["failed"] == 1
        with pytest.raises(HubCommThresholdError, match=r"max_failed_ratio=0\.05"):
            run(MiniHubSpot(), data, tmp_path, max_failed_ratio=0.05)


class TestOutputs:
    def test_object_storage_url_targets(self, tmp_path: Path) -> None:
        data = rows(4)
        data[0]["subscriptionId"] = 999
        target = f"file://{tmp_path}/remote/failed.jsonl"
        summary = run(MiniHubSpot(), data, tmp_path, failed_rows_path=target, output_dir=f"file://{tmp_path}/outs")
        assert summary["failed_rows_path"] == target
        assert len((tmp_path / "remote" / "failed.jsonl").read_text().splitlines()) == 1
        assert summary["written_rows_path"].startswith(f"file://{tmp_path}/outs/hubcomm-written-")
        assert len(list((tmp_path / "outs").iterdir())) == 1

    def test_named_failed_file_is_created_even_when_empty(self, tmp_path: Path) -> None:
        summary = run(MiniHubSpot(), rows(2), tmp_path, failed_rows_path=str(tmp_path / "f.jsonl"))
        assert summary["failed"] == 0
        assert (tmp_path / "f.jsonl").read_text() == ""


_RSS_PROBE = """
import resource, sys
import httpx
from airflow.sdk import Connection
from airflow_provider_hubcomm.batch.engine import BatchWriteEngine, BatchWriteOptions
from airflow_provider_hubcomm.hooks.hubcomm import HubCommHook

DEFS = {"status": "COMPLETE", "results": [{"id": str(i), "name": f"s{i}", "isActive": True} for i in (101, 102, 103)]}
conn = Connection(conn_id="hubcomm_default", conn_type="hubcomm", host="https://api.unit.test", password="pat-x")
hook = HubCommHook(transport=httpx.MockTransport(lambda r: httpx.Response(200, json=DEFS)), connection=conn)

def rows(n):
    for i in range(n):
        yield {"subscriberIdString": f"u{i}@example.com", "subscriptionId": 101 + i % 3, "statusState": "SUBSCRIBED"}

before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
summary = BatchWriteEngine(hook, BatchWriteOptions(dry_run=True, output_dir=sys.argv[2])).run(rows(int(sys.argv[1])))
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(summary["plan"]["rows_to_send"], (after - before) // 1024)
"""


class TestStreaming:
    def test_generator_is_consumed_once(self, tmp_path: Path) -> None:
        calls = []

        def generate() -> Iterator[dict[str, Any]]:
            calls.append(1)
            yield from rows(30)

        api = MiniHubSpot()
        summary = run(api, generate(), tmp_path, batch_size=7)
        assert calls == [1]
        assert summary["written"] == 30
        assert len(api.writes) == 5

    def test_object_storage_path_input(self, tmp_path: Path) -> None:
        from airflow.providers.common.compat.sdk import ObjectStoragePath

        source = tmp_path / "in.csv"
        source.write_text(
            "subscriberIdString,subscriptionId,statusState\na@x.com,101,unsubscribed\nb@x.com,102,NOT_SPECIFIED\n"
        )
        api = MiniHubSpot()
        summary = run(api, ObjectStoragePath(f"file://{source}"), tmp_path)
        assert summary["written"] == 2
        assert api.state == {("a@x.com", 101): "UNSUBSCRIBED", ("b@x.com", 102): "NOT_SPECIFIED"}

    @pytest.mark.slow
    def test_memory_does_not_grow_with_rows(self, tmp_path: Path) -> None:
        # 250k rows kept as objects would add about 40 MB; the engine keeps an 8 MB bitmap and one block.
        import subprocess
        import sys

        out = subprocess.run(
            [sys.executable, "-c", _RSS_PROBE, "250000", str(tmp_path)],
            capture_output=True,
            text=True,
            check=True,
            timeout=120,
        )
        sent, grown_mb = map(int, out.stdout.split()[-2:])
        assert sent == 250_000
        assert grown_mb < 25, f"peak RSS grew by {grown_mb} MB"
