"""The one retry policy of the provider, used by every request, sync and async.

Retried: connect errors (not TLS certificate failures), timeouts and dropped connections
(``httpx.TimeoutException``, ``httpx.NetworkError``, ``httpx.RemoteProtocolError``) and answers whose
body cannot be decoded (``httpx.DecodingError``: a truncated or corrupt compressed body); 429, honouring
``Retry-After``, else HubSpot's interval header, else 10 s; 423 Locked (at least 2 s); and
500/502/503/504/521-524. Nothing else: 400, 401 (the auth flow already refreshed once), 403 and 404 are
final. A 429 of the ``DAILY`` policy is final too: waiting would not help, the budget resets at midnight.

Why retrying writes is safe: every write this provider sends *sets* a state (``statusState`` for one
subscription, or "unsubscribed from all"), it never toggles or increments. Applying the same write twice
leaves HubSpot in the same state (the second answer says ``NO_STATUS_CHANGE``). So when a connection drops
after HubSpot applied a write but before we read the answer, sending it again cannot do harm, and the
policy treats writes and reads alike.

Backoff: ``min(initial * 2**(attempt-1), max)`` scaled by a jitter in ``[0.75, 1.0]``; server-given waits
are capped at :data:`~airflow_provider_hubcomm.constants.MAX_RETRY_AFTER`. Built on tenacity (already an
Airflow dependency): it provides the sync and async loops, the stop and the sleep hooks; this module keeps
only HubSpot's decisions.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import random
import ssl
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from tenacity import AsyncRetrying, RetryCallState, Retrying, stop_after_attempt

from airflow_provider_hubcomm.constants import (
    DEFAULT_MAX_RETRIES,
    DEFAULT_RATE_LIMIT_WAIT,
    INITIAL_RETRY_DELAY,
    LOCKED_RETRY_DELAY,
    MAX_RETRY_AFTER,
    MAX_RETRY_DELAY,
    RETRYABLE_STATUS_CODES,
)

__all__ = ["RetryPolicy", "parse_retry_after"]

log = logging.getLogger(__name__)

RETRYABLE_EXCEPTIONS: tuple[type[Exception], ...] = (
    httpx.TimeoutException,
    httpx.NetworkError,
    httpx.RemoteProtocolError,
    httpx.DecodingError,
)


def _tls_verification_failure(exc: BaseException) -> bool:
    """Return whether the chain of ``exc`` holds a certificate verification failure (never transient)."""
    seen: BaseException | None = exc
    for _ in range(8):
        if seen is None:
            return False
        if isinstance(seen, ssl.SSLCertVerificationError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def parse_retry_after(value: str | None, now: Callable[[], float] = time.time) -> float | None:
    """Return the seconds a ``Retry-After`` header asks for (delta-seconds or HTTP date), or ``None``.

    :param value: the header value.
    :param now: wall clock for the HTTP-date form.
    """
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            parsed = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        seconds = parsed.timestamp() - now()
    if seconds != seconds or seconds < 0:  # NaN or in the past
        return 0.0
    return seconds


def is_daily_limit(response: httpx.Response) -> bool:
    """Return whether a 429 is HubSpot's daily limit (not worth retrying today).

    :param response: a 429 response whose body has been read.
    """
    try:
        body = response.json()
    except ValueError:
        return False
    return isinstance(body, dict) and str(body.get("policyName", "")).upper() == "DAILY"


@dataclass
class RetryPolicy:
    """Decides whether and when to retry one HTTP exchange.

    :param max_retries: retries after the first attempt (the connection's ``max_retries``).
    :param initial_delay: first backoff, seconds.
    :param max_delay: backoff cap, seconds.
    :param max_retry_after: cap on server-given waits, seconds.
    :param sleep: sync sleep (injectable so tests run fast).
    :param asleep: async sleep (injectable so tests run fast).
    :param rng: random source of the jitter.
    :param on_throttle: called with the chosen wait after a 429, so the rate limiter holds every caller back.
    """

    max_retries: int = DEFAULT_MAX_RETRIES
    initial_delay: float = INITIAL_RETRY_DELAY
    max_delay: float = MAX_RETRY_DELAY
    max_retry_after: float = MAX_RETRY_AFTER
    sleep: Callable[[float], None] = time.sleep
    asleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    rng: random.Random = field(default_factory=random.Random)
    on_throttle: Callable[[float], None] | None = None
    retries: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def retryable(self, outcome: httpx.Response | BaseException) -> bool:
        """Return whether this outcome of an attempt is worth another attempt.

        :param outcome: the response, or the exception the attempt raised.
        """
        if isinstance(outcome, BaseException):
            return isinstance(outcome, RETRYABLE_EXCEPTIONS) and not _tls_verification_failure(outcome)
        if outcome.status_code not in RETRYABLE_STATUS_CODES:
            return False
        return not (outcome.status_code == 429 and is_daily_limit(outcome))

    def backoff(self, attempt: int) -> float:
        """Exponential backoff with jitter for the given attempt (1-based).

        :param attempt: number of the attempt that just failed.
        """
        base = min(self.initial_delay * 2 ** (attempt - 1), self.max_delay)
        return base * (1 - 0.25 * self.rng.random())

    def delay(self, attempt: int, outcome: httpx.Response | BaseException) -> float:
        """Seconds to wait before the next attempt.

        :param attempt: number of the attempt that just failed (1-based).
        :param outcome: its response or exception.
        """
        if isinstance(outcome, BaseException):
            return self.backoff(attempt)
        server = parse_retry_after(outcome.headers.get("retry-after"))
        if server is not None:
            wait = min(server, self.max_retry_after)
        elif outcome.status_code == 429:
            interval = outcome.headers.get("x-hubspot-ratelimit-interval-milliseconds")
            window = float(interval) / 1000 if interval and interval.isdigit() else DEFAULT_RATE_LIMIT_WAIT
            wait = min(window, self.max_retry_after) * (1 + 0.1 * self.rng.random())
        elif outcome.status_code == 423:
            wait = max(LOCKED_RETRY_DELAY, self.backoff(attempt))
        else:
            wait = self.backoff(attempt)
        if outcome.status_code == 429 and self.on_throttle is not None:
            self.on_throttle(wait)
        return wait

    # -- tenacity glue ---------------------------------------------------------------------------------

    @staticmethod
    def _outcome(state: RetryCallState) -> httpx.Response | BaseException:
        assert state.outcome is not None
        if state.outcome.failed:
            exc = state.outcome.exception()
            assert exc is not None
            return exc
        result: httpx.Response = state.outcome.result()
        return result

    def _retry(self, state: RetryCallState) -> bool:
        return self.retryable(self._outcome(state))

    def _wait(self, state: RetryCallState) -> float:
        return self.delay(state.attempt_number, self._outcome(state))

    def _before_sleep(self, state: RetryCallState) -> None:
        with self._lock:
            self.retries += 1
        outcome = self._outcome(state)
        what = type(outcome).__name__ if isinstance(outcome, BaseException) else f"HTTP {outcome.status_code}"
        request = outcome.request if isinstance(outcome, httpx.Response) else None
        target = f" {request.method} {request.url.raw_path.decode()}" if request is not None else ""
        wait = state.next_action.sleep if state.next_action else 0.0
        log.warning(
            "HubSpot request%s got %s; retry %d/%d in %.2f s",
            target,
            what,
            state.attempt_number,
            self.max_retries,
            wait,
        )

    def _last(self, state: RetryCallState) -> Any:
        # Out of attempts: hand back the last response (the caller maps it to a typed error), or re-raise.
        assert state.outcome is not None
        return state.outcome.result()

    def _kwargs(self) -> dict[str, Any]:
        return {
            "stop": stop_after_attempt(self.max_retries + 1),
            "retry": self._retry,
            "wait": self._wait,
            "before_sleep": self._before_sleep,
            "retry_error_callback": self._last,
            "reraise": True,
        }

    def call(self, attempt: Callable[[], httpx.Response]) -> httpx.Response:
        """Run ``attempt`` until it succeeds, is not retryable, or the budget is spent.

        :param attempt: one complete HTTP exchange.
        """
        result: httpx.Response = Retrying(sleep=self.sleep, **self._kwargs())(attempt)
        return result

    async def acall(self, attempt: Callable[[], Awaitable[httpx.Response]]) -> httpx.Response:
        """Async twin of :meth:`call`.

        :param attempt: one complete HTTP exchange.
        """
        result: httpx.Response = await AsyncRetrying(sleep=self.asleep, **self._kwargs())(attempt)
        return result
