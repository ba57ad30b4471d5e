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

Deadline: a call may carry a run deadline (a ``time.time()`` epoch). A retry whose wait (backoff or
``Retry-After``) would end past it is not made: the last outcome is returned or raised as without retries,
marked so the caller can say the deadline was reached (:func:`deadline_reached`).

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
from airflow_provider_hubcomm.exceptions import is_daily_limit

__all__ = ["RetryPolicy", "deadline_reached", "parse_retry_after"]

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


_DEADLINE_MARK = "hubcomm_deadline_reached"


def _mark_deadline(outcome: httpx.Response | BaseException) -> None:
    if isinstance(outcome, httpx.Response):
        outcome.extensions[_DEADLINE_MARK] = True
    else:
        setattr(outcome, _DEADLINE_MARK, True)


def deadline_reached(outcome: httpx.Response | BaseException) -> bool:
    """Return whether retries of this final outcome were stopped by the call's deadline.

    :param outcome: the response returned, or the exception raised, by :meth:`RetryPolicy.call`.
    """
    if isinstance(outcome, httpx.Response):
        return bool(outcome.extensions.get(_DEADLINE_MARK))
    return bool(getattr(outcome, _DEADLINE_MARK, False))


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
    :param wall: wall clock the call deadlines are compared with (``time.time``).
    """

    max_retries: int = DEFAULT_MAX_RETRIES
    initial_delay: float = INITIAL_RETRY_DELAY
    max_delay: float = MAX_RETRY_DELAY
    max_retry_after: float = MAX_RETRY_AFTER
    sleep: Callable[[float], None] = time.sleep
    asleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    rng: random.Random = field(default_factory=random.Random)
    on_throttle: Callable[[float], None] | None = None
    wall: Callable[[], float] = time.time
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
        return not is_daily_limit(outcome)

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

    def _before_sleep(self, state: RetryCallState) -> None:
        with self._lock:
            self.retries += 1
        outcome = self._outcome(state)
        what = _describe(outcome)
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

    def _kwargs(self, deadline: float | None) -> dict[str, Any]:
        waits: dict[int, float] = {}

        def retry(state: RetryCallState) -> bool:
            outcome = self._outcome(state)
            if not self.retryable(outcome):
                return False
            wait = self.delay(state.attempt_number, outcome)
            if deadline is not None and self.wall() + wait >= deadline:
                _mark_deadline(outcome)
                log.warning(
                    "HubSpot request got %s; not retrying: the wait of %.2f s would pass the run's deadline",
                    _describe(outcome),
                    wait,
                )
                return False
            waits[state.attempt_number] = wait
            return True

        return {
            "stop": stop_after_attempt(self.max_retries + 1),
            "retry": retry,
            "wait": lambda state: waits.pop(state.attempt_number, 0.0),
            "before_sleep": self._before_sleep,
            "retry_error_callback": self._last,
            "reraise": True,
        }

    def call(self, attempt: Callable[[], httpx.Response], *, deadline: float | None = None) -> httpx.Response:
        """Run ``attempt`` until it succeeds, is not retryable, the budget is spent or the deadline is near.

        :param attempt: one complete HTTP exchange.
        :param deadline: ``time.time()`` after which no retry may still be waiting or running.
        """
        # The first attempt runs outside tenacity (~50 µs of CPU a request: its loop state and callbacks): an
        # answer that needs no retry, nearly all of them, is returned at once. Any other outcome is replayed as
        # tenacity's attempt 1 (not sent again), so retries, waits, logs and the deadline behave as always.
        try:
            first: httpx.Response | Exception = attempt()
        except Exception as exc:
            first = exc
        if isinstance(first, httpx.Response) and not self.retryable(first):
            return first
        replay: list[httpx.Response | Exception] = [first]

        def again() -> httpx.Response:
            if not replay:
                return attempt()
            outcome = replay.pop()
            if isinstance(outcome, Exception):
                raise outcome
            return outcome

        result: httpx.Response = Retrying(sleep=self.sleep, **self._kwargs(deadline))(again)
        return result

    async def acall(
        self, attempt: Callable[[], Awaitable[httpx.Response]], *, deadline: float | None = None
    ) -> httpx.Response:
        """Async twin of :meth:`call`.

        :param attempt: one complete HTTP exchange.
        :param deadline: ``time.time()`` after which no retry may still be waiting or running.
        """
        result: httpx.Response = await AsyncRetrying(sleep=self.asleep, **self._kwargs(deadline))(attempt)
        return result


def _describe(outcome: httpx.Response | BaseException) -> str:
    return type(outcome).__name__ if isinstance(outcome, BaseException) else f"HTTP {outcome.status_code}"
