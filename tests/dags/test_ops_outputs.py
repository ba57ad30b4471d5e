"""Integration DAG of ``tests/operators/test_hubcomm_dags.py``: a batch write with the default ``output_dir``.

Rows come from the run's ``conf``; the outputs go to the run's private folder under the temp directory.
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG

from airflow_provider_hubcomm.operators import BatchWriteStatusesOperator

with DAG(
    dag_id="test_ops_outputs",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    render_template_as_native_obj=True,
    tags=["test"],
) as dag:
    BatchWriteStatusesOperator(task_id="write", inputs="{{ dag_run.conf['rows'] }}", on_invalid="skip")
