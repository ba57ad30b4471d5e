"""Integration DAG for ``BatchStatusSensor`` (driven by ``tests/sensors/test_integration.py``).

The connection comes from ``AIRFLOW_CONN_HUBCOMM_DEFAULT`` and the settings from the JSON environment
variable ``HUBCOMM_SENSOR_TEST`` (both set by the test): write ``rows`` statuses with the real
``BatchWriteStatusesOperator``, optionally pause for a status to be changed behind the run's back
(``handshake_dir``), verify them with the sensor, then report with ``trigger_rule="all_done"``.
"""

from __future__ import annotations

import json
import os
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from airflow.sdk import DAG, task

from airflow_provider_hubcomm.operators.hubcomm import BatchWriteStatusesOperator
from airflow_provider_hubcomm.sensors import BatchStatusSensor

DAG_ID = "test_sensor_batch_status"
SETTINGS: dict[str, Any] = json.loads(os.environ.get("HUBCOMM_SENSOR_TEST") or "{}")
ROWS = [
    {"subscriberIdString": f"user{i}@example.com", "subscriptionId": 101 + i % 2, "statusState": "UNSUBSCRIBED"}
    for i in range(int(SETTINGS.get("rows", 60)))
]

with DAG(
    dag_id=DAG_ID,
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    default_args={"retries": 1, "retry_delay": timedelta(seconds=0)},
    tags=["test"],
) as dag:
    write = BatchWriteStatusesOperator(task_id="write", inputs=ROWS, batch_size=20)
    verify = BatchStatusSensor(
        task_id="verify",
        batch=write.output,
        verify=SETTINGS.get("verify", "sample"),
        sample_size=int(SETTINGS.get("sample_size", 1000)),
        fail_on_mismatch=bool(SETTINGS.get("fail_on_mismatch", True)),
        deferrable=bool(SETTINGS.get("deferrable", False)),
        mode=SETTINGS.get("mode", "poke"),
        poke_interval=float(SETTINGS.get("poke_interval", 1)),
        timeout=float(SETTINGS.get("timeout", 20)),
        soft_fail=bool(SETTINGS.get("soft_fail", False)),
    )

    if SETTINGS.get("handshake_dir"):

        @task
        def behind_the_back(directory: str = SETTINGS["handshake_dir"]) -> None:
            """Signal the test, which changes a status in the fake, and wait until it has."""
            (Path(directory) / "ready").touch()
            deadline = time.monotonic() + 10
            while not (Path(directory) / "done").exists():
                if time.monotonic() > deadline:
                    raise TimeoutError("the test did not change the status")
                time.sleep(0.02)

        write >> behind_the_back() >> verify

    @task(trigger_rule="all_done")
    def report(result: dict[str, Any] | None) -> dict[str, Any]:
        """What a downstream report task sees (the sensor pushes its result even when it fails)."""
        result = result or {}
        return {key: result.get(key) for key in ("rows_verified", "rows_matching", "pending", "mismatch_count")}

    report(verify.output)
