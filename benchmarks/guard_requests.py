"""Requests the re-subscribe guard costs: total requests / write requests on a one-third-SUBSCRIBED mix.

Runs ``BatchWriteEngine`` (whichever the ``PYTHONPATH`` provides: run it once with the old checkout for the
"before" figure) against an in-memory HubSpot behind ``httpx.MockTransport`` and prints, per scenario, the
requests by kind, the ratio to the write requests, and whether any opted-out contact was re-subscribed.

Scenarios (20,000 rows, batch size 100, every third row ``SUBSCRIBED``):

* ``distinct``: 20,000 distinct subscribers, one subscription. Of the guarded contacts, 90 % already read
  ``SUBSCRIBED``, 5 % ``UNSUBSCRIBED`` and 5 % have no status yet (1 in 5 of those opted out of all e-mail).
* ``distinct-fresh``: the same rows on an account where nobody has a status yet (every guarded contact
  needs the opt-out-of-all read too): the worst case.
* ``two-subs``: 10,000 subscribers with two subscriptions each, every third subscriber writing
  ``SUBSCRIBED`` to both, rows ordered by subscriber.
* ``two-subs-by-subscription``: the same rows ordered by subscription (a subscriber's rows 10,000 apart).

Usage: ``PYTHONPATH=. python benchmarks/guard_requests.py`` (add ``--json`` for machine-readable output).
"""

from __future__ import annotations

import json
import sys
import tempfile
import threading
from collections import Counter
from typing import Any

import httpx
from airflow.sdk import Connection

from airflow_provider_hubcomm.batch.engine import BatchWriteEngine
from airflow_provider_hubcomm.hooks.hubcomm import HubCommHook

try:
    from airflow_provider_hubcomm.batch.options import BatchWriteOptions
except ImportError:  # a checkout from before the options object (the "before" figure)
    BatchWriteOptions = None  # type: ignore[assignment,misc]


def _engine(hook: HubCommHook, **options: Any) -> BatchWriteEngine:
    if BatchWriteOptions is None:
        return BatchWriteEngine(hook, **options)  # type: ignore[call-arg]
    return BatchWriteEngine(hook, BatchWriteOptions(**options))


ROWS = 20_000
BATCH = 100
SUBSCRIPTIONS = {101: "Newsletter", 102: "Product updates"}


class Api:
    """Batch read, wide read, batch write and definitions, in memory; counts requests by endpoint."""

    def __init__(self) -> None:
        self.state: dict[tuple[str, int], str] = {}
        self.wide: set[str] = set()
        self.counts: Counter[str] = Counter()
        self.lock = threading.Lock()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        kind = path.rsplit("/", 1)[-1] if "/batch/" not in path else path.split("/batch/", 1)[1]
        with self.lock:
            self.counts[kind] += 1
            if kind == "definitions":
                results = [
                    {"id": str(i), "name": n, "isActive": True, "businessUnitId": 0} for i, n in SUBSCRIPTIONS.items()
                ]
                return httpx.Response(200, json={"status": "COMPLETE", "results": results})
            inputs = json.loads(request.content)["inputs"]
            if kind == "read":
                results = [
                    {
                        "subscriberIdString": s,
                        "statuses": [
                            {"subscriptionId": i, "status": self.state.get((s, i), "NOT_SPECIFIED")}
                            for i in SUBSCRIPTIONS
                        ],
                    }
                    for s in inputs
                ]
            elif kind == "unsubscribe-all/read":
                results = [
                    {
                        "subscriberIdString": s,
                        "wideStatuses": [{"status": "UNSUBSCRIBED", "wideStatusType": "PORTAL_WIDE"}]
                        if s in self.wide
                        else [],
                    }
                    for s in inputs
                ]
            else:
                assert kind == "write", path
                results = []
                for item in inputs:
                    self.state[(item["subscriberIdString"], item["subscriptionId"])] = item["statusState"]
                    results.append({k: item[k] for k in ("subscriberIdString", "subscriptionId", "statusState")})
        return httpx.Response(200, json={"status": "COMPLETE", "results": results})


def scenario(name: str) -> tuple[list[dict[str, Any]], Api]:
    api = Api()
    rows: list[dict[str, Any]] = []
    if name.startswith("distinct"):
        pairs = [(f"u{i}@example.com", 101) for i in range(ROWS)]
    elif name == "two-subs":
        pairs = [(f"u{i // 2}@example.com", 101 + i % 2) for i in range(ROWS)]
    else:
        pairs = [(f"u{i % (ROWS // 2)}@example.com", 101 + i // (ROWS // 2)) for i in range(ROWS)]
    for n, (sub, sid) in enumerate(pairs):
        # One third of the rows write SUBSCRIBED: every third row, or every third subscriber (both of its rows).
        third = n if name.startswith("distinct") else int(sub[1 : sub.index("@")])
        state = "SUBSCRIBED" if third % 3 == 0 else "UNSUBSCRIBED"
        rows.append({"subscriberIdString": sub, "subscriptionId": sid, "statusState": state})
        if state == "SUBSCRIBED" and name != "distinct-fresh":
            k = n // 3 % 20
            if k == 0:
                api.state[(sub, sid)] = "UNSUBSCRIBED"
            elif k == 1 and n // 3 % 100 == 1:
                api.wide.add(sub)
            elif k != 1:
                api.state[(sub, sid)] = "SUBSCRIBED"
    return rows, api


def measure(name: str) -> dict[str, Any]:
    rows, api = scenario(name)
    before = dict(api.state)
    opted_out_all = set(api.wide)
    conn = Connection(
        conn_id="hubcomm_default", conn_type="hubcomm", host="https://api.bench.test", password="pat-bench-0001"
    )
    hook = HubCommHook(transport=httpx.MockTransport(api), connection=conn, requests_per_10s=1_000_000)
    with tempfile.TemporaryDirectory() as out:
        summary = _engine(hook, batch_size=BATCH, output_dir=out).run(rows)
    # A re-subscription: a SUBSCRIBED row landed on a subscription that read UNSUBSCRIBED, or that had no status
    # while its contact had opted out of all e-mail (a subscription already SUBSCRIBED stays as it was).
    resubscribed = 0
    for row in rows:
        key = (row["subscriberIdString"], row["subscriptionId"])
        was = before.get(key)
        opted_out = was == "UNSUBSCRIBED" or (was is None and key[0] in opted_out_all)
        resubscribed += row["statusState"] == "SUBSCRIBED" and opted_out and api.state.get(key) == "SUBSCRIBED"
    total = sum(api.counts.values())
    writes = api.counts["write"]
    return {
        "scenario": name,
        "rows": len(rows),
        "requests": total,
        "by_endpoint": dict(api.counts),
        "write_requests": writes,
        "ratio": round(total / writes, 3),
        "skipped_resubscribe": summary["skipped_by_reason"].get("resubscribe_not_allowed", 0),
        "opted_out_resubscribed": resubscribed,
    }


def main() -> None:
    import logging

    logging.disable(logging.INFO)
    results = [measure(n) for n in ("distinct", "distinct-fresh", "two-subs", "two-subs-by-subscription")]
    if "--json" in sys.argv:
        print(json.dumps(results, indent=2))
        return
    print(
        f"{'scenario':28} {'requests':>8} {'writes':>6} {'ratio':>6} {'skipped':>7} {'re-subscribed':>13}  by endpoint"
    )
    for r in results:
        print(
            f"{r['scenario']:28} {r['requests']:>8} {r['write_requests']:>6} {r['ratio']:>6} "
            f"{r['skipped_resubscribe']:>7} {r['opted_out_resubscribed']:>13}  {r['by_endpoint']}"
        )


if __name__ == "__main__":
    main()
