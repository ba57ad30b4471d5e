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


class TestFirstAttempt:
    """The first attempt runs outside tenacity; any outcome but a final answer is replayed, never sent again."""

    def test_a_final_answer_is_returned_after_one_attempt(self) -> None:
        calls: list[int] = []
        policy = RetryPolicy(sleep=lambda _s: pytest.fail("no wait expected"))
        final = policy.call(lambda: calls.append(1) or _response(400))
        assert final.status_code == 400
        assert (len(calls), policy.retries) == (1, 0)

    def test_a_retryable_first_answer_is_counted_once_and_retried(self, caplog: pytest.LogCaptureFixture) -> None:
        answers = iter([_response(503, headers={"Retry-After": "1"}), _response(200)])
        calls: list[int] = []
        slept: list[float] = []
        policy = RetryPolicy(max_retries=3, sleep=slept.append)

        def attempt() -> httpx.Response:
            calls.append(1)
            return next(answers)

        final = policy.call(attempt)
        assert final.status_code == 200
        assert (len(calls), policy.retries, slept) == (2, 1, [1.0])
        assert "got HTTP 503; retry 1/3 in 1.00 s" in caplog.text

    def test_a_first_exception_is_retried_then_reraised_after_the_budget(self) -> None:
        calls: list[int] = []
        policy = RetryPolicy(max_retries=2, sleep=lambda _s: None)

        def attempt() -> httpx.Response:
            calls.append(1)
            raise httpx.ConnectError("refused", request=httpx.Request("GET", "http://x"))

        with pytest.raises(httpx.ConnectError):
            policy.call(attempt)
        assert (len(calls), policy.retries) == (3, 2)  # the first attempt and two retries, none sent twice

    def test_a_first_error_that_is_not_retryable_is_raised_at_once(self) -> None:
        calls: list[int] = []
        policy = RetryPolicy(sleep=lambda _s: pytest.fail("no wait expected"))

        def attempt() -> httpx.Response:
            calls.append(1)
            raise ValueError("bad body")

        with pytest.raises(ValueError, match="bad body"):
            policy.call(attempt)
        assert (len(calls), policy.retries) == (1, 0)
