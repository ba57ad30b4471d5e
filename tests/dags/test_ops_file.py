"""Integration DAG of ``tests/operators/test_hubcomm_dags.py``: a large CSV file through the batch operator.

Input path, failed-rows path and output directory come from the run's ``conf``.
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG

from airflow_provider_hubcomm.operators import BatchWriteStatusesOperator

with DAG(
    dag_id="test_ops_file",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["test"],
) as dag:
    BatchWriteStatusesOperator(
        task_id="write",
        inputs="{{ dag_run.conf['path'] }}",
        on_invalid="skip",
        batch_size=500,
        max_concurrency=8,
        failed_rows_path="{{ dag_run.conf['failed'] }}",
        output_dir="{{ dag_run.conf['out'] }}",
    )
