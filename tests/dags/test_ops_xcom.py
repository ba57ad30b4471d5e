"""Integration DAG of ``tests/operators/test_hubcomm_dags.py``: XCom input, single-contact operators.

``produce`` returns rows (warehouse column names, a duplicate, a subscription the account does not define) that
``write`` reads through its templated ``inputs`` (an ``XComArg``); the definitions preflight skips the
unknown subscription's row (``on_invalid="skip"``) and the other rows are written. The single-contact tasks take their
arguments from the run's ``conf``; ``resubscribe_refused`` must fail (the contact opted out).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from airflow.sdk import DAG, task

from airflow_provider_hubcomm.operators import (
    BatchWriteStatusesOperator,
    SetStatusOperator,
    UnsubscribeAllOperator,
)

with DAG(
    dag_id="test_ops_xcom",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["test"],
) as dag:

    @task
    def produce(**context: Any) -> list[dict[str, Any]]:
        n = int(context["dag_run"].conf.get("rows", 10))
        rows: list[dict[str, Any]] = [{"email": f"xcom{i}@example.com", "state": "unsubscribed"} for i in range(n)]
        rows.append({"email": "XCOM0@example.com", "state": "not_specified"})  # duplicate of row 1: last wins
        rows.append({"email": "unknown-sub@example.com", "state": "UNSUBSCRIBED", "sid": 999})  # not defined
        return rows

    BatchWriteStatusesOperator(
        task_id="write",
        inputs=produce(),
        column_map={"email": "subscriberIdString", "state": "statusState", "sid": "subscriptionId"},
        defaults={"subscriptionId": 101},
        batch_size=4,
        on_invalid="skip",
        output_dir="{{ dag_run.conf['out'] }}",
    )
    set_one = SetStatusOperator(
        task_id="set_one",
        subscriber_id="{{ dag_run.conf['email'] }}",
        subscription_id="{{ dag_run.conf['subscription'] }}",
        status="unsubscribed",
        legal_basis="LEGITIMATE_INTEREST_CLIENT",
        legal_basis_explanation="Contact asked support to stop e-mails",
    )
    set_one >> UnsubscribeAllOperator(
        task_id="unsubscribe_all", subscriber_id="{{ dag_run.conf['email'] }}", verbose=True
    )
    SetStatusOperator(
        task_id="resubscribe_refused",
        subscriber_id="{{ dag_run.conf['opted_out'] }}",
        subscription_id=101,
        status="SUBSCRIBED",
    )
