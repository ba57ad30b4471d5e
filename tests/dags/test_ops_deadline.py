"""DAG of ``tests/operators/test_deadline_dags.py``: one status write and one read-back against a slow server.

``set_one`` writes the status of ``conf['email']``; ``verify`` (deferrable, 6 s timeout) reads a summary's rows
back. The tests point the connection at a fake that drips every answer's body one byte at a time: the
connection's ``timeout`` must bound each attempt, and the sensor's timeout the trigger.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG

from airflow_provider_hubcomm.operators import SetStatusOperator
from airflow_provider_hubcomm.sensors import BatchStatusSensor

with DAG(
    dag_id="test_ops_deadline",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["test"],
) as dag:
    SetStatusOperator(
        task_id="set_one",
        subscriber_id="{{ dag_run.conf['email'] }}",
        subscription_id=101,
        status="UNSUBSCRIBED",
        retries=0,
        execution_timeout=timedelta(seconds=60),
    )
    BatchStatusSensor(
        task_id="verify",
        batch="{{ dag_run.conf['summary'] }}",
        verify="all",
        deferrable=True,
        poke_interval=1,
        timeout=6,
        retries=0,
    )
