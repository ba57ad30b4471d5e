"""``BatchWriteStatusesOperator`` on accounts as HubSpot documents them (issue 16), HubSpot faked in memory."""

from __future__ import annotations

from pathlib import Path

from airflow_provider_hubcomm.operators import BatchWriteStatusesOperator
from tests.batch._mini import MiniHubSpot, assert_adds_up, make_hook, rows


def test_operator_falls_back_to_single_writes_without_batch_scopes(tmp_path: Path) -> None:
    api = MiniHubSpot(batch_scopes=False)
    api.state[("user1@example.com", 101)] = "UNSUBSCRIBED"
    op = BatchWriteStatusesOperator(
        task_id="t", inputs=[*rows(3, state="SUBSCRIBED"), *rows(5, start=3)], output_dir=str(tmp_path)
    )
    op.hook = make_hook(api)
    summary = op.execute({})
    assert_adds_up(summary)
    assert summary["mode"] == "single"
    assert (summary["written"], summary["skipped_by_reason"]["resubscribe_not_allowed"]) == (7, 1)
    assert api.state[("user1@example.com", 101)] == "UNSUBSCRIBED"


def test_operator_resolves_subscription_names(tmp_path: Path) -> None:
    api = MiniHubSpot()
    op = BatchWriteStatusesOperator(
        task_id="t",
        inputs=[{"email": "a@x.com", "state": "unsubscribed"}],
        column_map={"email": "subscriberIdString", "state": "statusState"},
        defaults={"subscriptionId": "Product updates"},
        output_dir=str(tmp_path),
    )
    op.hook = make_hook(api)
    summary = op.execute({})
    assert summary["written"] == 1
    assert api.writes == [
        [{"subscriberIdString": "a@x.com", "subscriptionId": 102, "statusState": "UNSUBSCRIBED", "channel": "EMAIL"}]
    ]
