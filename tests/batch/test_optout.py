"""The bulk unsubscribe-all run against the bundled fake: checks before sending, accounting, fallback, faults.

The fake runs without a socket: the run's worker threads reach it through ``fake.transport()``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_hubcomm.batch.options import UnsubscribeAllOptions
from airflow_provider_hubcomm.batch.optout import BatchUnsubscribeAllRun
from airflow_provider_hubcomm.batch.optout_account import OptOutAccount
from airflow_provider_hubcomm.batch.outputs import JsonLinesSink
from airflow_provider_hubcomm.batch.sources import iter_rows
from airflow_provider_hubcomm.exceptions import BatchAbortedError, HubCommValidationError
from airflow_provider_hubcomm.hooks.hubcomm import HubCommHook
from airflow_provider_hubcomm.testing import FakeHubSpot


@pytest.fixture
def fake() -> FakeHubSpot:
    """A fake HubSpot with default knobs, never started (no port, no thread)."""
    return FakeHubSpot()


@pytest.fixture
def fake_factory() -> type[FakeHubSpot]:
    """Build a fake with knobs, never started."""
    return FakeHubSpot


def _run(
    fake: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, inputs: Any, **options: Any
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Run the opt-out over ``inputs``; return the summary and the failed-rows file's lines."""
    transport = fake.transport()
    monkeypatch.setenv("AIRFLOW_CONN_HUBCOMM_DEFAULT", fake.connection_json(requests_per_10s=10_000, max_retries=3))
    hook = HubCommHook(transport=transport, retry_sleep=lambda _s: None)
    failed = JsonLinesSink(output_dir=str(tmp_path), kind="failed")
    written = None if options.get("dry_run") else JsonLinesSink(output_dir=str(tmp_path), kind="written")
    account = OptOutAccount(hook, failed, written, options.get("business_unit_id") or 0)
    options = {"batch_size": 100, "max_concurrency": 4, "daily_request_budget": 250_000, **options}
    run = BatchUnsubscribeAllRun(hook, (failed, written), UnsubscribeAllOptions(**options))
    try:
        summary = run.run(iter_rows(inputs), account)
    finally:
        path = failed.close()
        if written is not None:
            written.close()
        hook.close()
    lines = [json.loads(x) for x in Path(path).read_text().splitlines()] if path else []
    return summary, lines


def _rows(n: int, start: int = 0) -> list[dict[str, Any]]:
    return [{"subscriberIdString": f"gdpr{i}@example.com", "ticket": f"T-{i}"} for i in range(start, start + n)]


def adds_up(summary: dict[str, Any]) -> None:
    assert summary["written"] + summary["failed"] + summary["skipped"] == summary["rows_read"]


class TestChecks:
    def test_invalid_row_fails_the_run_before_anything_is_sent(self, fake: Any, monkeypatch, tmp_path) -> None:
        rows = [*_rows(3), {"subscriberIdString": "not-an-address"}]
        with pytest.raises(HubCommValidationError, match=r"row 4, field 'subscriberIdString': value 'not-an-address'"):
            _run(fake, monkeypatch, tmp_path, rows)
        assert fake.counters.get("endpoint:batch_unsubscribe_all", 0) == 0

    def test_errors_name_the_users_column(self, fake: Any, monkeypatch, tmp_path) -> None:
        rows = [{"email": "a@example.com"}, {"email": "nope"}, {"email": ""}]
        with pytest.raises(HubCommValidationError) as info:
            _run(fake, monkeypatch, tmp_path, rows, subscriber_column="email")
        assert "row 2, column 'email' (subscriberIdString): value 'nope' is not an e-mail address" in str(info.value)
        assert "row 3, column 'email' (subscriberIdString): is required but missing or empty" in str(info.value)
        assert [e["row"] for e in info.value.errors] == [2, 3]

    def test_skip_mode_counts_invalid_and_duplicate_rows(self, fake: Any, monkeypatch, tmp_path) -> None:
        rows = [*_rows(5), {"subscriberIdString": "GDPR1@example.com"}, {"subscriberIdString": None}]
        summary, failed = _run(fake, monkeypatch, tmp_path, rows, on_invalid="skip")
        adds_up(summary)
        assert (summary["written"], summary["skipped"]) == (5, 2)
        assert summary["skipped_by_reason"] == {"invalid": 1, "duplicate": 1, "dry_run": 0}
        assert [line["reason"] for line in failed] == ["invalid"]
        assert all(fake.opted_out_of_all(f"gdpr{i}@example.com") for i in range(5))

    def test_a_column_no_row_has_is_a_typo_not_an_empty_run(self, fake: Any, monkeypatch, tmp_path) -> None:
        with pytest.raises(HubCommValidationError, match="subscriber_column='email' names no column"):
            _run(fake, monkeypatch, tmp_path, _rows(3), subscriber_column="email", on_invalid="skip")

    def test_every_row_invalid_fails_even_when_skipping(self, fake: Any, monkeypatch, tmp_path) -> None:
        with pytest.raises(HubCommValidationError, match=r"all 3 input rows are invalid, nothing was sent"):
            _run(fake, monkeypatch, tmp_path, [{"subscriberIdString": "x"}] * 3, on_invalid="skip")

    def test_max_invalid_ratio(self, fake: Any, monkeypatch, tmp_path) -> None:
        rows = [*_rows(6), *([{"subscriberIdString": "bad"}] * 4)]
        with pytest.raises(HubCommValidationError, match=r"max_invalid_ratio=0\.2"):
            _run(fake, monkeypatch, tmp_path, rows, on_invalid="skip", max_invalid_ratio=0.2)

    def test_dry_run_sends_nothing(self, fake: Any, monkeypatch, tmp_path) -> None:
        summary, _ = _run(fake, monkeypatch, tmp_path, _rows(250), dry_run=True)
        adds_up(summary)
        assert summary["skipped_by_reason"]["dry_run"] == 250
        assert summary["plan"]["chunks"] == 3
        assert fake.counters.get("requests", 0) == 0


class TestSending:
    def test_batches_to_the_brand_with_per_input_errors(self, fake_factory: Any, monkeypatch, tmp_path) -> None:
        fake = fake_factory(subscriptions=[101, {"id": 701, "businessUnitId": 7}])
        rows = [*_rows(150), {"subscriberIdString": "x@y"}]  # not an address: skipped before sending
        summary, failed = _run(fake, monkeypatch, tmp_path, rows, business_unit_id=7, on_invalid="skip")
        adds_up(summary)
        assert summary["kind"] == "unsubscribe_all"
        assert summary["business_unit_id"] == 7
        assert summary["written"] == 150
        assert fake.opted_out_of_all("gdpr0@example.com", business_unit_id=7)
        assert not fake.opted_out_of_all("gdpr0@example.com", business_unit_id=0)
        assert summary["plan"]["chunks"] == 2
        assert fake.counters["endpoint:batch_unsubscribe_all"] == 2
        assert (summary["failed"], summary["skipped_by_reason"]["invalid"]) == (0, 1)
        assert [(line["outcome"], line["input"]) for line in failed] == [("skipped", {"subscriberIdString": "x@y"})]

    def test_pending_answers_write_rows_unconfirmed(self, monkeypatch, tmp_path) -> None:
        import httpx

        def pending(request: httpx.Request) -> httpx.Response:
            inputs = json.loads(request.content)["inputs"]
            refused = [s for s in inputs if s.startswith("gdpr7@")]
            errors = [
                {
                    "status": "400",
                    "category": "VALIDATION_ERROR",
                    "message": "refused",
                    "context": {"subscriberIdString": refused},
                }
            ]
            body = {
                "status": "PENDING",
                "results": [],
                "startedAt": "2026-12-01T00:00:00Z",
                "errors": errors if refused else [],
            }
            return httpx.Response(200, json=body)

        monkeypatch.setenv(
            "AIRFLOW_CONN_HUBCOMM_DEFAULT",
            json.dumps({"conn_type": "hubcomm", "host": "https://h", "password": "pat-x-123456"}),
        )
        hook = HubCommHook(transport=httpx.MockTransport(pending))
        failed = JsonLinesSink(output_dir=str(tmp_path), kind="failed")
        account = OptOutAccount(hook, failed, None, 0)
        options = UnsubscribeAllOptions(batch_size=50, max_concurrency=2, daily_request_budget=10)
        run = BatchUnsubscribeAllRun(hook, (failed, None), options)
        summary = run.run(iter_rows(_rows(120)), account)
        failed.close()
        adds_up(summary)
        assert (summary["written"], summary["unconfirmed"], summary["failed"]) == (119, 119, 1)
        assert summary["operations"]["by_status"]["PENDING"] == 3
        assert sorted(e["rows"] for e in summary["operations"]["not_complete"]) == [20, 50, 50]

    def test_too_large_halves_and_remembers(self, fake_factory: Any, monkeypatch, tmp_path) -> None:
        fake = fake_factory(max_batch_size=40)
        summary, _ = _run(fake, monkeypatch, tmp_path, _rows(300))
        adds_up(summary)
        assert summary["written"] == 300
        assert summary["plan"]["batch_size_reduced"] is True
        assert summary["plan"]["batch_size_used"] <= 40

    def test_missing_batch_scopes_fall_back_to_single_calls(
        self, fake_factory: Any, monkeypatch, tmp_path, caplog
    ) -> None:
        fake = fake_factory(batch_scopes=False)
        summary, _ = _run(fake, monkeypatch, tmp_path, _rows(60))
        adds_up(summary)
        assert (summary["mode"], summary["written"], summary["failed"]) == ("single", 60, 0)
        assert fake.counters["endpoint:unsubscribe_all"] == 60
        assert all(fake.opted_out_of_all(f"gdpr{i}@example.com") for i in range(60))
        assert caplog.text.count("falling back to single unsubscribe-all calls") == 1

    def test_fallback_refused_when_it_exceeds_the_daily_budget(self, fake_factory: Any, monkeypatch, tmp_path) -> None:
        fake = fake_factory(batch_scopes=False)
        with pytest.raises(BatchAbortedError) as caught:
            _run(fake, monkeypatch, tmp_path, _rows(60), daily_request_budget=20)
        summary = caught.value.summary
        adds_up(summary)
        assert summary["written"] == 0
        assert any("DAILY_BUDGET" in key for key in summary["failed_by_reason"])
        assert fake.counters.get("endpoint:unsubscribe_all", 0) == 0

    def test_fallback_fail_option(self, fake_factory: Any, monkeypatch, tmp_path) -> None:
        fake = fake_factory(batch_scopes=False)
        with pytest.raises(BatchAbortedError):
            _run(fake, monkeypatch, tmp_path, _rows(10), on_missing_batch_scope="fail")

    def test_faults_converge_and_every_row_is_accounted(self, fake_factory: Any, monkeypatch, tmp_path) -> None:
        fake = fake_factory(error_rate_5xx=0.1, drop_after_write_rate=0.05, seed=3)
        summary, _ = _run(fake, monkeypatch, tmp_path, _rows(2_000))
        adds_up(summary)
        assert summary["written"] == 2_000
        assert summary["retries"] > 0
        assert all(fake.opted_out_of_all(f"gdpr{i}@example.com") for i in range(0, 2_000, 97))
