"""DAGs of the deferral benchmark (``benchmarks/_deferral.py``, item 5 of ``benchmarks/run.py``).

Two twin DAGs, each with its own pool of ONE slot that all three of its tasks use:

* ``write``: ``BatchWriteStatusesOperator`` writes a few hundred rows; the fake answers ``PENDING`` and applies
  them ``batch_delay`` seconds later (``batch_mode="delayed"``);
* ``verify``: ``BatchStatusSensor`` (``verify="all"``), highest priority, so it takes the slot first;
* ``other``: an ordinary 2-second task in the same pool.

``hubcomm_deferral_bench`` runs the sensor with ``deferrable=True``: while it waits in the triggerer it holds
no slot, so ``other`` runs and finishes *before* the sensor. ``hubcomm_deferral_bench_poke`` is the control
(``deferrable=False``, poke mode): the sensor keeps the slot and ``other`` can only start after it.
"""

from __future__ import annotations

import os
import time
from datetime import datetime

from airflow.sdk import DAG, task

from airflow_provider_hubcomm.operators import BatchWriteStatusesOperator
from airflow_provider_hubcomm.sensors import BatchStatusSensor

ROWS = int(os.environ.get("HUBCOMM_BENCH_ROWS", "300"))
POKE_INTERVAL = float(os.environ.get("HUBCOMM_BENCH_POKE_INTERVAL", "3"))


def _rows(prefix: str) -> list[dict[str, object]]:
    return [
        {
            "subscriberIdString": f"{prefix}-{i}@example.com",
            "subscriptionId": 101 + i % 3,
            "statusState": "UNSUBSCRIBED",
        }
        for i in range(ROWS)
    ]


for dag_id, deferrable in (("hubcomm_deferral_bench", True), ("hubcomm_deferral_bench_poke", False)):
    pool = f"{dag_id}_pool"
    with DAG(
        dag_id=dag_id,
        schedule=None,
        start_date=datetime(2026, 1, 1),
        catchup=False,
        tags=["benchmark"],
        default_args={"pool": pool, "retries": 0},
    ) as dag:
        write = BatchWriteStatusesOperator(
            task_id="write", inputs=_rows("defer" if deferrable else "poke"), batch_size=100, priority_weight=100
        )
        verify = BatchStatusSensor(
            task_id="verify",
            batch=write.output,
            verify="all",
            deferrable=deferrable,
            poke_interval=POKE_INTERVAL,
            timeout=300,
            mode="poke",
            priority_weight=50,
        )

        @task(task_id="other", priority_weight=1)
        def other() -> float:
            time.sleep(2)
            return time.time()

        write >> [verify, other()]
    globals()[dag_id] = dag
