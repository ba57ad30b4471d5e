from __future__ import annotations

import random

import httpx
import pytest

from airflow_provider_hubcomm.retry import RetryPolicy, deadline_reached, parse_retry_after


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("5", 5.0),
        (" 2.5 ", 2.5),
        ("0", 0.0),
        ("-3", 0.0),
        ("Wed, 25 Nov 2026 00:00:10 GMT", 10.0),
        ("Wed, 25 Nov 2026 00:00:00 GMT", 0.0),
        ("soon", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    now = 1_795_564_800.0  # 2026-11-25T00:00:00Z
    assert parse_retry_after(value, now=lambda: now) == expected


def _response(status: int, **kwargs: object) -> httpx.Response:
    return httpx.Response(status, request=httpx.Request("POST", "http://x/y"), **kwargs)  # type: ignore[arg-type]


class TestRetryPolicyDecisions:
    @pytest.mark.parametrize("status", [423, 429, 500, 502, 503, 504, 521, 524])
    def test_retryable_statuses(self, status: int) -> None:
        assert RetryPolicy().retryable(_response(status))

    @pytest.mark.parametrize("status", [200, 207, 400, 401, 403, 404, 409, 477, 501])
    def test_final_statuses(self, status: int) -> None:
        assert not RetryPolicy().retryable(_response(status))

    def test_exceptions(self) -> None:
        request = httpx.Request("GET", "http://x")
        policy = RetryPolicy()
        assert policy.retryable(httpx.ConnectError("x", request=request))
        assert policy.retryable(httpx.ReadTimeout("x", request=request))
        assert policy.retryable(httpx.RemoteProtocolError("x", request=request))
        assert not policy.retryable(httpx.LocalProtocolError("x"))
        assert not policy.retryable(ValueError("x"))

    def test_locked_waits_at_least_two_seconds(self) -> None:
        assert RetryPolicy(rng=random.Random(1)).delay(1, _response(423)) >= 2.0

    def test_throttle_callback_gets_the_wait(self) -> None:
        seen: list[float] = []
        policy = RetryPolicy(on_throttle=seen.append)
        wait = policy.delay(1, _response(429, headers={"Retry-After": "7"}))
        assert seen == [wait] == [7.0]
        policy.delay(1, _response(503, headers={"Retry-After": "1"}))
        assert seen == [7.0]

    def test_jitter_is_seeded(self) -> None:
        a = [RetryPolicy(rng=random.Random(3)).backoff(n) for n in range(1, 6)]
        b = [RetryPolicy(rng=random.Random(3)).backoff(n) for n in range(1, 6)]
        assert a == b
        assert a[-1] <= 8.0


class TestDeadline:
    def test_daily_429_is_final_other_429_retried(self) -> None:
        policy = RetryPolicy()
        assert not policy.retryable(_response(429, json={"policyName": "DAILY"}))
        assert policy.retryable(_response(429, json={"policyName": "TEN_SECONDLY_ROLLING"}))

    def test_wait_past_the_deadline_stops_and_marks_the_outcome(self) -> None:
        now = [100.0]
        slept: list[float] = []
        policy = RetryPolicy(sleep=slept.append, wall=lambda: now[0])
        answers = iter([_response(503, headers={"Retry-After": "5"}), _response(503, headers={"Retry-After": "50"})])

        def attempt() -> httpx.Response:
            return next(answers)

        final = policy.call(attempt, deadline=130.0)
        assert final.status_code == 503
        assert slept == [5.0]  # 5 s fit before the deadline, 50 s did not
        assert deadline_reached(final)

    def test_exception_past_the_deadline_is_reraised_marked(self) -> None:
        policy = RetryPolicy(sleep=lambda _s: None, wall=lambda: 100.0)
        err = httpx.ReadTimeout("slow", request=httpx.Request("GET", "http://x"))

        def attempt() -> httpx.Response:
            raise err

        with pytest.raises(httpx.ReadTimeout) as info:
            policy.call(attempt, deadline=100.1)
        assert deadline_reached(info.value)
        assert policy.retries == 0

    def test_no_deadline_keeps_the_attempt_budget(self) -> None:
        policy = RetryPolicy(max_retries=2, sleep=lambda _s: None)
        final = policy.call(lambda: _response(500))
        assert final.status_code == 500
        assert not deadline_reached(final)
        assert policy.retries == 2
