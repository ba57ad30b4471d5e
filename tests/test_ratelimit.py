from __future__ import annotations

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
        assert delays[:2] == [0.0, 0.0]
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
