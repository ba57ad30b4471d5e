"""Handle one GDPR / "stop all e-mail" request: unsubscribe a contact from all e-mail and prove it.

What this example shows:

1. A triggered DAG (``schedule=None``) that takes the contact from the run's ``params`` (trigger form or
   ``dag_run.conf``): ``{"subscriber": "jane@example.com"}`` and optionally ``"business_unit_id"`` for a brand.
2. ``unsubscribe_all``: :class:`~airflow_provider_hubcomm.operators.UnsubscribeAllOperator` with
   ``verbose=True``, so the task log and XCom list every subscription that changed.
3. ``prove_unsubscribed``: reads the contact back from HubSpot and **fails unless** HubSpot reports the contact
   opted out of all e-mail *and* no subscription of the contact still reads ``SUBSCRIBED``. The evidence
   (opt-out timestamp, every status with its source) is logged and returned for your audit trail.

Trigger it with::

    airflow dags trigger gdpr_unsubscribe_request --conf '{"subscriber": "jane@example.com"}'

The same file holds the bulk version, ``gdpr_bulk_unsubscribe``: a suppression or erasure list from a warehouse
extract (a CSV/JSONL/Parquet file or object-storage path with an ``email`` column) opted out of all e-mail with
:class:`~airflow_provider_hubcomm.operators.BatchUnsubscribeAllOperator` (chunked, rate-limited, retried, every
row accounted for; single calls when the account has no batch scopes), then proven by
:class:`~airflow_provider_hubcomm.sensors.BatchStatusSensor`, which reads every opt-out back::

    airflow dags trigger gdpr_bulk_unsubscribe --conf '{"erasure_list": "s3://aws_default@bucket/erasure.csv"}'

Environment variables (optional): ``HUBCOMM_CONN_ID`` (default ``hubcomm_default``).
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import DAG, Param, task
from airflow.sdk.exceptions import AirflowException

from airflow_provider_hubcomm.hooks.hubcomm import HubCommHook
from airflow_provider_hubcomm.operators import BatchUnsubscribeAllOperator, UnsubscribeAllOperator
from airflow_provider_hubcomm.sensors import BatchStatusSensor

DAG_ID = "gdpr_unsubscribe_request"
BULK_DAG_ID = "gdpr_bulk_unsubscribe"
HUBCOMM_CONN_ID = os.environ.get("HUBCOMM_CONN_ID", "hubcomm_default")


def prove_unsubscribed(hook: HubCommHook, subscriber: str, business_unit_id: int | None = None) -> dict[str, Any]:
    """Read ``subscriber`` back and raise unless HubSpot shows them opted out of all e-mail.

    Proof means both: a wide (opt-out-of-all) status ``UNSUBSCRIBED`` for the brand, and no subscription
    status ``SUBSCRIBED``.

    :param hook: the HubSpot hook.
    :param subscriber: the contact's e-mail address.
    :param business_unit_id: the brand (``None``: the connection's default brand).
    :return: the evidence: the wide statuses and every subscription status read.
    :raises AirflowException: when HubSpot does not show the contact unsubscribed (the task retries, in case
        HubSpot is slow to show the change, then fails).
    """
    wide = hook.get_unsubscribe_all_status(subscriber, business_unit_id=business_unit_id)
    statuses = hook.get_statuses(subscriber, business_unit_id=business_unit_id)
    opted_out = [w for w in wide.results if (w.status or "").upper() == "UNSUBSCRIBED"]
    still_subscribed = [s for s in statuses.results if (s.status or "").upper() == "SUBSCRIBED"]
    evidence = {
        "subscriber": subscriber,
        "business_unit_id": business_unit_id,
        "opted_out_of_all": [w.model_dump(mode="json", by_alias=True, exclude_none=True) for w in opted_out],
        "statuses": [
            {"subscriptionId": s.subscription_id, "name": s.subscription_name, "status": s.status, "source": s.source}
            for s in statuses.results
        ],
    }
    problems = []
    if not opted_out:
        problems.append("HubSpot does not report the contact as opted out of all e-mail")
    if still_subscribed:
        ids = ", ".join(str(s.subscription_id) for s in still_subscribed)
        problems.append(f"still SUBSCRIBED to subscription(s) {ids}")
    if problems:
        raise AirflowException(f"{subscriber} is NOT unsubscribed: {'; '.join(problems)}. Evidence: {evidence}")
    return evidence


with DAG(
    dag_id=DAG_ID,
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["example", "hubspot", "gdpr"],
    doc_md=__doc__,
    # Templates render to Python objects, so a missing business unit stays None instead of "None".
    render_template_as_native_obj=True,
    params={
        "subscriber": Param(
            type="string",
            title="Contact e-mail",
            description="E-mail address of the contact to unsubscribe from all e-mail.",
            pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$",
        ),
        "business_unit_id": Param(
            None,
            type=["null", "integer"],
            title="Brand (business unit id)",
            description="Leave empty for the connection's default brand.",
        ),
    },
    default_args={"retries": 2, "retry_delay": timedelta(seconds=30)},
) as dag:
    # [START howto_hubcomm_unsubscribe_all]
    unsubscribe = UnsubscribeAllOperator(
        task_id="unsubscribe_all",
        subscriber_id="{{ params.subscriber }}",
        business_unit_id="{{ params.business_unit_id }}",
        verbose=True,
        hubcomm_conn_id=HUBCOMM_CONN_ID,
    )
    # [END howto_hubcomm_unsubscribe_all]

    # [START howto_hubcomm_prove_unsubscribed]
    @task(task_id="prove_unsubscribed")
    def prove(params: dict[str, Any] | None = None) -> dict[str, Any]:
        """Read the contact back from HubSpot; fail unless they are opted out of all e-mail."""
        assert params is not None  # injected by Airflow
        hook = HubCommHook(HUBCOMM_CONN_ID)
        try:
            evidence = prove_unsubscribed(hook, params["subscriber"], params.get("business_unit_id"))
        finally:
            hook.close()
        print(f"Proven: {params['subscriber']} is opted out of all e-mail: {evidence}")
        return evidence

    proof = prove()
    # [END howto_hubcomm_prove_unsubscribed]

    unsubscribe >> proof


with DAG(
    dag_id=BULK_DAG_ID,
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["example", "hubspot", "gdpr"],
    doc_md=__doc__,
    render_template_as_native_obj=True,
    params={
        "erasure_list": Param(
            type="string",
            title="Erasure list",
            description="Path or URL of a CSV/JSONL/Parquet file with an 'email' column.",
        ),
        "business_unit_id": Param(None, type=["null", "integer"], title="Brand (business unit id)"),
    },
) as bulk_dag:
    # [START howto_hubcomm_batch_unsubscribe_all]
    erase = BatchUnsubscribeAllOperator(
        task_id="unsubscribe_all",
        inputs="{{ params.erasure_list }}",
        subscriber_column="email",
        business_unit_id="{{ params.business_unit_id }}",
        on_invalid="skip",
        max_invalid_ratio=0.01,
        hubcomm_conn_id=HUBCOMM_CONN_ID,
    )
    prove_all = BatchStatusSensor(
        task_id="prove_unsubscribed",
        batch=erase.output,
        verify="all",
        poke_interval=30,
        timeout=3600,
        hubcomm_conn_id=HUBCOMM_CONN_ID,
    )
    erase >> prove_all
    # [END howto_hubcomm_batch_unsubscribe_all]
