"""DAG of ``tests/operators/test_optout_dags.py``: a bulk opt-out from a file, proven by the sensor's read-back.

``erase`` opts every address of the run's ``conf['inputs']`` file out of all e-mail of brand
``conf['brand']`` (invalid rows skipped); ``prove`` reads the opt-outs back (``batch/unsubscribe-all/read``, or
single reads when the account has no batch scopes) until every sampled row is confirmed.
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG

from airflow_provider_hubcomm.operators import BatchUnsubscribeAllOperator
from airflow_provider_hubcomm.sensors import BatchStatusSensor

with DAG(
    dag_id="test_ops_optout",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["test"],
) as dag:
    erase = BatchUnsubscribeAllOperator(
        task_id="erase",
        inputs="{{ dag_run.conf['inputs'] }}",
        subscriber_column="email",
        business_unit_id="{{ dag_run.conf['brand'] }}",
        on_invalid="skip",
        output_dir="{{ dag_run.conf['out'] }}",
        retries=0,
    )
    prove = BatchStatusSensor(task_id="prove", batch=erase.output, verify="sample", poke_interval=1, timeout=300)
    erase >> prove
