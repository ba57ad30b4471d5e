"""DAG of ``tests/operators/test_partition_dags.py``: one sync split into 4 mapped partitions, each with its state.

The run's ``conf`` gives the input file, the state folder and the output folder.
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG

from airflow_provider_hubcomm.operators import BatchWriteStatusesOperator

PARTITIONS = 4

with DAG(
    dag_id="test_ops_partition", schedule=None, start_date=datetime(2026, 1, 1), catchup=False, tags=["test"]
) as dag:
    BatchWriteStatusesOperator.partial(
        task_id="sync",
        inputs="{{ dag_run.conf['path'] }}",
        output_dir="{{ dag_run.conf['out'] }}",
        state_path="{{ dag_run.conf['state'] }}",
        partitions=PARTITIONS,
        on_invalid="skip",
        batch_size=100,
        max_concurrency=2,
        retries=0,
    ).expand(partition=list(range(PARTITIONS)))
