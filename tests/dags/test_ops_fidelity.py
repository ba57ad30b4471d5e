"""DAG of ``tests/operators/test_fidelity_dags.py``: a batch write from a file, proven by the sensor's read-back.

The run's ``conf`` gives the input file and the output folder; the tests point the connection at a fake that
follows HubSpot's published contract in one of its stricter modes (brands, no ``v4``, no batch scopes, a batch
cap, delayed batches).
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG

from airflow_provider_hubcomm.operators import BatchWriteStatusesOperator
from airflow_provider_hubcomm.sensors import BatchStatusSensor

with DAG(
    dag_id="test_ops_fidelity",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["test"],
) as dag:
    write = BatchWriteStatusesOperator(
        task_id="write",
        inputs="{{ dag_run.conf['inputs'] }}",
        output_dir="{{ dag_run.conf['out'] }}",
        on_invalid="skip",
        retries=0,
    )
    # Reads of 25 subscribers: the oversized-batch case caps every batch endpoint of the fake at 30 inputs. A
    # sample of 1,000 rows (every row of the smaller runs, and every row of a PENDING operation).
    verify = BatchStatusSensor(
        task_id="verify", batch=write.output, verify="sample", read_batch_size=25, poke_interval=1, timeout=300
    )
    write >> verify
