"""The fake's application: routing, authentication, rate limiting, fault injection, counters, request log.

Order of decisions for an API request, all taken when the request arrives:

1. route on the raw path split by ``/`` (unknown path: 404, method not served: 405; no auth needed);
2. seven random draws from the seeded generator, always seven, so the i-th API request always gets the
   same faults for a given seed, whatever the timing or the other knobs;
3. authentication (401), then the rolling-window budget (429, consumes nothing);
4. injected 5xx (consumes budget; nothing is applied), then injected 429 "storm" (consumes nothing);
5. after the (optional) injected latency: lazy application of due delayed batches, the handler, and
   possibly the drop-after-write (the write is applied, the connection closed with no answer).
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections import Counter, deque
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, unquote, urlencode

from airflow_provider_hubcomm.testing._auth import RateLimiter, TokenRegistry
from airflow_provider_hubcomm.testing._handlers import HANDLERS, WRITE_ENDPOINTS, Ctx, Result
from airflow_provider_hubcomm.testing._http import Deferred, HttpResponse
from airflow_provider_hubcomm.testing._responses import (
    ValidationFailed,
    dumps,
    error_body,
    error_response,
    json_response,
    rate_limit_body,
)
from airflow_provider_hubcomm.testing._state import ConsentStore, iso_now

if TYPE_CHECKING:
    from airflow_provider_hubcomm.testing._config import FakeConfig
    from airflow_provider_hubcomm.testing._http import HttpRequest

__all__ = ["LOG_FIELDS", "FakeApp"]

API_VERSIONS = frozenset({"v4", "2026-03"})
TOKEN_VERSIONS = frozenset({"v1", "v3", "2026-03"})
#: Never logged: query parameters that could carry a credential.
SECRET_PARAMS = frozenset({"client_secret", "refresh_token", "code", "access_token", "token", "hapikey"})
LOG_FIELDS = ("time", "method", "path", "query", "endpoint", "status", "outcome", "duration_ms", "n_inputs")
_5XX = (500, 502, 503, 504)
_5XX_MESSAGES = {
    500: "An internal error occurred.",
    502: "Bad Gateway: processing limits reached, try again later.",
    503: "Service Unavailable: HubSpot is temporarily unavailable.",
    504: "Gateway Timeout: processing limits reached, try again later.",
}


def route(path: str) -> tuple[str, str | None] | None:
    """Map a raw path to ``(endpoint, raw subscriber segment)``; ``None`` when no endpoint matches.

    :param path: the raw, still percent-encoded path.
    """
    parts = path.split("/")
    n = len(parts)
    if n < 4 or parts[0] != "":
        return None
    if parts[1] == "oauth" and n == 4 and parts[2] in TOKEN_VERSIONS and parts[3] == "token":
        return "token", None
    if parts[1] != "communication-preferences" or parts[2] not in API_VERSIONS:
        return None
    rest = parts[3:]
    if rest == ["definitions"]:
        return "definitions", None
    if rest[0] != "statuses" or len(rest) < 2 or rest[1] == "":
        return None
    if rest[1] == "batch" and len(rest) >= 3:
        name = {
            ("write",): "batch_write",
            ("read",): "batch_read",
            ("unsubscribe-all",): "batch_unsubscribe_all",
            ("unsubscribe-all", "read"): "batch_unsubscribe_all_read",
        }.get(tuple(rest[2:]))
        return (name, None) if name else None
    if len(rest) == 2:
        return "statuses", rest[1]
    if len(rest) == 3 and rest[2] == "unsubscribe-all":
        return "unsubscribe_all", rest[1]
    return None


def redact_query(query: str) -> str:
    """Return ``query`` with the value of every credential-like parameter replaced by ``***``.

    :param query: the raw query string.
    """
    if not query:
        return ""
    pairs = parse_qsl(query, keep_blank_values=True)
    if not any(k.lower() in SECRET_PARAMS for k, _ in pairs):
        return query
    return urlencode([(k, "***" if k.lower() in SECRET_PARAMS else v) for k, v in pairs])


class FakeApp:
    """State, credentials and fault plan of one fake portal; answers parsed HTTP requests.

    :param config: the knobs.
    """

    def __init__(self, config: FakeConfig) -> None:
        self.config = config
        self.store = ConsentStore(config.subscription_defs())
        self.tokens = TokenRegistry(list(config.private_app_tokens), config.clients())
        self.limiter = RateLimiter()
        self.rng = random.Random(config.seed)
        self.lock = threading.Lock()
        self.counters: Counter[str] = Counter()
        #: Entries are tuples in ``LOG_FIELDS`` order (a third of the memory of dicts).
        self.log: deque[tuple[Any, ...]] = deque(maxlen=config.request_log_limit)

    def reconfigure(self, config: FakeConfig, reseed: bool) -> None:
        """Swap in new knobs (called with the same identity knobs; see ``RUNTIME_KNOBS``).

        :param config: the new knobs.
        :param reseed: restart the random generator from ``config.seed``.
        """
        with self.lock:
            self.config = config
            if reseed:
                self.rng = random.Random(config.seed)

    # -- App protocol ------------------------------------------------------------------------------------
    def error_response(self, status: int, message: str) -> HttpResponse:
        """Answer a request the HTTP layer could not parse, or a crash.

        :param status: HTTP status.
        :param message: what went wrong.
        """
        with self.lock:
            self.counters["bad_request" if status < 500 else "internal_error"] += 1
        return error_response(status, message, str(uuid.uuid4()))

    def handle(self, req: HttpRequest) -> HttpResponse | Deferred:
        """Answer one request, possibly after an injected delay.

        :param req: the parsed request.
        """
        now = req.received
        found = route(req.path)
        if found is None:
            return self._finish_fixed(req, "unknown", self._not_found(req), "not_found", 0.0)
        endpoint, raw_sub = found
        if endpoint == "token":
            return self._admit_token(req)
        handler = HANDLERS.get((endpoint, req.method))
        if handler is None:
            return self._finish_fixed(req, endpoint, self._not_allowed(req), "method_not_allowed", 0.0)
        with self.lock:
            cfg = self.config
            draws = [self.rng.random() for _ in range(7)]
        delay = self._delay(cfg, draws)
        auth = self.tokens.check(req.headers.get("authorization"), now)
        if auth.app is None:
            body = error_body(auth.message, str(uuid.uuid4()), auth.category)
            return self._finish_fixed(req, endpoint, json_response(401, body), "unauthorized", delay)
        headers: list[tuple[str, str]] = []
        limit = cfg.requests_per_window
        decision = None
        if limit is not None:
            with self.lock:
                decision = self.limiter.peek(auth.app, limit, cfg.window_seconds, now)
            if not decision.allowed:
                resp = self._too_many(cfg, decision.retry_after)
                resp.headers.extend(self._rate_headers(cfg, decision.limit, 0))
                return self._finish_fixed(req, endpoint, resp, "rate_limited", delay)
        if draws[2] < cfg.error_rate_5xx:
            if decision is not None:
                with self.lock:
                    decision = self.limiter.consume(auth.app, decision, now)
            status = _5XX[int(draws[3] * 4) % 4]
            resp = error_response(status, _5XX_MESSAGES[status], str(uuid.uuid4()))
            if decision is not None:
                resp.headers.extend(self._rate_headers(cfg, decision.limit, decision.remaining))
            return self._finish_fixed(req, endpoint, resp, "injected_5xx", delay)
        if draws[4] < cfg.error_rate_429:
            resp = self._too_many(cfg, 1)
            if decision is not None:
                resp.headers.extend(self._rate_headers(cfg, decision.limit, decision.remaining))
            return self._finish_fixed(req, endpoint, resp, "injected_429", delay)
        if decision is not None:
            with self.lock:
                decision = self.limiter.consume(auth.app, decision, now)
            headers = self._rate_headers(cfg, decision.limit, decision.remaining)
        drop = f"{endpoint}:{req.method}" in WRITE_ENDPOINTS and draws[5] < cfg.drop_after_write_rate
        cancel = draws[6] < cfg.cancel_rate

        requested_at = iso_now()

        def finish() -> HttpResponse:
            return self._run(req, endpoint, handler, raw_sub, cfg, headers, drop, cancel, requested_at)

        return Deferred(delay, finish) if delay > 0 else finish()

    # -- internals ---------------------------------------------------------------------------------------
    @staticmethod
    def _delay(cfg: FakeConfig, draws: list[float]) -> float:
        delay = cfg.latency + cfg.latency_jitter * draws[0]
        if draws[1] < cfg.latency_spike_rate:
            delay += cfg.latency_spike_seconds
        return delay

    @staticmethod
    def _rate_headers(cfg: FakeConfig, limit: int, remaining: int) -> list[tuple[str, str]]:
        return [
            ("X-HubSpot-RateLimit-Max", str(limit)),
            ("X-HubSpot-RateLimit-Remaining", str(max(0, remaining))),
            ("X-HubSpot-RateLimit-Interval-Milliseconds", str(round(cfg.window_seconds * 1000))),
        ]

    @staticmethod
    def _too_many(cfg: FakeConfig, retry_after: int) -> HttpResponse:
        resp = json_response(429, rate_limit_body(str(uuid.uuid4())))
        if cfg.send_retry_after:
            resp.headers.append(("Retry-After", str(retry_after)))
        return resp

    @staticmethod
    def _not_found(req: HttpRequest) -> HttpResponse:
        msg = f"Unable to route request: no endpoint matches {req.method} {req.path}"
        return error_response(404, msg, str(uuid.uuid4()), "OBJECT_NOT_FOUND")

    @staticmethod
    def _not_allowed(req: HttpRequest) -> HttpResponse:
        msg = f"HTTP {req.method} is not supported by {req.path}"
        return error_response(405, msg, str(uuid.uuid4()), "METHOD_NOT_ALLOWED")

    def _finish_fixed(
        self, req: HttpRequest, endpoint: str, resp: HttpResponse, outcome: str, delay: float
    ) -> HttpResponse | Deferred:
        def finish() -> HttpResponse:
            self._record(req, endpoint, resp, outcome, 0, 0)
            return resp

        return Deferred(delay, finish) if delay > 0 else finish()

    def _run(
        self,
        req: HttpRequest,
        endpoint: str,
        handler: Any,
        raw_sub: str | None,
        cfg: FakeConfig,
        headers: list[tuple[str, str]],
        drop: bool,
        cancel: bool,
        requested_at: str,
    ) -> HttpResponse:
        now = time.monotonic()
        self.store.apply_due(now)
        cid = str(uuid.uuid4())
        query = dict(parse_qsl(req.query, keep_blank_values=True)) if req.query else {}
        sub = unquote(raw_sub) if raw_sub is not None else None
        ctx = Ctx(req.body, sub, query, cfg, self.store, cid, requested_at, iso_now(), now, cancel)
        try:
            result: Result = handler(ctx)
        except ValidationFailed as exc:
            result = Result(error_response(400, str(exc), cid, "VALIDATION_ERROR", exc.errors), "validation_error")
        resp = result.response
        resp.headers.extend(headers)
        resp.headers.append(("X-HubSpot-Correlation-Id", cid))
        outcome = result.outcome
        if drop and result.wrote:
            resp = HttpResponse(0, drop=True)
            outcome = "dropped_after_write"
        self._record(req, endpoint, resp, outcome, result.n_inputs, result.applied)
        return resp

    def _record(
        self, req: HttpRequest, endpoint: str, resp: HttpResponse, outcome: str, n_inputs: int, applied: int
    ) -> None:
        entry = (
            time.time(),
            req.method,
            req.path,
            redact_query(req.query),
            endpoint,
            None if resp.drop else resp.status,
            outcome,
            round((time.monotonic() - req.received) * 1000, 3),
            n_inputs,
        )
        with self.lock:
            self.counters[outcome] += 1
            self.counters[f"endpoint:{endpoint}"] += 1
            self.counters["requests"] += 1
            if applied:
                self.counters["writes_applied"] += applied
            self.log.append(entry)

    # -- OAuth token endpoint ----------------------------------------------------------------------------
    def _admit_token(self, req: HttpRequest) -> HttpResponse | Deferred:
        if req.method != "POST":
            return self._finish_fixed(req, "token", self._not_allowed(req), "method_not_allowed", 0.0)
        with self.lock:
            cfg = self.config
            draws = [self.rng.random() for _ in range(7)] if cfg.fault_token_endpoint else None
        delay = 0.0
        if draws is not None:
            delay = self._delay(cfg, draws)
            if draws[2] < cfg.error_rate_5xx:
                status = _5XX[int(draws[3] * 4) % 4]
                resp = error_response(status, _5XX_MESSAGES[status], str(uuid.uuid4()))
                return self._finish_fixed(req, "token", resp, "injected_5xx", delay)
            if draws[4] < cfg.error_rate_429:
                return self._finish_fixed(req, "token", self._too_many(cfg, 1), "injected_429", delay)
        resp, outcome = self._token(req, cfg)
        return self._finish_fixed(req, "token", resp, outcome, delay)

    def _token(self, req: HttpRequest, cfg: FakeConfig) -> tuple[HttpResponse, str]:
        try:
            form = dict(parse_qsl(req.body.decode(), keep_blank_values=True))
        except UnicodeDecodeError:
            form = {}
        cid = str(uuid.uuid4())

        def refuse(status: str, message: str, error: str, description: str) -> tuple[HttpResponse, str]:
            body = {
                "status": status,
                "message": message,
                "error": error,
                "error_description": description,
                "correlationId": cid,
            }
            return json_response(400, body), "token_refused"

        if form.get("grant_type") != "refresh_token":
            return refuse(
                "BAD_GRANT_TYPE",
                "grant_type must be refresh_token",
                "unsupported_grant_type",
                "Only the refresh_token grant is supported by this fake.",
            )
        access, refresh = self.tokens.refresh(
            form.get("client_id", ""),
            form.get("client_secret", ""),
            form.get("refresh_token", ""),
            cfg.token_ttl,
            cfg.rotate_refresh_tokens,
            req.received,
        )
        if access is None:
            if refresh == "BAD_CLIENT_ID":
                return refuse("BAD_CLIENT_ID", "missing or unknown client id", "invalid_client", "Invalid client.")
            return refuse(
                "BAD_REFRESH_TOKEN",
                "missing or unknown refresh token",
                "invalid_grant",
                "The refresh token is invalid, expired or revoked.",
            )
        ttl = cfg.token_ttl
        body = {
            "token_type": "bearer",
            "access_token": access,
            "refresh_token": refresh,
            "expires_in": int(ttl) if float(ttl).is_integer() else ttl,
            "token_use": "access_token",
        }
        return HttpResponse(200, dumps(body), [("Cache-Control", "no-store")]), "token_issued"
