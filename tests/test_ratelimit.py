from __future__ import annotations

import heapq
import itertools
import math
import random
from collections import deque
from collections.abc import Callable

import pytest

from airflow_provider_hubcomm.ratelimit import RateLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class TestRateLimiter:
    def test_allows_budget_then_waits_for_oldest_to_leave_window(self) -> None:
        clock = Clock()
        limiter = RateLimiter(3, window=10.0, safety=0.5, clock=clock)
        assert [limiter.reserve() for _ in range(3)] == [0.0, 0.0, 0.0]
        assert limiter.reserve() == pytest.approx(10.5)
        clock.now += 4
        # the 5th waits for the 2nd (t=100) + window + safety, minus 4 s already passed
        assert limiter.reserve() == pytest.approx(6.5)

    def test_no_window_ever_holds_more_than_budget(self) -> None:
        clock = Clock()
        limiter = RateLimiter(5, window=10.0, safety=0.0, clock=clock)
        starts = []
        for _ in range(40):
            delay = limiter.reserve()
            starts.append(clock.now + delay)
            clock.now += 0.3
        for t in starts:
            assert sum(1 for s in starts if t <= s < t + 10.0) <= 5

    def test_learns_from_headers_when_not_configured(self) -> None:
        limiter = RateLimiter(None, clock=Clock())
        assert limiter.limit == 90
        limiter.observe({"x-hubspot-ratelimit-max": "190", "x-hubspot-ratelimit-interval-milliseconds": "2000"})
        assert (limiter.limit, limiter.window) == (190, 2.0)

    def test_configured_budget_caps_server_budget(self) -> None:
        limiter = RateLimiter(50, clock=Clock())
        limiter.observe({"x-hubspot-ratelimit-max": "190", "x-hubspot-ratelimit-interval-milliseconds": "2000"})
        assert (limiter.limit, limiter.window) == (50, 10.0)
        limiter.observe({"x-hubspot-ratelimit-max": "40"})
        assert limiter.limit == 40

    def test_missing_or_garbage_headers_are_ignored(self) -> None:
        limiter = RateLimiter(None, clock=Clock())
        limiter.observe({})
        limiter.observe({"x-hubspot-ratelimit-max": "lots"})
        assert limiter.limit == 90

    def test_foreign_usage_reported_by_server_is_booked(self) -> None:
        clock = Clock()
        limiter = RateLimiter(10, window=10.0, safety=0.0, clock=clock)
        limiter.reserve()
        # server says 8 of 10 used, we sent 1: another client used 7
        limiter.observe({"x-hubspot-ratelimit-max": "10", "x-hubspot-ratelimit-remaining": "2"})
        delays = [limiter.reserve() for _ in range(3)]
        # never more start at once than the server says remain (a sharing limiter also keeps a reserve and paces)
        assert sum(d == 0 for d in delays) <= 2
        assert delays[2] > 0

    def test_throttle_holds_every_caller(self) -> None:
        clock = Clock()
        limiter = RateLimiter(100, clock=clock)
        limiter.observe_throttled(4.0)
        assert limiter.reserve() == pytest.approx(4.0)
        assert limiter.reserve() == pytest.approx(4.0)

    def test_rejects_nonsense_budget(self) -> None:
        with pytest.raises(ValueError, match="at least 1"):
            RateLimiter(0)

    async def test_async_acquire_waits(self) -> None:
        limiter = RateLimiter(1, window=0.05, safety=0.0)
        await limiter.aacquire()
        await limiter.aacquire()
        assert limiter.waited_seconds > 0.02


class TestShare:
    def test_share_scales_configured_and_learned_budget(self) -> None:
        limiter = RateLimiter(190, share=0.25, clock=Clock())
        assert limiter.limit == 47
        learned = RateLimiter(None, share=0.5, clock=Clock())
        learned.observe({"x-hubspot-ratelimit-max": "100", "x-hubspot-ratelimit-interval-milliseconds": "10000"})
        assert learned.limit == 50

    @pytest.mark.parametrize("share", [0, -0.5, 1.5])
    def test_share_must_be_a_fraction(self, share: float) -> None:
        with pytest.raises(ValueError, match="share"):
            RateLimiter(100, share=share)


def test_daily_remaining_is_kept_from_the_latest_answer_that_sends_it() -> None:
    limiter = RateLimiter(100)
    assert limiter.daily_remaining is None
    limiter.observe({"x-hubspot-ratelimit-daily-remaining": "1200"})
    limiter.observe({"x-hubspot-ratelimit-max": "100"})  # an OAuth answer: no daily headers
    assert limiter.daily_remaining == 1200
    limiter.observe({"x-hubspot-ratelimit-daily-remaining": "1199"})
    assert limiter.daily_remaining == 1199


MAX190 = {"x-hubspot-ratelimit-max": "190", "x-hubspot-ratelimit-interval-milliseconds": "10000"}


def report(remaining: int) -> dict[str, str]:
    return {**MAX190, "x-hubspot-ratelimit-remaining": str(remaining)}


class TestSharingWithoutConfiguration:
    """Several limiters learn one server budget; ``Remaining`` tells each one how much the others use."""

    def test_alone_a_limiter_never_caps_itself_and_bursts_the_whole_budget(self) -> None:
        clock = Clock()
        limiter = RateLimiter(None, clock=clock)
        for i in range(1, 60):
            limiter.reserve()
            limiter.observe(report(190 - i))  # exactly our own usage: nobody else
        assert limiter.cap is None
        assert limiter.limit == 190
        assert sum(limiter.reserve() == 0 for _ in range(190 - 59)) == 190 - 59

    def test_foreign_usage_turns_on_a_paced_cap(self) -> None:
        clock = Clock()
        limiter = RateLimiter(None, clock=clock)
        for _ in range(4):
            limiter.reserve()
        limiter.observe(report(190 - 4 - 60))  # 60 requests in the window are somebody else's
        assert limiter.cap is not None
        cap = limiter.cap
        assert 2 <= cap < 190
        delays = [limiter.reserve() for _ in range(5)]
        # evenly spaced, one window per cap requests; no burst into the room the others also see
        gaps = [b - a for a, b in itertools.pairwise(delays)]
        assert all(g >= (10.0 + limiter.safety) / cap - 1e-9 for g in gaps)
        assert delays[-1] > 0

    def test_remaining_at_the_reserve_cuts_the_cap_once_per_half_window(self) -> None:
        clock = Clock()
        limiter = RateLimiter(None, clock=clock)
        limiter.reserve()
        limiter.observe(report(100))
        limiter.cap = 40.0
        limiter.observe(report(19))  # 10 % of 190 left: cut
        assert limiter.cap == pytest.approx(32.0)
        clock.now += 1
        limiter.observe(report(5))  # the same congestion, seen again: no second cut yet
        assert limiter.cap == pytest.approx(32.0)
        clock.now += 5
        limiter.observe(report(5))
        assert limiter.cap == pytest.approx(25.6)

    def test_a_429_halves_the_cap(self) -> None:
        clock = Clock()
        limiter = RateLimiter(None, clock=clock)
        limiter.reserve()
        limiter.observe(report(100))
        limiter.cap = 30.0
        limiter.observe_throttled(2.0)
        assert limiter.cap == pytest.approx(15.0)
        assert limiter.reserve() == pytest.approx(2.0)

    def test_headroom_grows_the_cap_and_the_cap_never_passes_the_budget(self) -> None:
        clock = Clock()
        limiter = RateLimiter(None, clock=clock)
        limiter.reserve()
        limiter.observe(report(100))
        start = limiter.cap
        assert start is not None
        for _ in range(20):
            limiter.observe(report(60))  # well above the reserve, below half: additive growth
        grown = limiter.cap
        assert grown is not None
        assert start < grown < start + 20
        for _ in range(5000):
            limiter.observe(report(100))  # the others' usage stays, the headroom too: growth up to the budget
        assert limiter.cap == pytest.approx(190.0)

    def test_usage_ageing_out_of_the_window_stops_the_pacing(self) -> None:
        # A sensor right after its writer: the writer's requests fill the window, then age out of it. Pacing
        # against them would slow the sensor for several windows; once they have halved, the limiter stops.
        clock = Clock()
        limiter = RateLimiter(None, clock=clock)
        limiter.reserve()
        limiter.observe(report(10))  # 179 foreign requests in the window
        assert limiter.cap is not None
        clock.now += 2.0
        limiter.observe(report(60))  # 129: still there
        assert limiter.cap is not None
        clock.now += 3.0
        limiter.observe(report(110))  # 79: less than half of what made it pace
        assert limiter.cap is None
        assert limiter.reserve() == 0.0
        clock.now += 1.0
        limiter.observe(report(150))  # still ageing out: no pacing
        assert limiter.cap is None
        limiter.observe(report(100))  # someone sends again: pace
        assert limiter.cap is not None

    def test_cap_is_dropped_after_windows_without_foreign_usage(self) -> None:
        clock = Clock()
        limiter = RateLimiter(None, clock=clock)
        limiter.reserve()
        limiter.observe(report(100))
        assert limiter.cap is not None
        clock.now += 31  # more than three windows later; only our own request is in the window now
        limiter.reserve()
        limiter.observe(report(189))
        assert limiter.cap is None

    def test_a_configured_share_is_still_honoured(self) -> None:
        limiter = RateLimiter(None, share=0.25, clock=Clock())
        limiter.observe(MAX190)
        assert limiter.limit == 47


class _Server:
    """HubSpot's rolling window as the bundled fake counts it (``testing/_auth.py``), on a simulated clock."""

    def __init__(self, budget: int, window: float) -> None:
        self.budget, self.window = budget, window
        self.admitted: deque[float] = deque()

    def answer(self, now: float) -> tuple[bool, dict[str, str]]:
        while self.admitted and self.admitted[0] <= now - self.window:
            self.admitted.popleft()
        head = {"x-hubspot-ratelimit-max": str(self.budget), "x-hubspot-ratelimit-interval-milliseconds": "10000"}
        if len(self.admitted) >= self.budget:
            retry = max(1, math.ceil(self.admitted[0] + self.window - now))
            return False, {**head, "x-hubspot-ratelimit-remaining": "0", "retry-after": str(retry)}
        self.admitted.append(now)
        return True, {**head, "x-hubspot-ratelimit-remaining": str(self.budget - len(self.admitted))}


def simulate(clients: int, threads: int, budget: int, seconds: float = 90.0) -> tuple[int, int, int]:
    """Run ``clients`` limiters (``threads`` senders each) against one budget on a simulated clock.

    Returns ``(requests, answered 429, admitted before the end)``; deterministic (seeded latencies, no sleeps).
    """
    rng = random.Random(7)
    now = [0.0]
    events: list[tuple[float, int, Callable[[], None]]] = []
    order = itertools.count()
    server = _Server(budget, 10.0)
    totals = {"requests": 0, "throttled": 0, "admitted": 0}

    def at(t: float, fn: Callable[[], None]) -> None:
        heapq.heappush(events, (t, next(order), fn))

    def sender(limiter: RateLimiter) -> Callable[[], None]:
        def loop() -> None:
            if now[0] < seconds:
                at(now[0] + limiter.reserve(), send)

        def send() -> None:
            def arrive() -> None:
                ok, headers = server.answer(now[0])
                totals["requests"] += 1
                totals["admitted"] += ok and now[0] < seconds

                def respond() -> None:
                    limiter.observe(headers)
                    if ok:
                        loop()
                        return
                    totals["throttled"] += 1
                    wait = float(headers["retry-after"])
                    limiter.observe_throttled(wait)
                    at(now[0] + wait, loop)

                at(now[0] + 0.05 + 0.05 * rng.random(), respond)

            at(now[0] + 0.01 * rng.random(), arrive)

        return loop

    for _ in range(clients):
        limiter = RateLimiter(None, clock=lambda: now[0])
        for _ in range(threads):
            at(0.5 * rng.random(), sender(limiter))
    while events:
        now[0], _, fn = heapq.heappop(events)
        fn()
    return totals["requests"], totals["throttled"], totals["admitted"]


@pytest.mark.parametrize(("clients", "threads", "budget"), [(4, 2, 190), (8, 2, 190), (16, 2, 190), (16, 4, 100)])
def test_many_limiters_share_one_budget_with_almost_no_429(clients: int, threads: int, budget: int) -> None:
    requests, throttled, admitted = simulate(clients, threads, budget)
    assert throttled <= 0.01 * requests
    # a fair part of the budget is used (startup included): at least 60 % of 9 windows
    assert admitted >= 0.6 * budget * 9


def test_one_limiter_alone_uses_the_whole_budget() -> None:
    _, throttled, admitted = simulate(1, 4, 190)
    assert throttled == 0
    assert admitted >= 0.95 * 190 * 9
