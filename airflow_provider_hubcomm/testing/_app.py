"""The fake's application: routing, authentication, rate limiting, fault injection, counters, request log.

Order of decisions for an API request, all taken when the request arrives:

1. route on the raw path split by ``/`` (unknown path or API version not in ``api_versions``: 404, method
   not served: 405; no auth needed);
2. seven random draws from the seeded generator, always seven, so the i-th API request always gets the
   same faults for a given seed, whatever the timing or the other knobs (the drip decision has its own
   generator);
3. authentication (401), then the daily budget (``DAILY`` 429), then the rolling-window budget
   (``TEN_SECONDLY_ROLLING`` 429), then an injected 429 "storm"; none of these consumes budget;
4. the request now counts against both budgets: missing batch scopes (403), injected 5xx (nothing applied);
5. after the (optional) injected latency: lazy application of due delayed batches, the handler, and
   possibly the drop-after-write (the write is applied, the connection closed before the answer is complete).

With ``echo_secrets`` every error answer quotes the request's credentials; with ``drip_interval`` the body of
an API answer is sent byte by byte.
"""

from __future__ import annotations

import logging
import random
import threading
import time
import uuid
from collections import Counter, deque
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, unquote, urlencode

from airflow_provider_hubcomm.testing._auth import PRIVATE_APP, RollingWindowBudget, TokenRegistry
from airflow_provider_hubcomm.testing._handlers import HANDLERS, WRITE_ENDPOINTS, Ctx, Result
from airflow_provider_hubcomm.testing._messages import Deferred, HttpResponse
from airflow_provider_hubcomm.testing._policy import (
    BATCH_SCOPES,
    daily_headers,
    echo_secrets,
    injected_5xx,
    missing_scopes,
    rate_headers,
    too_many,
    too_many_daily,
)
from airflow_provider_hubcomm.testing._responses import ValidationFailed, error_body, error_response, json_response
from airflow_provider_hubcomm.testing._state import ConsentStore, iso_now
from airflow_provider_hubcomm.testing._token import token_grant

if TYPE_CHECKING:
    from collections.abc import Collection

    from airflow_provider_hubcomm.testing._config import FakeConfig
    from airflow_provider_hubcomm.testing._messages import HttpRequest

__all__ = ["LOG_FIELDS", "FakeApp"]

TOKEN_VERSIONS = frozenset({"v1", "v3", "2026-03"})
#: Never logged: query parameters that could carry a credential.
SECRET_PARAMS = frozenset({"client_secret", "refresh_token", "code", "access_token", "token", "hapikey"})
log = logging.getLogger(__name__)

LOG_FIELDS = ("time", "method", "path", "query", "endpoint", "status", "outcome", "duration_ms", "n_inputs")


def route(path: str, versions: Collection[str]) -> tuple[str, str | None] | None:
    """Map a raw path to ``(endpoint, raw subscriber segment)``; ``None`` when no endpoint matches.

    :param path: the raw, still percent-encoded path.
    :param versions: the API versions served (``api_versions``); other versions do not route.
    """
    parts = path.split("/")
    n = len(parts)
    if n < 4 or parts[0] != "":
        return None
    if parts[1] == "oauth" and n == 4 and parts[2] in TOKEN_VERSIONS and parts[3] == "token":
        return "token", None
    if parts[1] != "communication-preferences" or parts[2] not in versions:
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


#: Endpoints that read statuses (counted by ``batch_release_after_reads``).
READ_ENDPOINTS = frozenset(
    {"statuses:GET", "unsubscribe_all:GET", "batch_read:POST", "batch_unsubscribe_all_read:POST"}
)


class FakeApp:
    """State, credentials and fault plan of one fake portal; answers parsed HTTP requests.

    :param config: the knobs.
    """

    def __init__(self, config: FakeConfig) -> None:
        self.config = config
        self.store = ConsentStore(config.subscription_defs())
        self.tokens = TokenRegistry(list(config.private_app_tokens), config.clients())
        self.window_budget = RollingWindowBudget()
        self.rng = random.Random(config.seed)
        #: Drip decisions have their own generator so the main sequence of seven draws stays as it was.
        self.drip_rng = random.Random(f"drip-{config.seed}")
        #: Requests counted against ``daily_limit`` (the whole account, every app).
        self.daily_used = 0
        self.lock = threading.Lock()
        self.counters: Counter[str] = Counter()
        #: Status reads answered while batches were pending (``batch_release_after_reads``).
        self.reads_while_pending = 0
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
                self.drip_rng = random.Random(f"drip-{config.seed}")

    # -- answers the carriers give without a handler ------------------------------------------------------
    def error_response(self, status: int, message: str) -> HttpResponse:
        """Answer a request refused before routing (``bad_request``), or a crash (``internal_error``).

        :param status: HTTP status.
        :param message: what went wrong.
        """
        with self.lock:
            self.counters["bad_request" if status < 500 else "internal_error"] += 1
        return error_response(status, message, str(uuid.uuid4()))

    def body_too_large(self) -> HttpResponse:
        """Answer a request whose body is over ``max_body_bytes``: 413, and the connection is closed after it."""
        resp = self.error_response(413, "request body too large")
        resp.headers.append(("Connection", "close"))
        return resp

    def crashed(self, req: HttpRequest) -> HttpResponse:
        """Log the unhandled error being handled (a bug of the fake) and answer 500.

        :param req: the request being answered.
        """
        log.exception("hubcomm fake: unhandled error answering %s %s", req.method, req.path)
        return self.error_response(500, "internal error in the fake server")

    def handle(self, req: HttpRequest) -> HttpResponse | Deferred:
        """Answer one request, possibly after an injected delay.

        :param req: the parsed request.
        """
        now = req.received
        found = route(req.path, self.config.api_versions)
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
            drip = cfg.drip_interval if cfg.drip_interval > 0 and self.drip_rng.random() < cfg.drip_rate else 0.0
            if draws[1] < cfg.latency_spike_rate:
                self.counters["latency_spikes"] += 1  # counted when decided: the answer may outlive the run
        delay = self._delay(cfg, draws)
        auth = self.tokens.check(req.headers.get("authorization"), now)
        if auth.app is None:
            body = error_body(auth.message, str(uuid.uuid4()), auth.category)
            return self._finish_fixed(req, endpoint, json_response(401, body), "unauthorized", delay, drip)
        injected_429 = draws[4] < cfg.error_rate_429 and draws[2] >= cfg.error_rate_5xx
        refused, headers = self._admit(auth.app, cfg, injected_429, now)
        if refused is not None:
            return self._finish_fixed(req, endpoint, refused[0], refused[1], delay, drip)
        if not cfg.batch_scopes and endpoint in BATCH_SCOPES:
            resp = missing_scopes(endpoint, str(uuid.uuid4()))
            resp.headers.extend(headers)
            return self._finish_fixed(req, endpoint, resp, "missing_scopes", delay, drip)
        if draws[2] < cfg.error_rate_5xx:
            resp = injected_5xx(cfg, draws[3], str(uuid.uuid4()))
            resp.headers.extend(headers)
            return self._finish_fixed(req, endpoint, resp, "injected_5xx", delay, drip)
        drop = f"{endpoint}:{req.method}" in WRITE_ENDPOINTS and draws[5] < cfg.drop_after_write_rate
        cancel = draws[6] < cfg.cancel_rate

        requested_at = iso_now()

        def finish() -> HttpResponse:
            resp = self._run(req, endpoint, handler, raw_sub, cfg, headers, drop, cancel, requested_at)
            resp.drip = drip
            return resp

        return Deferred(delay, finish) if delay > 0 else finish()

    # -- internals ---------------------------------------------------------------------------------------
    def _admit(
        self, app: str, cfg: FakeConfig, injected_429: bool, now: float
    ) -> tuple[tuple[HttpResponse, str] | None, list[tuple[str, str]]]:
        """Check and spend the budgets: ``((refusal, outcome), [])``, or ``(None, headers)`` once admitted.

        The daily budget, then the rolling window, then an injected 429 storm (none of these consumes
        anything); an admitted request counts against both budgets. One critical section: threads of an
        in-process client (see :meth:`FakeHubSpot.transport`) must not both take the last slot.
        """
        daily, limit = cfg.daily_limit, cfg.requests_per_window
        private = app == PRIVATE_APP
        with self.lock:
            if daily is not None and self.daily_used >= daily:
                resp = too_many_daily(str(uuid.uuid4()))
                if private:
                    resp.headers.extend(daily_headers(daily, self.daily_used))
                return (resp, "daily_limited"), []
            decision = None
            if limit is not None:
                decision = self.window_budget.peek(app, limit, cfg.window_seconds, now)
                if not decision.allowed:
                    resp = too_many(cfg, decision.retry_after, str(uuid.uuid4()))
                    resp.headers.extend(rate_headers(cfg, decision.limit, 0))
                    return (resp, "rate_limited"), []
            if injected_429:
                resp = too_many(cfg, 1, str(uuid.uuid4()))
                if decision is not None:
                    resp.headers.extend(rate_headers(cfg, decision.limit, decision.remaining))
                return (resp, "injected_429"), []
            headers: list[tuple[str, str]] = []
            if decision is not None:
                decision = self.window_budget.consume(app, decision, now)
                headers = rate_headers(cfg, decision.limit, decision.remaining)
            self.daily_used += 1
            if daily is not None and private:
                headers.extend(daily_headers(daily, self.daily_used))
        return None, headers

    @staticmethod
    def _delay(cfg: FakeConfig, draws: list[float]) -> float:
        delay = cfg.latency + cfg.latency_jitter * draws[0]
        if draws[1] < cfg.latency_spike_rate:
            delay += cfg.latency_spike_seconds
        return delay

    @staticmethod
    def _not_found(req: HttpRequest) -> HttpResponse:
        msg = f"Unable to route request: no endpoint matches {req.method} {req.path}"
        return error_response(404, msg, str(uuid.uuid4()), "OBJECT_NOT_FOUND")

    @staticmethod
    def _not_allowed(req: HttpRequest) -> HttpResponse:
        msg = f"HTTP {req.method} is not supported by {req.path}"
        return error_response(405, msg, str(uuid.uuid4()), "METHOD_NOT_ALLOWED")

    def _finish_fixed(
        self, req: HttpRequest, endpoint: str, resp: HttpResponse, outcome: str, delay: float, drip: float = 0.0
    ) -> HttpResponse | Deferred:
        if resp.status >= 400 and self.config.echo_secrets:
            echo_secrets(resp, req, endpoint == "token")
        resp.drip = drip

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
        if resp.status >= 400 and cfg.echo_secrets:
            echo_secrets(resp, req, False)
        resp.headers.extend(headers)
        resp.headers.append(("X-HubSpot-Correlation-Id", cid))
        outcome = result.outcome
        if drop and result.wrote:
            resp.drop = True  # the carrier sends the head at most, then closes the connection
            outcome = "dropped_after_write"
        self._record(req, endpoint, resp, outcome, result.n_inputs, result.applied)
        if cfg.batch_release_after_reads and f"{endpoint}:{req.method}" in READ_ENDPOINTS:
            self._count_read_while_pending(cfg.batch_release_after_reads)
        return resp

    def _count_read_while_pending(self, release_after: int) -> None:
        """Count a status read answered while batches are pending; release them all at ``release_after``."""
        with self.lock:
            if self.store.pending_writes == 0:
                self.reads_while_pending = 0
                return
            self.reads_while_pending += 1
            if self.reads_while_pending < release_after:
                return
            self.reads_while_pending = 0
        self.store.release_all()

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
            if draws is not None and draws[1] < cfg.latency_spike_rate:
                self.counters["latency_spikes"] += 1
        delay = 0.0
        if draws is not None:
            delay = self._delay(cfg, draws)
            if draws[2] < cfg.error_rate_5xx:
                resp = injected_5xx(cfg, draws[3], str(uuid.uuid4()))
                return self._finish_fixed(req, "token", resp, "injected_5xx", delay)
            if draws[4] < cfg.error_rate_429:
                resp = too_many(cfg, 1, str(uuid.uuid4()))
                return self._finish_fixed(req, "token", resp, "injected_429", delay)
        resp, outcome = token_grant(req, cfg, self.tokens)
        return self._finish_fixed(req, "token", resp, outcome, delay)
