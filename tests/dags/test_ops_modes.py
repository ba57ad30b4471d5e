"""Integration DAG of ``tests/operators/test_hubcomm_dags.py``: batch modes, one independent task each.

Rows come from the run's ``conf`` (rendered as native objects). ``threshold`` and ``invalid_fail`` are
expected to fail; the others to succeed.
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG

from airflow_provider_hubcomm.operators import BatchWriteStatusesOperator

with DAG(
    dag_id="test_ops_modes",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    render_template_as_native_obj=True,
    default_args={"output_dir": "{{ dag_run.conf['out'] }}"},
    tags=["test"],
) as dag:
    BatchWriteStatusesOperator(task_id="dry_run", inputs="{{ dag_run.conf['dry_run'] }}", dry_run=True, batch_size=3)
    BatchWriteStatusesOperator(task_id="only_changes", inputs="{{ dag_run.conf['only_changes'] }}", only_changes=True)
    BatchWriteStatusesOperator(task_id="threshold", inputs="{{ dag_run.conf['threshold'] }}", max_failed_ratio=0.25)
    BatchWriteStatusesOperator(task_id="invalid_fail", inputs="{{ dag_run.conf['invalid_fail'] }}")
    BatchWriteStatusesOperator(task_id="invalid_skip", inputs="{{ dag_run.conf['invalid'] }}", on_invalid="skip")
