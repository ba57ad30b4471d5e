"""An in-memory HubSpot after its published contract, behind ``httpx.MockTransport`` (batch-engine tests).

It models what the bundled fake may not yet: ``GET /definitions`` and status reads filtered by
``businessUnitId`` (no parameter: brand 0); batch-write per-input errors in a 200 with ``errors[]`` (207 on
request); non-final answers (``PENDING``) that echo no results; an account without batch scopes (403
``MISSING_SCOPES`` on every batch endpoint, single endpoints work); a batch-size cap answered with a 400.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import httpx
from airflow.sdk import Connection

from airflow_provider_hubcomm.batch.engine import BatchWriteEngine
from airflow_provider_hubcomm.batch.options import BatchWriteOptions
from airflow_provider_hubcomm.hooks.hubcomm import HubCommHook

#: id -> (name, brand, active): what ``GET /definitions`` lists (999 is defined but every write to it fails).
DEFINITIONS: dict[int, tuple[str, int, bool]] = {
    101: ("Newsletter", 0, True),
    102: ("Product updates", 0, True),
    103: ("Events", 0, True),
    999: ("Legacy", 0, True),
}
TOKEN = "pat-mini-secret-0042"
Override = Callable[[httpx.Request, int], "httpx.Response | Exception | None"]


class MiniHubSpot:
    """In-memory HubSpot; ``override(request, n)`` may answer a counted (non-definitions) call instead.

    :param status: the ``status`` of batch-write answers (``PENDING`` answers echo no results).
    :param definitions: id -> (name, brand, active).
    :param partial_status: HTTP status of a batch write with per-input errors (200 per the spec, or 207).
    :param batch_scopes: ``False``: every batch endpoint answers 403 ``MISSING_SCOPES``.
    :param max_batch_size: a batch write with more inputs answers 400 "exceeds the maximum".
    """

    def __init__(
        self,
        override: Override | None = None,
        *,
        status: str = "COMPLETE",
        delay: float = 0.0,
        definitions: dict[int, tuple[str, int, bool]] | None = None,
        partial_status: int = 200,
        batch_scopes: bool = True,
        max_batch_size: int | None = None,
    ) -> None:
        self.state: dict[tuple[str, int], str] = {}
        self.wide: set[tuple[str, int]] = set()
        self.definitions = dict(DEFINITIONS if definitions is None else definitions)
        self.writes: list[list[dict[str, Any]]] = []
        self.reads: list[list[str]] = []
        self.read_brands: list[int] = []
        self.wide_reads: list[list[str]] = []
        self.wide_brands: list[int] = []
        self.paths: list[str] = []
        self.override = override
        self.status = status
        self.partial_status = partial_status
        self.batch_scopes = batch_scopes
        self.max_batch_size = max_batch_size
        self.delay = delay
        self.calls = 0
        self.definition_reads = 0
        self.active = 0
        self.max_active = 0
        self.lock = threading.Lock()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        brand = int(request.url.params.get("businessUnitId", 0))
        path = request.url.path
        if path.endswith("/definitions"):  # not counted in ``calls``, never overridden
            with self.lock:
                self.definition_reads += 1
            return self._definitions(brand)
        with self.lock:
            self.calls += 1
            n = self.calls
            self.active += 1
            self.max_active = max(self.max_active, self.active)
            self.paths.append(f"{request.method} {path}")
        try:
            if self.delay:
                time.sleep(self.delay)
            if self.override is not None:
                outcome = self.override(request, n)
                if isinstance(outcome, Exception):
                    raise outcome
                if outcome is not None:
                    return outcome
            if "/statuses/batch/" in path:
                if not self.batch_scopes:
                    body = {
                        "status": "error",
                        "category": "MISSING_SCOPES",
                        "message": "This app hasn't been granted all required scopes to make this call.",
                        "context": {"requiredScopes": ["communication_preferences.statuses.batch.write"]},
                    }
                    return httpx.Response(403, json=body)
                inputs = json.loads(request.content)["inputs"]
                if path.endswith("/statuses/batch/read"):
                    return self._read(inputs, brand)
                if path.endswith("/statuses/batch/unsubscribe-all/read"):
                    return self._read_wide(inputs, brand)
                assert path.endswith("/statuses/batch/write"), path
                return self._write(inputs)
            return self._single(request, brand)
        finally:
            with self.lock:
                self.active -= 1

    # -- answers -----------------------------------------------------------------------------------------------

    def _definitions(self, brand: int) -> httpx.Response:
        results = [
            {"id": str(sid), "name": name, "businessUnitId": b, "isActive": active}
            for sid, (name, b, active) in self.definitions.items()
            if b == brand
        ]
        return httpx.Response(200, json={"status": "COMPLETE", "results": results})

    def _statuses(self, sub: str, brand: int) -> list[dict[str, Any]]:
        return [
            {"subscriberIdString": sub, "subscriptionId": sid, "status": self.state.get((sub, sid), "NOT_SPECIFIED")}
            for sid, (_, b, _) in self.definitions.items()
            if b == brand
        ]

    def _wide_of(self, sub: str, brand: int) -> list[dict[str, Any]]:
        if (sub, brand) not in self.wide:
            return []
        kind = "PORTAL_WIDE" if brand == 0 else "BUSINESS_UNIT_WIDE"
        return [{"subscriberIdString": sub, "status": "UNSUBSCRIBED", "wideStatusType": kind, "businessUnitId": brand}]

    def _read(self, subscribers: list[str], brand: int) -> httpx.Response:
        with self.lock:
            self.reads.append(subscribers)
            self.read_brands.append(brand)
            results = [
                {"subscriberIdString": s.lower(), "statuses": self._statuses(s.lower(), brand)} for s in subscribers
            ]
        return httpx.Response(200, json={"status": "COMPLETE", "results": results})

    def _read_wide(self, subscribers: list[str], brand: int) -> httpx.Response:
        with self.lock:
            self.wide_reads.append(subscribers)
            self.wide_brands.append(brand)
            results = [
                {"subscriberIdString": s.lower(), "wideStatuses": self._wide_of(s.lower(), brand)} for s in subscribers
            ]
        return httpx.Response(200, json={"status": "COMPLETE", "results": results})

    def _write(self, inputs: list[dict[str, Any]]) -> httpx.Response:
        if self.max_batch_size is not None and len(inputs) > self.max_batch_size:
            message = f"Batch of {len(inputs)} inputs exceeds the maximum of {self.max_batch_size}"
            return httpx.Response(400, json={"status": "error", "category": "VALIDATION_ERROR", "message": message})
        results, errors = [], []
        with self.lock:
            self.writes.append(inputs)
            for item in inputs:
                sub, sid = item["subscriberIdString"], item["subscriptionId"]
                if sid not in self.definitions or sid == 999 or not self.definitions[sid][2]:
                    context = {"subscriberIdString": [sub], "subscriptionId": [str(sid)]}
                    errors.append(
                        {"status": "404", "category": "OBJECT_NOT_FOUND", "message": "no such", "context": context}
                    )
                    continue
                if self.status != "CANCELED":
                    self.state[(sub.lower(), sid)] = item["statusState"]
                results.append(
                    {"subscriberIdString": sub.lower(), "subscriptionId": sid, "status": item["statusState"]}
                )
        body: dict[str, Any] = {
            "status": self.status,
            "results": results if self.status == "COMPLETE" else [],
            "requestedAt": "2026-01-01T00:00:00.000Z",
            "completedAt": "2026-01-01T00:00:00.010Z",
        }
        if errors:
            body.update(errors=errors, numErrors=len(errors))
        return httpx.Response(self.partial_status if errors else 200, json=body)

    def _single(self, request: httpx.Request, brand: int) -> httpx.Response:
        tail = request.url.raw_path.decode().split("?")[0].split("/statuses/", 1)[1]
        wide = tail.endswith("/unsubscribe-all")
        sub = unquote(tail.removesuffix("/unsubscribe-all")).lower()
        with self.lock:
            if request.method == "GET" and wide:
                return httpx.Response(200, json={"status": "COMPLETE", "results": self._wide_of(sub, brand)})
            if request.method == "GET":
                self.reads.append([sub])
                self.read_brands.append(brand)
                return httpx.Response(200, json={"status": "COMPLETE", "results": self._statuses(sub, brand)})
            assert request.method == "POST", request.url
            assert not wide, request.url
            item = json.loads(request.content)
            self.writes.append([{"subscriberIdString": sub, **item}])
            self.state[(sub, item["subscriptionId"])] = item["statusState"]
            status = {
                "subscriberIdString": sub,
                "subscriptionId": item["subscriptionId"],
                "status": item["statusState"],
            }
        return httpx.Response(200, json={"status": "COMPLETE", "results": [status]})

    @property
    def rows_sent(self) -> int:
        return sum(len(w) for w in self.writes)


def make_hook(api: MiniHubSpot, *, extra: dict[str, Any] | None = None, **kwargs: Any) -> HubCommHook:
    conn = Connection(
        conn_id="hubcomm_default",
        conn_type="hubcomm",
        host="https://api.unit.test",
        password=TOKEN,
        extra=json.dumps(extra or {}),
    )
    kwargs.setdefault("max_retries", 1)
    kwargs.setdefault("requests_per_10s", 100_000)  # the rate limiter is not under test here
    return HubCommHook(transport=httpx.MockTransport(api), connection=conn, retry_sleep=lambda _: None, **kwargs)


def rows(n: int, *, start: int = 0, state: str = "UNSUBSCRIBED", sid: int | str = 101) -> list[dict[str, Any]]:
    return [
        {"subscriberIdString": f"user{i}@example.com", "subscriptionId": sid, "statusState": state}
        for i in range(start, start + n)
    ]


def run(
    api: MiniHubSpot, inputs: Any, tmp_path: Path, *, extra: dict[str, Any] | None = None, **options: Any
) -> dict[str, Any]:
    options.setdefault("output_dir", str(tmp_path))
    return BatchWriteEngine(make_hook(api, extra=extra), BatchWriteOptions(**options)).run(inputs)


def read_lines(path: str | None) -> list[dict[str, Any]]:
    assert path is not None
    return [json.loads(line) for line in Path(path).read_text().splitlines()]


def assert_adds_up(summary: dict[str, Any]) -> None:
    assert summary["written"] + summary["failed"] + summary["skipped"] == summary["rows_read"]
    assert sum(summary["skipped_by_reason"].values()) == summary["skipped"]
    assert sum(summary["failed_by_reason"].values()) == summary["failed"]
    assert 0 <= summary["unconfirmed"] <= summary["written"]
