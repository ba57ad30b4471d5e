"""DAGs of ``tests/operators/test_assets.py``: a consent sync that updates an asset, and an audit DAG scheduled on it.

``test_assets_sync`` writes the rows of its run's ``conf`` with ``BatchWriteStatusesOperator``; its ``outlets``
name the asset :data:`CONSENT`, so Airflow records an asset event whose ``extra`` carries the run's counts.
``test_assets_audit`` is scheduled on that asset (the scheduler creates its run when the sync succeeds) and returns
the counts of the newest event it sees through ``inlet_events``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from airflow.sdk import DAG, Asset, task

from airflow_provider_hubcomm.operators import BatchWriteStatusesOperator

CONSENT = Asset("hubcomm://tests/communication-preferences/EMAIL", extra={"owner": "tests"})

with DAG(
    dag_id="test_assets_sync",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["test"],
) as sync_dag:
    BatchWriteStatusesOperator(
        task_id="write",
        inputs="{{ dag_run.conf['inputs'] }}",
        output_dir="{{ dag_run.conf['out'] }}",
        on_invalid="skip",
        outlets=[CONSENT],
    )

with DAG(
    dag_id="test_assets_audit",
    schedule=[CONSENT],
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["test"],
) as audit_dag:

    @task(inlets=[CONSENT])
    def audit(inlet_events: Any = None) -> dict[str, Any]:
        events = inlet_events[CONSENT]
        return dict(events[-1].extra["hubcomm"]) if len(events) else {}

    audit()
