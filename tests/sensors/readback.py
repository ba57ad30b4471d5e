"""Test helpers: an in-memory ``batch/read`` endpoint for httpx.MockTransport, and contract-shaped summaries."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import httpx

if TYPE_CHECKING:
    import pytest

BASE = "http://hubspot.unit.test"
TOKEN = "pat-unit-test-token-0123456789"
SUBS = (101, 102)


def set_conn(monkeypatch: pytest.MonkeyPatch, conn_id: str = "hubcomm_default", **extra: Any) -> None:
    extras = {"max_retries": 0, **extra}
    body = {"conn_type": "hubcomm", "host": BASE, "password": TOKEN, "extra": json.dumps(extras)}
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(body))


class ReadBack:
    """A HubSpot stand-in for read-back tests, for ``httpx.MockTransport``.

    ``GET …/definitions`` lists ``brands`` (subscription id -> brand; a definitions read with
    ``businessUnitId=b`` lists the subscriptions of brand ``b``); ``POST …/statuses/batch/read`` and
    ``GET …/statuses/{subscriber}`` answer from ``store``, filtered to the brand read like HubSpot does.
    Unknown subscribers get a 207 per-input error (batch) or a 404 (single). ``missing_scopes=True``
    refuses batch reads with ``403 MISSING_SCOPES``. ``requests`` lists the ids of every batch read,
    ``singles`` the subscriber of every single read, ``brands_read`` the ``businessUnitId`` of each read.
    """

    def __init__(
        self,
        store: dict[tuple[str, int], str] | None = None,
        *,
        brands: dict[int, int] | None = None,
        missing_scopes: bool = False,
    ) -> None:
        self.store: dict[tuple[str, int], str] = dict(store or {})
        self.brands: dict[int, int] = dict(brands or dict.fromkeys(SUBS, 0))
        self.missing_scopes = missing_scopes
        self.requests: list[list[str]] = []
        self.singles: list[str] = []
        self.brands_read: list[int | None] = []
        self.fail_with: int | None = None
        self.error_message = "boom"

    def _statuses(self, sub: str, brand: int | None) -> list[dict[str, Any]]:
        return [
            {"subscriberIdString": s, "subscriptionId": sid, "status": st, "channel": "EMAIL"}
            for (s, sid), st in self.store.items()
            if s == sub.lower() and self.brands.get(sid, 0) == (brand or 0)
        ]

    def __call__(self, request: httpx.Request) -> httpx.Response:
        assert request.headers["authorization"] == f"Bearer {TOKEN}"
        raw_brand = request.url.params.get("businessUnitId")
        brand = None if raw_brand is None else int(raw_brand)
        if request.url.path.endswith("/definitions"):
            defs = [
                {"id": str(sid), "name": f"Subscription {sid}", "businessUnitId": b, "isActive": True}
                for sid, b in self.brands.items()
                if b == (brand or 0)
            ]
            return httpx.Response(200, json={"results": defs})
        self.brands_read.append(brand)
        if request.method == "GET":
            sub = request.url.path.rsplit("/", 1)[-1]
            self.singles.append(sub)
            statuses = self._statuses(sub, brand)
            if not statuses:
                return httpx.Response(404, json={"status": "error", "message": "not found", "category": "NOT_FOUND"})
            return httpx.Response(200, json={"status": "COMPLETE", "results": statuses})
        assert request.url.path.endswith("/statuses/batch/read"), request.url.path
        if self.missing_scopes:
            body = {"status": "error", "message": "missing scopes", "category": "MISSING_SCOPES"}
            return httpx.Response(403, json=body)
        ids = json.loads(request.content)["inputs"]
        self.requests.append(ids)
        if self.fail_with:
            body = {"status": "error", "message": self.error_message, "category": "X"}
            return httpx.Response(self.fail_with, json=body)
        results, errors = [], []
        for sub in ids:
            statuses = self._statuses(sub, brand)
            if statuses:
                results.append({"subscriberIdString": sub, "statuses": statuses})
            else:
                errors.append({"status": "error", "category": "OBJECT_NOT_FOUND", "message": f"{sub} not found"})
        body = {"status": "COMPLETE", "results": results, "startedAt": "2026-01-01T00:00:00Z"}
        if errors:
            body.update(errors=errors, numErrors=len(errors))
        return httpx.Response(207 if errors else 200, json=body)

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self)

    def async_transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self)

    @property
    def rows_read(self) -> int:
        return sum(len(r) for r in self.requests)


def record(sub: str, sid: int, state: str, op: int = 0, op_status: str = "COMPLETE") -> dict[str, Any]:
    return {
        "subscriberIdString": sub,
        "subscriptionId": sid,
        "statusState": state,
        "operation": op,
        "operationStatus": op_status,
    }


def make_rows(
    n: int, *, per_op: int = 10, not_complete_ops: Iterable[int] = (), state: str = "UNSUBSCRIBED"
) -> list[dict]:
    pending = set(not_complete_ops)
    return [
        record(
            f"user{i}@example.com", SUBS[i % 2], state, i // per_op, "PENDING" if i // per_op in pending else "COMPLETE"
        )
        for i in range(n)
    ]


def summary(
    rows: Sequence[dict[str, Any]],
    *,
    path: str | None = None,
    inline: bool = True,
    canceled: Sequence[dict[str, Any]] = (),
    conn_id: str = "hubcomm_default",
) -> dict[str, Any]:
    ops: dict[int, str] = {}
    counts: dict[int, int] = {}
    for r in rows:
        ops[r["operation"]] = r["operationStatus"]
        counts[r["operation"]] = counts.get(r["operation"], 0) + 1
    by_status: dict[str, int] = {}
    for st in ops.values():
        by_status[st] = by_status.get(st, 0) + 1
    if canceled:
        by_status["CANCELED"] = len(canceled)
    not_complete = [
        {
            "index": i,
            "status": st,
            "requestedAt": "2026-01-01T00:00:00Z",
            "startedAt": None,
            "completedAt": None,
            "rows": counts[i],
        }
        for i, st in sorted(ops.items())
        if st != "COMPLETE"
    ]
    return {
        "conn_id": conn_id,
        "channel": "EMAIL",
        "dry_run": False,
        "rows_read": len(rows),
        "written": len(rows),
        "failed": sum(c["rows"] for c in canceled),
        "skipped": 0,
        "operations": {
            "total": len(ops) + len(canceled),
            "by_status": by_status,
            "first_requested_at": "2026-01-01T00:00:00Z",
            "last_completed_at": "2026-01-01T00:00:01Z",
            "not_complete": not_complete,
            "canceled": list(canceled),
        },
        "written_rows_path": path,
        "written_rows": list(rows) if inline else None,
    }


def store_of(rows: Iterable[dict[str, Any]]) -> dict[tuple[str, int], str]:
    return {(r["subscriberIdString"].lower(), r["subscriptionId"]): r["statusState"] for r in rows}


def write_jsonl(path: Any, rows: Iterable[dict[str, Any]]) -> str:
    with open(path, "w", encoding="utf-8") as fh:
        for r in rows:
            fh.write(json.dumps(r) + "\n")
    return str(path)
