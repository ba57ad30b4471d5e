"""The example DAGs, run for real with ``dag.test()`` against the bundled fake HubSpot (rate limit and 5xx on).

Each test seeds a SQLite warehouse with ``scripts/seed_warehouse.py``, runs one example DAG, and checks the
fake's final state against what the warehouse says (computed independently in ``conftest.Expected``), the
accounting (written + failed + skipped == rows read, every reason) and the report the DAG printed and saved.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

from tests.examples.conftest import (
    EXAMPLES,
    TEST_RATE,
    Expected,
    load_example,
    load_module,
    task_states,
    use_fake,
    use_warehouse,
    xcoms,
)

pytestmark = pytest.mark.integration

SUBSCRIPTIONS = {101, 102, 103}
FAKE_KNOBS = {"requests_per_window": TEST_RATE, "error_rate_5xx": 0.1, "seed": 11}


def report_number(text: str, label: str) -> int:
    match = re.search(rf"^\s*{label}\s+([\d,]+)", text, flags=re.M)
    assert match, f"{label!r} not in report:\n{text}"
    return int(match.group(1).replace(",", ""))


def prestate(expected_keys: list[tuple[str, int]], desired: dict[tuple[str, int], str]) -> dict[tuple[str, int], str]:
    """HubSpot's state before the run: some contacts already agree, some unsubscribed in HubSpot, some differ."""
    before: dict[tuple[str, int], str] = {}
    for i, key in enumerate(k for k in expected_keys if k[1] in SUBSCRIPTIONS):
        want = desired[key]
        if i % 10 == 0:
            before[key] = want  # already in HubSpot: unchanged
        elif i % 10 == 1 and want == "SUBSCRIBED":
            before[key] = "UNSUBSCRIBED"  # the contact unsubscribed in HubSpot: must not be re-subscribed
        elif i % 10 == 2:
            before[key] = "SUBSCRIBED" if want != "SUBSCRIBED" else "NOT_SPECIFIED"  # differs: written
        if i >= 600:
            break
    return before


def test_consent_sync_from_warehouse(examples_env, seed_module, hubcomm_fake_factory, monkeypatch):
    db = examples_env / "warehouse.db"
    manifest = seed_module.seed(db, contacts=600)
    use_warehouse(monkeypatch, db)
    fake = hubcomm_fake_factory(**FAKE_KNOBS)
    use_fake(monkeypatch, fake)

    plan = Expected(db, "contact_consent", SUBSCRIPTIONS)
    before = prestate(sorted(plan.desired), plan.desired)
    for (email, sid), status in before.items():
        fake.set_state(email, sid, status)
    expected = Expected(db, "contact_consent", SUBSCRIPTIONS, before)
    for count in ("invalid", "duplicate", "unknown", "resubscribe", "unchanged"):
        assert getattr(expected, count) > 0, f"the test data must exercise {count}"

    module = load_example("consent_sync_from_warehouse")
    started = time.monotonic()
    dr = module.dag.test()
    seconds = time.monotonic() - started

    assert task_states(dr) == {
        "extract_consent": "success",
        "write_statuses": "success",
        "verify_in_hubspot": "success",
        "report": "success",
    }
    assert str(dr.state) == "success"
    assert expected.final_state_mismatches(fake.snapshot()) == {}
    results = xcoms(dr)
    summary = results["write_statuses"]
    expected.check_summary(summary)
    assert summary["rows_read"] == sum(manifest["rows"].values()) - manifest["rows"].get("contact_consent_large", 0)
    assert fake.counters.get("injected_5xx", 0) > 0, "the run must have met (and survived) injected 5xx answers"
    assert summary["retries"] >= 1
    assert summary["failed"] == expected.failed == 0
    assert summary["failed_by_reason"] == {}

    verification = results["verify_in_hubspot"]
    assert verification["pending"] == 0
    assert verification["mismatch_count"] == 0
    assert verification["rows_verified"] == min(1000, expected.written)

    report = results["report"]
    assert report["verified"] is True
    for key in ("rows_read", "written", "failed", "skipped", "unchanged"):
        assert report[key] == summary[key]
    out = Path(report["report_dir"])
    assert out.parent.parent == examples_env / "reports"
    text = (out / "report.txt").read_text()
    assert report_number(text, "rows read") == expected.rows_read
    assert report_number(text, "written") == expected.written
    assert report_number(text, "failed") == expected.failed
    assert report_number(text, "skipped") == expected.skipped
    assert f"(of which unchanged in HubSpot: {expected.unchanged:,})" in text
    assert re.search(rf"^\s+{expected.invalid:,}\s+invalid$", text, flags=re.M)
    assert re.search(rf"^\s+{expected.duplicate:,}\s+duplicate$", text, flags=re.M)
    assert re.search(rf"^\s+{expected.resubscribe:,}\s+resubscribe_not_allowed$", text, flags=re.M)
    assert re.search(rf"^\s+{expected.unknown:,}\s+unknown_subscription$", text, flags=re.M)
    assert "verification:  OK (sample)" in text
    assert json.loads((out / "summary.json").read_text())["written"] == expected.written

    # The failed-rows file was copied next to the report: rows skipped as invalid, for an unknown subscription
    # (reported before any write) or because they would have re-subscribed someone.
    failed_rows = [json.loads(line) for line in Path(report["failed_rows_file"]).read_text().splitlines()]
    reasons: dict[str, int] = {}
    for entry in failed_rows:
        reasons[entry.get("reason") or entry["outcome"]] = reasons.get(entry.get("reason") or entry["outcome"], 0) + 1
    assert reasons.get("unknown_subscription") == expected.unknown
    assert reasons.get("resubscribe_not_allowed") == expected.resubscribe
    assert "failed" not in reasons
    assert Path(report["failed_rows_file"]).parent == out
    print(f"took {seconds:.1f} s")  # speed targets live in benchmarks/, not in assertions


def test_consent_sync_reports_a_failed_write(examples_env, seed_module, hubcomm_fake_factory, monkeypatch):
    """Over max_failed_ratio the write fails, the verification is skipped, and the report still tells why.

    The account requires a legal basis (GDPR settings on): HubSpot refuses, per input, every write without one.
    """
    db = examples_env / "warehouse.db"
    seed_module.seed(db, contacts=300)
    use_warehouse(monkeypatch, db)
    fake = hubcomm_fake_factory(**FAKE_KNOBS, require_legal_basis=True)
    use_fake(monkeypatch, fake)
    expected = Expected(db, "contact_consent", SUBSCRIPTIONS, legal_basis_required=True)
    assert expected.failed / (expected.written + expected.failed) > 0.001
    monkeypatch.setenv("HUBCOMM_MAX_FAILED_RATIO", "0.001")
    module = load_module(EXAMPLES / "consent_sync_from_warehouse.py", "hubcomm_example_strict_consent_sync")
    assert module.MAX_FAILED_RATIO == 0.001

    dr = module.dag.test()

    assert str(dr.state) == "failed"
    assert task_states(dr) == {
        "extract_consent": "success",
        "write_statuses": "failed",
        "verify_in_hubspot": "upstream_failed",
        "report": "failed",
    }
    # The rows were written all the same (the threshold is checked after the writes): state as expected.
    assert expected.final_state_mismatches(fake.snapshot()) == {}
    reports = list((examples_env / "reports").rglob("report.txt"))
    assert len(reports) == 1
    text = reports[0].read_text()
    assert report_number(text, "written") == expected.written
    assert report_number(text, "failed") == expected.failed
    assert "verification:  no result" in text
    assert (reports[0].parent / "failed_rows.jsonl").exists()


def test_gdpr_unsubscribe_request(examples_env, hubcomm_fake_factory, monkeypatch):
    fake = hubcomm_fake_factory(**FAKE_KNOBS)
    use_fake(monkeypatch, fake)
    subscriber = "Jane.Doe@Example.com"
    fake.set_state(subscriber, 101, "SUBSCRIBED")
    fake.set_state(subscriber, 102, "SUBSCRIBED")
    fake.set_state("someone.else@example.com", 101, "SUBSCRIBED")

    module = load_example("gdpr_unsubscribe_request")
    started = time.monotonic()
    dr = module.dag.test(run_conf={"subscriber": subscriber})
    seconds = time.monotonic() - started

    assert task_states(dr) == {"unsubscribe_all": "success", "prove_unsubscribed": "success"}
    assert fake.opted_out_of_all(subscriber)
    snapshot = fake.snapshot()
    assert {sid: snapshot[("jane.doe@example.com", sid)] for sid in SUBSCRIPTIONS} == dict.fromkeys(
        SUBSCRIPTIONS, "UNSUBSCRIBED"
    )
    assert snapshot[("someone.else@example.com", 101)] == "SUBSCRIBED"  # nobody else touched
    results = xcoms(dr)
    changed = {r["subscriptionId"] for r in results["unsubscribe_all"]["results"]}
    assert changed == SUBSCRIPTIONS  # verbose=True lists every status that changed
    proof = results["prove_unsubscribed"]
    assert [w["status"] for w in proof["opted_out_of_all"]] == ["UNSUBSCRIBED"]
    assert {s["status"] for s in proof["statuses"]} == {"UNSUBSCRIBED"}
    print(f"took {seconds:.1f} s")


def test_gdpr_proof_fails_when_not_unsubscribed(hubcomm_fake_factory, monkeypatch):
    """The read-back task fails when HubSpot does not show the opt-out, or a subscription is still on."""
    from airflow.sdk.exceptions import AirflowException

    from airflow_provider_hubcomm.hooks.hubcomm import HubCommHook

    module = load_example("gdpr_unsubscribe_request")
    fake = hubcomm_fake_factory()
    use_fake(monkeypatch, fake)
    fake.set_state("a@example.com", 101, "UNSUBSCRIBED")
    hook = HubCommHook()
    with pytest.raises(AirflowException, match="NOT unsubscribed: HubSpot does not report the contact as opted out"):
        module.prove_unsubscribed(hook, "a@example.com")
    # Opted out of all, then re-subscribed to one subscription (behind the run's back): still not proven.
    hook.unsubscribe_all("b@example.com")
    fake.set_state("b@example.com", 102, "SUBSCRIBED")
    with pytest.raises(AirflowException, match=r"still SUBSCRIBED to subscription\(s\) 102"):
        module.prove_unsubscribed(hook, "b@example.com")
    hook.close()


@pytest.mark.slow  # about a minute on a loaded machine: run with the latest Airflow only (scripts/test.sh)
def test_large_consent_sync(examples_env, seed_module, hubcomm_fake_factory, monkeypatch):
    from airflow.models.pool import Pool

    rows = 20_000
    db = examples_env / "warehouse.db"
    seed_module.seed(db, contacts=0, large=rows)
    use_warehouse(monkeypatch, db)
    fake = hubcomm_fake_factory(**FAKE_KNOBS)
    use_fake(monkeypatch, fake, requests_per_10s=TEST_RATE)
    Pool.create_or_update_pool("hubspot_api", slots=4, description="HubSpot API budget", include_deferred=False)
    expected = Expected(db, "contact_consent_large", SUBSCRIPTIONS)

    module = load_example("large_consent_sync")
    started = time.monotonic()
    dr = module.dag.test()
    seconds = time.monotonic() - started

    states = task_states(dr)
    partitions = module.PARTITIONS
    assert states == {
        "extract": "success",
        **{("write_partition", i): "success" for i in range(partitions)},
        **{("verify_partition", i): "success" for i in range(partitions)},
        "report": "success",
    }
    assert expected.final_state_mismatches(fake.snapshot()) == {}
    results = xcoms(dr)
    summaries = [results[("write_partition", i)] for i in range(partitions)]
    totals = {k: sum(s[k] for s in summaries) for k in ("rows_read", "written", "failed", "skipped", "unchanged")}
    assert totals == {
        "rows_read": rows,
        "written": expected.written,
        "failed": expected.failed,
        "skipped": expected.skipped,
        "unchanged": expected.unchanged,
    }
    for i, s in enumerate(summaries):
        assert s["written"] + s["failed"] + s["skipped"] == s["rows_read"]
        # the provider's partitioning: each task read the whole extract and kept its own rows
        assert s["partition"] == {"index": i, "count": partitions, "rows_outside": rows - s["rows_read"]}
        assert 0 < s["rows_read"] < rows
    # one sync state per partition, below the example's state folder
    state_dirs = sorted(p.name for p in Path(module.STATE_PATH).iterdir())
    assert state_dirs == [f"partition-{i:04d}-of-{partitions:04d}" for i in range(partitions)]
    # The budget split: each mapped task's limiter got budget // pool slots, so nothing was throttled.
    assert fake.counters.get("rate_limited", 0) == 0

    report = results["report"]
    assert report["rows_extracted"] == rows
    assert report["verified_partitions"] == partitions
    reasons = {"invalid": expected.invalid, "duplicate": expected.duplicate, "unchanged": expected.unchanged}
    assert report["skipped_by_reason"] == {k: v for k, v in reasons.items() if v}
    text = (Path(report["report_dir"]) / "report.txt").read_text()
    assert re.search(rf"total:\s+read\s+{rows:,}\s+written\s+{expected.written:,}", text)
    print(f"took {seconds:.1f} s")  # speed targets live in benchmarks/, not in assertions


def test_shared_budget_split(monkeypatch, hubcomm_fake):
    """Each mapped task's hook gets the connection's requests_per_10s divided by the pool's slots."""
    module = load_example("large_consent_sync")
    use_fake(monkeypatch, hubcomm_fake, requests_per_10s=190)
    dag = module.dag if hasattr(module, "dag") else next(v for v in vars(module).values() if type(v).__name__ == "DAG")
    writer = dag.get_task("write_partition")
    sensor = dag.get_task("verify_partition")
    assert writer.partial_kwargs["rate_limit_share"] == 1 / module.POOL_SLOTS
    assert sensor.partial_kwargs["rate_limit_share"] == 1 / module.POOL_SLOTS
    writer = module.BatchWriteStatusesOperator(task_id="w", inputs=[], rate_limit_share=module.RATE_LIMIT_SHARE)
    sensor = module.BatchStatusSensor(task_id="s", batch={}, rate_limit_share=module.RATE_LIMIT_SHARE)
    assert writer.hook.rate_limiter.limit == 190 // module.POOL_SLOTS
    assert sensor.hook.rate_limiter.limit == 190 // module.POOL_SLOTS


def test_gdpr_bulk_unsubscribe(examples_env, hubcomm_fake_factory, monkeypatch):
    """An erasure list is opted out of all e-mail in bulk and every row is proven by read-back."""
    fake = hubcomm_fake_factory(**FAKE_KNOBS)
    use_fake(monkeypatch, fake)
    erasure = examples_env / "erasure.csv"
    addresses = [f"erase{i}@example.com" for i in range(250)]
    erasure.write_text(
        "email,requested_at\n"
        + "".join(f"{a},2026-11-30\n" for a in addresses)
        + "ERASE0@example.com,2026-12-01\nnot-an-address,2026-12-01\n",
        encoding="utf-8",
    )

    module = load_example("gdpr_unsubscribe_request")
    dr = module.bulk_dag.test(run_conf={"erasure_list": str(erasure)})

    assert task_states(dr) == {"unsubscribe_all": "success", "prove_unsubscribed": "success"}
    results = xcoms(dr)
    summary = results["unsubscribe_all"]
    assert (summary["rows_read"], summary["written"], summary["failed"], summary["skipped"]) == (252, 250, 0, 2)
    assert summary["skipped_by_reason"] == {"invalid": 1, "duplicate": 1, "dry_run": 0}
    assert all(fake.opted_out_of_all(a) for a in addresses)
    proof = results["prove_unsubscribed"]
    assert proof["rows_verified"] == proof["rows_matching"] == 250
