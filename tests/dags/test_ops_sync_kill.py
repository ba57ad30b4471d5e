"""DAG of ``tests/operators/test_sync_kill.py``: an incremental sync the test runs in a child process and kills.

Run as a script (``python test_ops_sync_kill.py '<conf json>'``) it runs the DAG with ``dag.test()`` in this
process, so the test can SIGKILL it midway like a worker lost by Airflow. ``HUBCOMM_TEST_CHECKPOINT_ROWS``
sets the state's checkpoint step (the most a killed run may re-send, plus the chunk in flight).
"""

from __future__ import annotations

import json
import os
import sys
from datetime import datetime

from airflow.sdk import DAG

from airflow_provider_hubcomm.operators import BatchWriteStatusesOperator

with DAG(dag_id="test_ops_sync_kill", schedule=None, start_date=datetime(2026, 1, 1), catchup=False) as dag:
    BatchWriteStatusesOperator(
        task_id="sync",
        inputs="{{ dag_run.conf['path'] }}",
        output_dir="{{ dag_run.conf['out'] }}",
        state_path="{{ dag_run.conf['state'] }}",
        batch_size=25,
        max_concurrency=1,
        retries=0,
    )

if __name__ == "__main__":
    from airflow_provider_hubcomm.sync import state

    setattr(state, "CHECKPOINT_ROWS", int(os.environ.get("HUBCOMM_TEST_CHECKPOINT_ROWS", "5000")))  # noqa: B010
    run = dag.test(run_conf=json.loads(sys.argv[1]))
    print(json.dumps({"state": str(run.state)}))
