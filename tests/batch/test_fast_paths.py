"""The client's CPU fast paths (issue 18, "Faster client") write exactly what the per-row paths write."""

from __future__ import annotations

import io
import json

from airflow_provider_hubcomm.batch.outputs import JsonLinesSink
from airflow_provider_hubcomm.batch.reasons import ChunkResult
from airflow_provider_hubcomm.batch.rows import RowValidator, WriteRow
from airflow_provider_hubcomm.batch.summary import MAX_INLINE_WRITTEN
from airflow_provider_hubcomm.batch.write_account import RunAccount

SUBSCRIBERS = ["plain@example.com", 'quo"te\\@example.com', "ünï©ødé@exämple.com", "tab\tx@example.com"]


def _writes(count: int) -> list[WriteRow]:
    validate = RowValidator().validate
    rows = []
    for i in range(count):
        raw = {"subscriberIdString": f"{i}.{SUBSCRIBERS[i % 4]}", "subscriptionId": 100 + i % 3, "statusState": "x"}
        raw["statusState"] = ("subscribed", "UNSUBSCRIBED", "Not_Specified")[i % 3]
        write = validate(i + 1, raw)
        if isinstance(write, list):  # a control character is refused: keep the row, unvalidated
            write = WriteRow(raw["subscriberIdString"], 100 + i % 3, "SUBSCRIBED", "EMAIL", None, None)
        rows.append(write)
    return rows


def _account() -> tuple[RunAccount, io.StringIO]:
    sink = JsonLinesSink(kind="written")
    sink._fh = io.StringIO()
    return RunAccount(JsonLinesSink(kind="failed"), sink), sink._fh  # type: ignore[return-value]


def test_chunk_accounting_writes_the_same_manifest_as_row_by_row() -> None:
    writes = _writes(3 * MAX_INLINE_WRITTEN + 7)
    statuses = ["COMPLETE", "PENDING", "PROCESSING"]
    fast, fast_text = _account()
    slow, slow_text = _account()
    size = 50
    for index, start in enumerate(range(0, len(writes), size)):
        status = statuses[index % 3]
        result = ChunkResult(index, [])
        result.written = [(start + k + 1, w, status) for k, w in enumerate(writes[start : start + size])]
        fast.apply(result)
        for row, write, st in result.written:
            slow.write(row, write, index, st)
    assert fast_text.getvalue() == slow_text.getvalue()
    lines = fast_text.getvalue().splitlines()
    assert len(lines) == len(writes) == fast.written == fast.written_sink.lines  # type: ignore[union-attr]
    assert json.loads(lines[-1])["subscriberIdString"] == writes[-1].subscriber
    assert fast.unconfirmed == slow.unconfirmed > 0
    fast.rows_read = slow.rows_read = len(writes)
    assert fast.counts() == slow.counts()


def test_subscription_names_resolve_in_the_full_check_and_ids_keep_the_fast_path() -> None:
    from airflow_provider_hubcomm.batch.preflight import NamingValidator
    from airflow_provider_hubcomm.hooks._catalog import Subscription, SubscriptionCatalog

    loads: list[int] = []

    def catalog() -> SubscriptionCatalog:
        loads.append(1)
        return SubscriptionCatalog([Subscription(101, "Newsletter", 0, True), Subscription(102, "News", 0, True)], [0])

    validator = NamingValidator({"sub": "subscriptionId"}, None, "fail", catalog)
    base = {"subscriberIdString": " A@b.co ", "statusState": "subscribed"}
    assert validator.validate(1, {**base, "sub": 102}) == ("A@b.co", 102, "SUBSCRIBED", "EMAIL", None, None)
    assert validator.validate(2, {**base, "sub": "102"}) == ("A@b.co", 102, "SUBSCRIBED", "EMAIL", None, None)
    assert loads == []  # ids never load the catalog
    assert validator.validate(3, {**base, "sub": " newsletter "}) == ("A@b.co", 101, "SUBSCRIBED", "EMAIL", None, None)
    errors = validator.validate(4, {**base, "sub": "Nope"})
    assert isinstance(errors, list)
    assert len(errors) == 1
    assert (errors[0].row, errors[0].field, errors[0].column) == (4, "subscriptionId", "sub")
    assert "unknown subscription name" in errors[0].message
    both = validator.validate(5, {"subscriberIdString": "bad", "sub": "News", "statusState": "maybe"})
    assert isinstance(both, list)
    assert {e.field for e in both} == {"subscriberIdString", "statusState"}
    assert len(loads) == 3  # once per distinct name (the hook caches the catalog itself)
