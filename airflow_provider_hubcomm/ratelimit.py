"""Client-side rate limiter shared by every request of a hook, sync and async.

HubSpot enforces a rolling window (100 or 190 requests per 10 s for private apps). The limiter keeps the
start times of the last ``limit`` requests and lets a new one start only when the oldest of them is more
than one window (plus a small safety margin) old. Slots are *reserved* under a lock and waited for outside
it, so threads and coroutines share one budget without holding the lock while sleeping.

It adapts to HubSpot's ``X-HubSpot-RateLimit-*`` headers: without a configured budget it starts at a safe
default and adopts the server's ``Max``/``Interval``; when the server reports less ``Remaining`` than the
limiter believes (another client shares the budget) it books the difference; after a 429 every caller waits
until the server's ``Retry-After`` has passed.

Sharing without configuration: mapped tasks (partitions) each have their own limiter and learn the same budget,
so each would believe the whole budget is its own and they would all fire into the same free room. Once a
limiter sees clearly more usage in ``X-HubSpot-RateLimit-Remaining`` than its own requests explain, it also
caps its *own* requests per window (``cap``) and adapts that cap like TCP's congestion window: additive
increase while the server reports headroom beyond a reserve, multiplicative decrease (at most once per half
window) when ``Remaining`` falls to the reserve or a 429 arrives. Every sharer sees the same ``Remaining``,
so the caps converge towards equal shares whose sum stays under the budget minus the reserve. When no
foreign usage has been seen for a few windows the cap is dropped: a limiter alone uses the whole budget. It is
also dropped when the foreign usage falls to half of what made the limiter pace: that is a finished task's
requests ageing out of the window (a sensor started right after its writer), not a client sending now; pacing
starts again only if the foreign usage grows.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping

from airflow_provider_hubcomm.constants import (
    DEFAULT_REQUESTS_PER_10S,
    RATE_LIMIT_SAFETY,
    RATE_LIMIT_WINDOW,
)

#: While sharing, keep this fraction of the server's budget free (in-flight requests of every sharer land there).
SHARED_RESERVE = 0.1
#: Common cap growth per window while the server reports headroom, as a fraction of the server's budget.
SHARED_INCREASE = 0.05
#: Requests per window every sharer adds to its cap besides (the additive step that evens out the shares).
SHARED_FAIRNESS = 0.25
#: Cap factor when ``Remaining`` reaches the reserve, and after a 429.
SHARED_DECREASE = 0.8
SHARED_THROTTLED = 0.5
#: Windows without foreign usage after which a limiter stops capping itself.
SHARED_IDLE_WINDOWS = 3

__all__ = ["RateLimiter"]

H_MAX = "x-hubspot-ratelimit-max"
H_REMAINING = "x-hubspot-ratelimit-remaining"
H_INTERVAL = "x-hubspot-ratelimit-interval-milliseconds"
#: The account's requests left today; sent for private apps only (not for OAuth-authorised requests).
H_DAILY_REMAINING = "x-hubspot-ratelimit-daily-remaining"


def _int_header(headers: Mapping[str, str], name: str) -> int | None:
    value = headers.get(name)
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        return None


class RateLimiter:
    """Sliding-window limiter with reservations.

    :param requests_per_window: the account's budget; ``None`` learns it from response headers, starting at
        a budget safely under HubSpot's smallest tier.
    :param share: the fraction of that budget this limiter may use (``0.25`` when four tasks share one app's
        budget); applies to the configured and to the learned budget alike.
    :param window: window length in seconds.
    :param safety: seconds added to every window so client/server timing jitter never tips a request into a
        full server window.
    :param clock: monotonic clock (injectable for tests).
    """

    def __init__(
        self,
        requests_per_window: int | None = None,
        *,
        share: float = 1.0,
        window: float = RATE_LIMIT_WINDOW,
        safety: float = RATE_LIMIT_SAFETY,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if requests_per_window is not None and requests_per_window < 1:
            raise ValueError("requests_per_window must be at least 1")
        if not 0 < share <= 1:
            raise ValueError("share must be in (0, 1]")
        self.configured = requests_per_window
        self.share = share
        self.limit = self._portion(requests_per_window or DEFAULT_REQUESTS_PER_10S)
        self.window = window
        self.safety = safety
        self._clock = clock
        self._lock = threading.Lock()
        self._slots: deque[float] = deque(maxlen=self.limit)
        self._not_before = 0.0
        #: Own request starts of the last window (the sharing cap counts them).
        self._own: deque[float] = deque()
        #: Own requests per window while another client shares the budget; ``None``: alone.
        self.cap: float | None = None
        self._foreign_seen = -math.inf
        self._last_cut = -math.inf
        #: Foreign usage when the cap was engaged, and the level it must pass to engage again after a decay.
        self._engaged_foreign = 0
        self._floor = 0
        self.waited_seconds = 0.0
        #: ``X-HubSpot-RateLimit-Daily-Remaining`` of the latest answer that carried it (``None``: never seen).
        self.daily_remaining: int | None = None

    def __repr__(self) -> str:
        return (
            f"RateLimiter(limit={self.limit}, window={self.window}, configured={self.configured}, share={self.share})"
        )

    def _portion(self, budget: int) -> int:
        return max(1, int(budget * self.share))

    def reserve(self) -> float:
        """Book the next start slot and return how many seconds the caller must wait for it."""
        with self._lock:
            now = self._clock()
            start = max(now, self._not_before)
            if len(self._slots) >= self.limit:
                start = max(start, self._slots[0] + self.window + self.safety)
            start = self._capped(start, now)
            self._slots.append(start)
            self._own.append(start)
            delay = start - now
            self.waited_seconds += delay
            return delay

    def _capped(self, start: float, now: float) -> float:
        """Push ``start`` back so this limiter's own starts in any window stay within :attr:`cap` (lock held)."""
        span = self.window + self.safety
        while self._own and self._own[0] <= now - span:
            self._own.popleft()
        if self.cap is None:
            return start
        cap = max(1, int(self.cap))
        if len(self._own) >= cap:
            start = max(start, self._own[len(self._own) - cap] + span)
        if self._own:  # evenly spaced: sharers' bursts at a window's turn would meet in the server's window
            start = max(start, self._own[-1] + span / self.cap)
        return start

    def acquire(self, sleep: Callable[[float], None] = time.sleep) -> None:
        """Block until this caller may send a request.

        :param sleep: the sleep function (injectable for tests).
        """
        delay = self.reserve()
        if delay > 0:
            sleep(delay)

    async def aacquire(self) -> None:
        """Wait (without blocking the event loop) until this caller may send a request."""
        delay = self.reserve()
        if delay > 0:
            await asyncio.sleep(delay)

    def _resize(self, limit: int) -> None:
        if limit != self.limit:
            self.limit = limit
            self._slots = deque(self._slots, maxlen=limit)

    def observe(self, headers: Mapping[str, str]) -> None:
        """Adapt to HubSpot's rate-limit headers of one response (all of them optional).

        :param headers: the response headers (case-insensitive mapping).
        """
        daily = _int_header(headers, H_DAILY_REMAINING)
        if daily is not None:
            self.daily_remaining = daily
        server_max = _int_header(headers, H_MAX)
        interval = _int_header(headers, H_INTERVAL)
        remaining = _int_header(headers, H_REMAINING)
        if server_max is None or server_max < 1:
            return
        with self._lock:
            if interval and interval > 0 and self.configured is None:
                self.window = interval / 1000.0
            wanted = server_max if self.configured is None else min(self.configured, server_max)
            self._resize(self._portion(wanted))
            if remaining is None:
                return
            now = self._clock()
            ours = sum(1 for t in self._slots if now - self.window < t <= now)
            foreign = (server_max - remaining) - ours
            # Only a clear excess means another client shares the budget; timing noise is +-1.
            if foreign > 1:
                for _ in range(min(foreign, self.limit)):
                    self._slots.append(now)
            self._share(server_max, remaining, now)

    def _own_started(self, now: float) -> int:
        """Count this limiter's starts of the last window up to ``now`` (lock held; amortised O(1))."""
        own = self._own
        while own and own[0] <= now - self.window - self.safety:
            own.popleft()
        ahead = 0
        for t in reversed(own):  # reserved starts still to come sit at the end
            if t <= now:
                break
            ahead += 1
        return len(own) - ahead

    def _share(self, server_max: int, remaining: int, now: float) -> None:
        """Adapt the sharing cap to one ``Remaining`` report (lock held); see the module's docstring."""
        own = self._own_started(now)
        foreign = (server_max - remaining) - own
        used = max(1, server_max - remaining)
        reserve = max(2, math.ceil(SHARED_RESERVE * server_max))
        clear = max(2, server_max // 50)
        if self.cap is None:
            self._floor = min(self._floor, max(0, foreign) + clear)
        elif 2 * foreign < self._engaged_foreign:
            # Foreign usage halved since it made us pace: a finished task's requests ageing out of the window (a
            # sensor right after its writer), not a client sending now. Stop pacing; pace again if it grows.
            self.cap = None
            self._floor = max(0, foreign) + clear
            return
        if foreign > clear and foreign > self._floor:
            if self.cap is None:
                self.cap = max(2.0, float(own))
                self._engaged_foreign = foreign
            self._foreign_seen = now
        if self.cap is None:
            return
        if now - self._foreign_seen > SHARED_IDLE_WINDOWS * self.window:
            self.cap = None
        elif remaining <= reserve:
            self._cut(SHARED_DECREASE, now)
        else:
            # a common growth of SHARED_INCREASE of the budget per window, split by each sharer's part of the
            # usage, plus a fixed step per window that evens the shares out (AIMD's fairness)
            growth = SHARED_FAIRNESS + SHARED_INCREASE * server_max * own / used
            if 4 * remaining > server_max:
                # far from the limit: up to 2.5 times per window, tapering off as the free part shrinks to a quarter
                growth += 1.5 * self.cap * min(1.0, (remaining - server_max / 4) / (0.75 * server_max))
            self.cap = min(float(self.limit), self.cap + growth / max(1.0, self.cap))

    def observe_throttled(self, wait: float) -> None:
        """Record a 429: nobody starts a request before ``wait`` seconds from now.

        :param wait: seconds the server asked for (``Retry-After``) or the policy chose.
        """
        with self._lock:
            now = self._clock()
            self._not_before = max(self._not_before, now + wait)
            if self.cap is not None:
                self._cut(SHARED_THROTTLED, now)

    def _cut(self, factor: float, now: float) -> None:
        """Multiply the sharing cap by ``factor``, at most once per half window (lock held)."""
        if self.cap is not None and now - self._last_cut >= self.window / 2:
            self.cap = max(1.0, self.cap * factor)
            self._last_cut = now
