"""The batch engine against HubSpot's published contract (issue 16): brands, packed guard, preflight, tiers.

HubSpot is the in-memory :class:`~tests.batch._mini.MiniHubSpot` behind ``httpx.MockTransport``; it models
per-brand reads, 200-with-``errors[]`` answers, ``PENDING`` answers without results, an account without batch
scopes and a batch-size cap.
"""

from __future__ import annotations

import ast
import logging
from pathlib import Path
from typing import Any

import httpx
import pytest

from airflow_provider_hubcomm.batch.reasons import classify_error, is_missing_scopes, is_too_large
from airflow_provider_hubcomm.exceptions import (
    BatchAbortedError,
    HubCommAuthError,
    HubCommRateLimitError,
    HubCommRequestRejectedError,
    HubCommValidationError,
)
from tests.batch._mini import TOKEN, MiniHubSpot, assert_adds_up, read_lines, rows, run

BRANDED = {
    101: ("Newsletter", 0, True),
    102: ("Product updates", 0, True),
    103: ("Events", 0, True),
    201: ("Brand news", 7, True),
}
BRAND_7 = {"business_unit_ids": [7]}


def mixed(n: int, *, every: int = 3, sid: int = 101) -> list[dict[str, Any]]:
    """``n`` distinct subscribers; every ``every``-th row writes SUBSCRIBED, the others UNSUBSCRIBED."""
    return [
        {
            "subscriberIdString": f"user{i}@example.com",
            "subscriptionId": sid,
            "statusState": "SUBSCRIBED" if i % every == 0 else "UNSUBSCRIBED",
        }
        for i in range(n)
    ]


class TestPackedGuard:
    def test_reads_only_subscribed_rows_packed_across_chunks(self, tmp_path: Path) -> None:
        api = MiniHubSpot()
        for i in range(0, 300, 3):  # every guarded subscriber already has a status: no wide read needed
            api.state[(f"user{i}@example.com", 101)] = "SUBSCRIBED" if i % 2 else "UNSUBSCRIBED"
        summary = run(api, mixed(300), tmp_path, batch_size=10)
        assert_adds_up(summary)
        # 100 guarded subscribers in full reads of 10; the old guard read each of 30 chunks.
        assert sorted(len(r) for r in api.reads) == [10] * 10
        assert {s for r in api.reads for s in r} == {f"user{i}@example.com" for i in range(0, 300, 3)}
        assert api.wide_reads == []
        assert summary["skipped_by_reason"]["resubscribe_not_allowed"] == 50
        assert summary["written"] == 250
        assert summary["requests"] == 1 + 10 + 25  # definitions, reads, writes of 10

    def test_subscriber_with_two_guarded_rows_is_read_once(self, tmp_path: Path) -> None:
        api = MiniHubSpot()
        data = [*rows(20, state="SUBSCRIBED", sid=101), *rows(20, state="SUBSCRIBED", sid=102)]
        api.state[("user4@example.com", 102)] = "UNSUBSCRIBED"
        api.state.update({(f"user{i}@example.com", 101): "SUBSCRIBED" for i in range(20)})
        api.state.update({(f"user{i}@example.com", 102): "SUBSCRIBED" for i in range(20) if i != 4})
        summary = run(api, data, tmp_path, batch_size=10)
        assert_adds_up(summary)
        reads = [s for r in api.reads for s in r]
        assert sorted(reads) == sorted(f"user{i}@example.com" for i in range(20))  # the 102 rows: from the cache
        assert summary["skipped_by_reason"]["resubscribe_not_allowed"] == 1
        assert summary["written"] == 39

    def test_opted_out_of_all_is_not_resubscribed(self, tmp_path: Path) -> None:
        api = MiniHubSpot()
        api.state[("user1@example.com", 101)] = "SUBSCRIBED"  # decided by the status read: no wide read
        api.state[("user2@example.com", 101)] = "UNSUBSCRIBED"
        api.wide.add(("user0@example.com", 0))  # NOT_SPECIFIED, but opted out of all e-mail
        summary = run(api, rows(4, state="SUBSCRIBED"), tmp_path)
        assert_adds_up(summary)
        assert summary["written"] == 2
        assert summary["skipped_by_reason"]["resubscribe_not_allowed"] == 2
        assert [sorted(r) for r in api.wide_reads] == [["user0@example.com", "user3@example.com"]]
        assert api.state.get(("user0@example.com", 101)) is None
        lines = {line["row"]: line for line in read_lines(summary["failed_rows_path"])}
        assert set(lines) == {1, 3}
        assert "opted out of all e-mail" in lines[1]["message"]
        assert "UNSUBSCRIBED from subscription 101" in lines[3]["message"]

    def test_unreadable_wide_status_fails_instead_of_resubscribing(self, tmp_path: Path) -> None:
        def override(request: httpx.Request, n: int) -> httpx.Response | None:
            if request.url.path.endswith("/unsubscribe-all/read"):
                return httpx.Response(500, json={"category": "INTERNAL", "message": "boom"})
            return None

        api = MiniHubSpot(override)
        summary = run(api, [*rows(2, state="SUBSCRIBED"), *rows(2, start=2)], tmp_path)
        assert_adds_up(summary)
        assert summary["written"] == 2
        assert summary["failed_by_reason"] == {"INTERNAL: opt-out-of-all read before write failed: boom": 2}
        assert {w["subscriberIdString"] for chunk in api.writes for w in chunk} == {
            "user2@example.com",
            "user3@example.com",
        }

    @pytest.mark.parametrize("endpoint", ["/statuses/batch/read", "/unsubscribe-all/read"])
    def test_fatal_read_aborts_and_accounts_every_row(self, tmp_path: Path, endpoint: str) -> None:
        def override(request: httpx.Request, n: int) -> httpx.Response | None:
            if request.url.path.endswith(endpoint):
                return httpx.Response(401, json={"category": "INVALID_AUTHENTICATION", "message": "revoked"})
            return None

        api = MiniHubSpot(override, delay=0.002)
        with pytest.raises(BatchAbortedError, match="revoked") as info:
            run(api, mixed(600), tmp_path, batch_size=10, max_concurrency=2)
        summary = info.value.summary
        assert_adds_up(summary)
        assert api.state.get(("user0@example.com", 101)) is None  # the guarded rows were never written
        assert any(k.startswith("not sent: run aborted") for k in summary["failed_by_reason"])

    def test_each_subscription_is_read_with_its_brand(self, tmp_path: Path) -> None:
        """Issue 16 (1): a connection on brand 7 must still see brand 0's opt-outs, and brand 7's too."""
        api = MiniHubSpot(definitions=BRANDED)
        api.state[("user0@example.com", 101)] = "UNSUBSCRIBED"
        api.state[("user1@example.com", 201)] = "UNSUBSCRIBED"
        data = [
            {"subscriberIdString": "user0@example.com", "subscriptionId": 101, "statusState": "SUBSCRIBED"},
            {"subscriberIdString": "user1@example.com", "subscriptionId": 201, "statusState": "SUBSCRIBED"},
            {"subscriberIdString": "user2@example.com", "subscriptionId": 201, "statusState": "UNSUBSCRIBED"},
        ]
        summary = run(api, data, tmp_path, extra={"business_unit_id": 7})
        assert_adds_up(summary)
        assert summary["skipped_by_reason"]["resubscribe_not_allowed"] == 2
        assert summary["written"] == 1
        assert sorted(api.read_brands) == [0, 7]
        assert api.state[("user0@example.com", 101)] == "UNSUBSCRIBED"
        assert api.state[("user1@example.com", 201)] == "UNSUBSCRIBED"

    def test_only_changes_reads_every_row_with_its_brand(self, tmp_path: Path) -> None:
        api = MiniHubSpot(definitions=BRANDED)
        api.state[("user0@example.com", 201)] = "UNSUBSCRIBED"
        api.state[("user1@example.com", 101)] = "UNSUBSCRIBED"
        data = [*rows(2, sid=201), *rows(2, sid=101)]
        summary = run(api, data, tmp_path, extra=BRAND_7, only_changes=True)
        assert_adds_up(summary)
        assert summary["unchanged"] == 2
        assert summary["written"] == 2
        assert sorted(api.read_brands) == [0, 7]


class TestPreflight:
    def test_unknown_and_inactive_ids_stop_the_run_before_any_write(self, tmp_path: Path) -> None:
        api = MiniHubSpot(definitions={**BRANDED, 150: ("Old", 0, False)})
        data = [*rows(3), *rows(1, start=3, sid=404), *rows(1, start=4, sid=150)]
        with pytest.raises(HubCommValidationError) as info:
            run(api, data, tmp_path)
        message = str(info.value)
        assert "subscription 404: unknown_subscription" in message
        assert "subscription 150: inactive_subscription" in message
        assert "101 (Newsletter, brand 0)" in message  # the known subscriptions are named
        assert [(e["row"], e["value"]) for e in info.value.errors] == [(4, "404"), (5, "150")]
        assert api.calls == 0
        assert list(tmp_path.iterdir()) == []

    def test_skip_lists_refused_rows_and_sends_the_rest(self, tmp_path: Path) -> None:
        api = MiniHubSpot(definitions={**BRANDED, 150: ("Old", 0, False)})
        data = [*rows(3), *rows(1, start=3, sid=404), *rows(1, start=4, sid=150)]
        summary = run(api, data, tmp_path, on_invalid="skip")
        assert_adds_up(summary)
        assert summary["written"] == 3
        assert summary["skipped_by_reason"]["unknown_subscription"] == 1
        assert summary["skipped_by_reason"]["inactive_subscription"] == 1
        lines = {line["row"]: line for line in read_lines(summary["failed_rows_path"])}
        assert lines[4]["reason"] == "unknown_subscription"
        assert lines[5]["reason"] == "inactive_subscription"
        assert {w["subscriptionId"] for chunk in api.writes for w in chunk} == {101}

    def test_dry_run_preflights(self, tmp_path: Path) -> None:
        api = MiniHubSpot()
        with pytest.raises(HubCommValidationError, match="unknown_subscription"):
            run(api, rows(2, sid=404), tmp_path, dry_run=True)
        summary = run(api, [*rows(2), *rows(1, start=2, sid=404)], tmp_path, dry_run=True, on_invalid="skip")
        assert summary["skipped_by_reason"]["dry_run"] == 2
        assert summary["skipped_by_reason"]["unknown_subscription"] == 1
        assert summary["plan"]["rows_to_send"] == 2
        assert api.calls == 0

    def test_subscriptions_by_name(self, tmp_path: Path) -> None:
        api = MiniHubSpot(definitions={**BRANDED, 301: ("Events", 0, True)})
        data = [
            {"subscriberIdString": "a@x.com", "subscriptionId": "Newsletter", "statusState": "UNSUBSCRIBED"},
            {"subscriberIdString": "b@x.com", "subscriptionId": " product UPDATES ", "statusState": "UNSUBSCRIBED"},
            {"subscriberIdString": "c@x.com", "subscriptionId": "Events", "statusState": "UNSUBSCRIBED"},
            {"subscriberIdString": "d@x.com", "subscriptionId": "Nope", "statusState": "UNSUBSCRIBED"},
        ]
        summary = run(api, data, tmp_path, on_invalid="skip")
        assert_adds_up(summary)
        assert summary["written"] == 2
        assert summary["skipped_by_reason"]["invalid"] == 2
        assert {(w["subscriberIdString"], w["subscriptionId"]) for c in api.writes for w in c} == {
            ("a@x.com", 101),
            ("b@x.com", 102),
        }
        lines = {line["row"]: line["message"] for line in read_lines(summary["failed_rows_path"])}
        assert "ambiguous" in lines[3]
        assert "unknown subscription name" in lines[4]
        assert "Nope" in lines[4]

    def test_default_subscription_by_name(self, tmp_path: Path) -> None:
        api = MiniHubSpot()
        data = [{"subscriberIdString": "a@x.com", "statusState": "UNSUBSCRIBED"}]
        summary = run(api, data, tmp_path, defaults={"subscriptionId": "events"})
        assert summary["written"] == 1
        assert api.writes[0][0]["subscriptionId"] == 103
        with pytest.raises(HubCommValidationError, match="defaults key 'subscriptionId'"):
            run(api, data, tmp_path, defaults={"subscriptionId": "Nope"})

    def test_integer_ids_validate_without_reading_definitions(self, tmp_path: Path) -> None:
        api = MiniHubSpot()
        bad = [*rows(2), {"subscriberIdString": "nope", "subscriptionId": 101, "statusState": "SUBSCRIBED"}]
        with pytest.raises(HubCommValidationError, match="row 3"):
            run(api, bad, tmp_path)
        assert api.definition_reads == 0


class TestTierFallback:
    def test_missing_batch_scopes_fall_back_to_single_calls(
        self, tmp_path: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        api = MiniHubSpot(definitions=BRANDED, batch_scopes=False)
        api.state[("user0@example.com", 201)] = "UNSUBSCRIBED"
        api.wide.add(("user3@example.com", 7))
        data = [*rows(6, state="SUBSCRIBED", sid=201), *rows(20, start=6, sid=101)]
        with caplog.at_level(logging.WARNING, logger="airflow_provider_hubcomm.batch.engine"):
            summary = run(api, data, tmp_path, extra=BRAND_7, batch_size=5, max_concurrency=3)
        assert_adds_up(summary)
        assert summary["mode"] == "single"
        assert summary["written"] == 24
        assert summary["skipped_by_reason"]["resubscribe_not_allowed"] == 2
        assert api.state[("user0@example.com", 201)] == "UNSUBSCRIBED"
        assert ("user3@example.com", 201) not in api.state
        assert all(api.state[(f"user{i}@example.com", 101)] == "UNSUBSCRIBED" for i in range(6, 26))
        single_writes = [p for p in api.paths if p.startswith("POST") and "/batch/" not in p]
        assert len(single_writes) == 24
        assert set(api.read_brands) == {7}
        fallbacks = [r for r in caplog.records if "Falling back to single calls" in r.getMessage()]
        assert len(fallbacks) == 1
        assert "requests per 10 s" in fallbacks[0].getMessage()
        assert {line["operationStatus"] for line in read_lines(summary["written_rows_path"])} == {"COMPLETE"}

    def test_single_writes_run_concurrently_within_the_bound(self, tmp_path: Path) -> None:
        api = MiniHubSpot(batch_scopes=False, delay=0.005)
        summary = run(api, rows(60), tmp_path, batch_size=5, max_concurrency=3)
        assert (summary["mode"], summary["written"]) == ("single", 60)
        assert 1 < api.max_active <= 3

    def test_fail_option_aborts_without_single_calls(self, tmp_path: Path) -> None:
        api = MiniHubSpot(batch_scopes=False)
        with pytest.raises(BatchAbortedError, match="on_missing_batch_scope='fail'") as info:
            run(api, rows(10), tmp_path, on_missing_batch_scope="fail", max_concurrency=1, batch_size=5)
        assert_adds_up(info.value.summary)
        assert info.value.summary["failed"] == 10
        assert all("/batch/" in p for p in api.paths)

    def test_fallback_refuses_to_exceed_the_daily_budget(self, tmp_path: Path) -> None:
        api = MiniHubSpot(batch_scopes=False)
        with pytest.raises(BatchAbortedError, match="daily request budget left") as info:
            run(api, rows(50), tmp_path, daily_request_budget=30, max_concurrency=1, batch_size=10)
        summary = info.value.summary
        assert_adds_up(summary)
        assert summary["written"] == 0
        assert summary["failed"] == 50
        assert all("/batch/" in p for p in api.paths)  # nothing was sent one by one

    def test_single_answer_that_confirms_nothing_fails_the_row(self, tmp_path: Path) -> None:
        def override(request: httpx.Request, n: int) -> httpx.Response | None:
            if "/batch/" in request.url.path:
                return httpx.Response(403, json={"category": "MISSING_SCOPES", "message": "scopes"})
            if request.url.path.endswith("user1%40example.com") or request.url.path.endswith("user1@example.com"):
                return httpx.Response(200, json={})
            return None

        api = MiniHubSpot(override)
        summary = run(api, rows(3), tmp_path)
        assert_adds_up(summary)
        assert summary["mode"] == "single"
        assert summary["written"] == 2
        (reason,) = summary["failed_by_reason"]
        assert reason.startswith("EMPTY_ANSWER: HubSpot's answer confirms nothing")


class TestAnswers:
    def test_too_large_batch_is_halved_and_remembered(self, tmp_path: Path) -> None:
        api = MiniHubSpot(max_batch_size=30)
        summary = run(api, rows(230), tmp_path, batch_size=100, max_concurrency=1)
        assert_adds_up(summary)
        assert summary["written"] == 230
        assert summary["failed"] == 0
        assert summary["plan"]["batch_size_used"] == 25
        assert summary["plan"]["batch_size_reduced"] is True
        assert max(len(w) for w in api.writes) == 25
        # definitions, the refused 100 and first 50, then 10 writes of at most 25: the second 50 and any chunk
        # built at 100 before the refusal are cut to 25 before they are sent (was a race: 17 requests under load).
        assert summary["requests"] == 1 + 2 + 10

    def test_other_400_fails_only_its_chunk(self, tmp_path: Path) -> None:
        def override(request: httpx.Request, n: int) -> httpx.Response | None:
            if n == 1:
                return httpx.Response(400, json={"category": "VALIDATION_ERROR", "message": "legal basis required"})
            return None

        api = MiniHubSpot(override)
        summary = run(api, rows(20), tmp_path, batch_size=10, max_concurrency=1)
        assert (summary["written"], summary["failed"]) == (10, 10)
        assert summary["plan"]["batch_size_reduced"] is False

    @pytest.mark.parametrize("partial_status", [200, 207])
    def test_pending_answer_counts_unconfirmed_rows(self, tmp_path: Path, partial_status: int) -> None:
        api = MiniHubSpot(status="PENDING", partial_status=partial_status)
        data = rows(5)
        data[1]["subscriptionId"] = 999  # named by a per-input error: fails even though the answer is PENDING
        summary = run(api, data, tmp_path)
        assert_adds_up(summary)
        assert (summary["written"], summary["unconfirmed"], summary["failed"]) == (4, 4, 1)
        assert summary["failed_by_reason"] == {"OBJECT_NOT_FOUND: no such": 1}
        manifest = read_lines(summary["written_rows_path"])
        assert {line["operationStatus"] for line in manifest} == {"PENDING"}
        assert len(manifest) == 4

    def test_server_text_is_redacted(self, tmp_path: Path) -> None:
        def override(request: httpx.Request, n: int) -> httpx.Response | None:
            context = {"subscriberIdString": ["user0@example.com"]}
            error = {"category": "VALIDATION_ERROR", "message": f"bad token {TOKEN}", "context": context}
            results = [{"subscriberIdString": "user1@example.com", "subscriptionId": 101}]
            return httpx.Response(200, json={"status": "COMPLETE", "results": results, "errors": [error]})

        summary = run(MiniHubSpot(override), rows(2), tmp_path)
        assert summary["failed"] == 1
        assert TOKEN not in str(summary["failed_by_reason"])
        assert TOKEN not in Path(summary["failed_rows_path"]).read_text()


class TestClassifier:
    def test_fatal_and_fallback_errors(self) -> None:
        scopes = HubCommAuthError(403, {"category": "MISSING_SCOPES", "message": "no"})
        assert is_missing_scopes(scopes)
        assert not is_missing_scopes(HubCommAuthError(403, {"category": "FORBIDDEN"}))
        assert classify_error(HubCommAuthError(401, {"message": "x"}))[0]
        assert classify_error(HubCommRateLimitError(429, {"policyName": "DAILY"}))[0]
        assert not classify_error(HubCommRateLimitError(429, {"policyName": "TEN_SECONDLY_ROLLING"}))[0]
        assert is_too_large(HubCommRequestRejectedError(400, {"message": "Too many inputs"}))
        assert not is_too_large(HubCommRequestRejectedError(400, {"message": "legal basis required"}))

    def test_summary_does_not_import_a_stage(self) -> None:
        import airflow_provider_hubcomm.batch.summary as summary

        tree = ast.parse(Path(summary.__file__).read_text())
        imported = {
            node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module is not None
        }
        stages = {f"airflow_provider_hubcomm.batch.{m}" for m in ("chunk", "engine", "guard", "pipeline", "single")}
        assert not imported & stages


def test_fallback_plan_uses_hubspots_daily_remaining_when_smaller() -> None:
    from airflow_provider_hubcomm.batch.single import fallback_plan

    fits, message = fallback_plan(500, 100, requests_per_10s=100, budget=250_000, used=10)
    assert fits
    assert "249990 of 250000" in message
    fits, message = fallback_plan(500, 100, requests_per_10s=100, budget=250_000, used=10, daily_remaining=400)
    assert not fits
    assert "HubSpot's daily remaining: 400" in message
