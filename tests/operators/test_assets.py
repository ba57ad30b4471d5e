"""A consent sync updates an asset whose event carries the run's counts, and a DAG scheduled on it runs after."""

from __future__ import annotations

import csv
import importlib.util
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import TEST_DAGS

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("airflow_db")]

ROWS = [
    ("a@example.com", 101, "UNSUBSCRIBED"),
    ("b@example.com", 102, "NOT_SPECIFIED"),
    ("b@example.com", 102, "UNSUBSCRIBED"),  # duplicate: the last row wins
    ("not-an-email", 101, "UNSUBSCRIBED"),  # invalid: skipped
]


def _dags() -> Any:
    spec = importlib.util.spec_from_file_location("hubcomm_test_assets_consent", TEST_DAGS / "test_assets_consent.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _write_csv(path: Path) -> Path:
    with path.open("w", newline="", encoding="utf-8") as fh:
        out = csv.writer(fh)
        out.writerow(["subscriberIdString", "subscriptionId", "statusState"])
        out.writerows(ROWS)
    return path


def _return_value(dr: Any, task_id: str) -> Any:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        row = (
            session.query(XComModel)
            .filter_by(dag_id=dr.dag_id, run_id=dr.run_id, task_id=task_id, key="return_value")
            .one()
        )
        return XComModel.deserialize_value(row)


def test_sync_event_carries_counts_and_schedules_the_audit_dag(
    hubcomm_fake: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from airflow.models.asset import AssetDagRunQueue, AssetEvent, AssetModel
    from airflow.utils.session import create_session

    dags = _dags()
    monkeypatch.setenv("AIRFLOW_CONN_HUBCOMM_DEFAULT", hubcomm_fake.connection_json())
    conf = {"inputs": str(_write_csv(tmp_path / "consent.csv")), "out": str(tmp_path / "out")}

    sync = dags.sync_dag.test(run_conf=conf)
    assert str(sync.state) == "success"
    summary = _return_value(sync, "write")
    assert (summary["written"], summary["skipped"]) == (2, 2)

    with create_session() as session:
        asset = session.query(AssetModel).filter_by(uri=dags.CONSENT.uri).one()
        events = session.query(AssetEvent).filter_by(asset_id=asset.id).all()
        assert len(events) == 1
        extra = events[0].extra["hubcomm"]
        queued = {q.target_dag_id for q in session.query(AssetDagRunQueue).filter_by(asset_id=asset.id)}
    assert (extra["rows_read"], extra["written"], extra["failed"], extra["skipped"]) == (4, 2, 0, 2)
    assert extra["skipped_by_reason"] == {"duplicate": 1, "invalid": 1}
    assert "test_assets_audit" in queued, "the asset-scheduled DAG was not queued by the sync's event"

    audit = dags.audit_dag.test()
    assert str(audit.state) == "success"
    assert _return_value(audit, "audit")["written"] == 2
