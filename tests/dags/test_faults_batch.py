"""DAGs of the fault-injection and security tests (``tests/faults``, ``tests/security``, ``scripts/fault_run.py``).

One ``BatchWriteStatusesOperator`` task that reads its input file and output locations from the run's
``conf``, through connection ``hubcomm_faults`` (tests point ``AIRFLOW_CONN_HUBCOMM_FAULTS`` at a
:class:`~airflow_provider_hubcomm.testing.FakeHubSpot`). Operator settings that are not templated
(``batch_size``, ``max_concurrency``, ``on_invalid``) come from ``HUBCOMM_FAULTS_*`` environment variables
when the file is parsed, so a subprocess ``airflow dags test`` gets the same task as an in-process
``dag.test()`` (tests may also set the attributes of the in-memory task before calling ``dag.test()``).

``on_invalid`` defaults to ``"skip"``: rows for a subscription the account does not define are reported
skipped (``unknown_subscription``) by the definitions preflight and the valid rows are written, as a
production sync of a dirty extract would be configured.
"""

from __future__ import annotations

import os
from datetime import datetime

from airflow.sdk import DAG

from airflow_provider_hubcomm.operators.hubcomm import BatchWriteStatusesOperator

CONN_ID = "hubcomm_faults"

with DAG(
    dag_id="test_faults_batch_write",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    tags=["tests", "faults"],
) as dag:
    BatchWriteStatusesOperator(
        task_id="write_statuses",
        hubcomm_conn_id=CONN_ID,
        inputs="{{ dag_run.conf['inputs'] }}",
        output_dir="{{ dag_run.conf['output_dir'] }}",
        failed_rows_path="{{ dag_run.conf['failed_rows_path'] }}",
        batch_size=int(os.environ.get("HUBCOMM_FAULTS_BATCH_SIZE", "500")),
        max_concurrency=int(os.environ.get("HUBCOMM_FAULTS_MAX_CONCURRENCY", "4")),
        on_invalid=os.environ.get("HUBCOMM_FAULTS_ON_INVALID", "skip"),  # type: ignore[arg-type]
        retries=0,
    )
