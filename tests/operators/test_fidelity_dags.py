"""Issue 16 through real ``dag.test()`` runs: the write and its proof against HubSpot's stricter contract.

Each case starts the fake in one of the modes a real account shows (brands, no ``v4`` after the cutoff, no batch
scopes below Marketing Hub Enterprise, an undocumented batch cap, ``PENDING`` answers) and checks the fake's
final state, the writer's accounting and the sensor's read-back.
"""

from __future__ import annotations

import csv
import importlib.util
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import TEST_DAGS

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("airflow_db")]

BRANDED = [101, 102, {"id": 701, "businessUnitId": 7, "name": "Brand 7 news"}]


def _csv(path: Path, rows: list[tuple[str, int, str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as fh:
        out = csv.writer(fh)
        out.writerow(["subscriberIdString", "subscriptionId", "statusState"])
        out.writerows(rows)
    return path


def _run(fake: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, rows: list[tuple[str, int, str]], **extra: Any):
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    monkeypatch.setenv("AIRFLOW_CONN_HUBCOMM_DEFAULT", fake.connection_json(max_retries=5, **extra))
    spec = importlib.util.spec_from_file_location(f"fidelity_{time.monotonic_ns()}", TEST_DAGS / "test_ops_fidelity.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    conf = {"inputs": str(_csv(tmp_path / "in.csv", rows)), "out": str(tmp_path / "out")}
    dr = module.dag.test(run_conf=conf)
    with create_session() as session:
        states = {ti.task_id: str(ti.state) for ti in dr.get_task_instances(session=session)}
        found = session.query(XComModel).filter_by(dag_id=dr.dag_id, run_id=dr.run_id, key="return_value").all()
        values = {row.task_id: XComModel.deserialize_value(row) for row in found}
    return states, values.get("write") or {}, values.get("verify")


def _adds_up(summary: dict[str, Any]) -> None:
    assert summary["written"] + summary["failed"] + summary["skipped"] == summary["rows_read"]


def test_connection_on_brand_7_never_resubscribes_a_brand_0_opt_out(hubcomm_fake_factory, monkeypatch, tmp_path):
    fake = hubcomm_fake_factory(subscriptions=BRANDED)
    for i in range(10):
        fake.set_state(f"optout{i}@example.com", 101, "UNSUBSCRIBED")  # brand 0
        fake.set_state(f"optout{i}@example.com", 701, "UNSUBSCRIBED")  # brand 7
    rows = [(f"optout{i}@example.com", sid, "SUBSCRIBED") for i in range(10) for sid in (101, 701)]
    rows += [(f"new{i}@example.com", 701, "SUBSCRIBED") for i in range(10)]
    states, summary, proof = _run(fake, monkeypatch, tmp_path, rows, business_unit_id=7, business_unit_ids=[7])
    assert states == {"write": "success", "verify": "success"}
    _adds_up(summary)
    assert summary["skipped_by_reason"]["resubscribe_not_allowed"] == 20
    assert summary["written"] == 10
    assert all(
        fake.status(f"optout{i}@example.com", sid)["status"] == "UNSUBSCRIBED" for i in range(10) for sid in (101, 701)
    )
    assert proof["rows_verified"] == proof["rows_matching"] == 10


def test_rows_of_a_declared_brand_are_guarded_and_read_back_without_a_default_brand(
    hubcomm_fake_factory, monkeypatch, tmp_path
):
    fake = hubcomm_fake_factory(subscriptions=BRANDED)
    fake.set_state("gone@example.com", 701, "UNSUBSCRIBED")
    rows = [("gone@example.com", 701, "SUBSCRIBED")] + [(f"b7_{i}@example.com", 701, "UNSUBSCRIBED") for i in range(30)]
    states, summary, proof = _run(fake, monkeypatch, tmp_path, rows, business_unit_ids=[7])
    assert states == {"write": "success", "verify": "success"}
    assert (summary["written"], summary["skipped_by_reason"]["resubscribe_not_allowed"]) == (30, 1)
    assert fake.status("gone@example.com", 701)["status"] == "UNSUBSCRIBED"
    assert proof["rows_verified"] == proof["rows_matching"] == 30


def test_a_server_without_v4_serves_every_call(hubcomm_fake_factory, monkeypatch, tmp_path):
    fake = hubcomm_fake_factory(api_versions=("2026-03",))
    rows = [(f"v{i}@example.com", 101 + i % 3, ("SUBSCRIBED", "UNSUBSCRIBED")[i % 2]) for i in range(300)]
    states, summary, proof = _run(fake, monkeypatch, tmp_path, rows)
    assert states == {"write": "success", "verify": "success"}
    assert (summary["written"], summary["failed"]) == (300, 0)
    assert {e["path"].split("/")[2] for e in fake.request_log if e["path"].startswith("/communication")} == {"2026-03"}
    assert proof["rows_matching"] == 300


@pytest.mark.slow  # 5,000 paced single writes: about 40 s; the provider's own pacing, run with the latest Airflow
def test_an_account_without_batch_scopes_converges_through_single_writes(hubcomm_fake_factory, monkeypatch, tmp_path):
    fake = hubcomm_fake_factory(batch_scopes=False, requests_per_window=8_000, window_seconds=10.0)
    rows = [(f"s{i}@example.com", 101 + i % 3, "UNSUBSCRIBED") for i in range(5_000)]
    states, summary, proof = _run(fake, monkeypatch, tmp_path, rows, requests_per_10s=7_000)
    assert states == {"write": "success", "verify": "success"}
    _adds_up(summary)
    assert (summary["mode"], summary["written"], summary["failed"]) == ("single", 5_000, 0)
    assert fake.counters["endpoint:statuses"] >= 5_000
    assert fake.counters.get("rate_limited", 0) <= 0.01 * fake.counters["requests"]
    assert proof["read_mode"] == "single"
    assert proof["rows_verified"] == proof["rows_matching"] == 1_000  # the sensor's sample


def test_an_oversized_batch_is_halved_and_the_size_kept(hubcomm_fake_factory, monkeypatch, tmp_path):
    fake = hubcomm_fake_factory(max_batch_size=30)
    rows = [(f"h{i}@example.com", 101, "UNSUBSCRIBED") for i in range(400)]
    states, summary, _ = _run(fake, monkeypatch, tmp_path, rows)
    assert states == {"write": "success", "verify": "success"}
    assert (summary["written"], summary["failed"]) == (400, 0)
    assert summary["plan"]["batch_size_reduced"] is True
    assert summary["plan"]["batch_size_used"] <= 30


def test_pending_answers_are_unconfirmed_then_proven(hubcomm_fake_factory, monkeypatch, tmp_path):
    fake = hubcomm_fake_factory(batch_mode="delayed", batch_delay=2.0)
    rows = [(f"p{i}@example.com", 102, "UNSUBSCRIBED") for i in range(120)]
    states, summary, proof = _run(fake, monkeypatch, tmp_path, rows)
    assert states == {"write": "success", "verify": "success"}
    assert (summary["written"], summary["unconfirmed"], summary["failed"]) == (120, 120, 0)
    assert proof["rows_matching"] == 120
    assert proof["unconfirmed"]["confirmed"] == 120
    assert all(fake.status(f"p{i}@example.com", 102)["status"] == "UNSUBSCRIBED" for i in range(120))
