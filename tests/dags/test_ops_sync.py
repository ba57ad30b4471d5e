"""DAGs of ``tests/operators/test_sync_dags.py``: incremental syncs of a file with a sync state (``state_path``).

``dag`` takes the input file, the state folder and the output folder from the run's ``conf``; ``resync_dag``
is the same with ``full_resync=True``; ``storage_dag`` names its state with an ``ObjectStoragePath``
(``HUBCOMM_TEST_SYNC_STATE``, a ``file://`` URL in the tests).
"""

from __future__ import annotations

import os
from datetime import datetime

from airflow.sdk import DAG, ObjectStoragePath

from airflow_provider_hubcomm.operators import BatchWriteStatusesOperator


def _dag(dag_id: str, **sync: object) -> DAG:
    with DAG(dag_id=dag_id, schedule=None, start_date=datetime(2026, 1, 1), catchup=False, tags=["test"]) as dag:
        BatchWriteStatusesOperator(
            task_id="sync",
            inputs="{{ dag_run.conf['path'] }}",
            output_dir="{{ dag_run.conf['out'] }}",
            batch_size=50,
            max_concurrency=2,
            retries=0,
            **sync,  # type: ignore[arg-type]
        )
    return dag


dag = _dag("test_ops_sync", state_path="{{ dag_run.conf['state'] }}")
resync_dag = _dag("test_ops_sync_resync", state_path="{{ dag_run.conf['state'] }}", full_resync=True)
storage_dag = _dag(
    "test_ops_sync_storage",
    state_path=ObjectStoragePath(os.environ.get("HUBCOMM_TEST_SYNC_STATE", "file:///tmp/hubcomm-sync-state")),
)
