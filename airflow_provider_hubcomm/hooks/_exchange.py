"""One HTTP exchange of the hook, sync and async: rate limiter, total deadlines, retries, error mapping, redaction.

:class:`HubCommExchange` is a base of :class:`~airflow_provider_hubcomm.hooks.hubcomm.HubCommHook`; the hook
supplies the connection config, the clients, the limiter, the retry policy and the redactor.
"""

from __future__ import annotations

import functools
import json
import threading
import time
from collections import Counter
from typing import TYPE_CHECKING, Any

import httpx
import pydantic_core
from pydantic import ValidationError

from airflow_provider_hubcomm.exceptions import (
    DEADLINE_NOTE,
    HubCommConnectionError,
    HubCommResponseValidationError,
    HubCommUnconfirmedError,
    make_api_error,
)
from airflow_provider_hubcomm.hooks._deadline import (
    AttemptDeadlineExceeded,
    async_attempt_deadline,
    attempt_deadline,
    remaining,
)
from airflow_provider_hubcomm.models import ActionResponse
from airflow_provider_hubcomm.retry import deadline_reached

if TYPE_CHECKING:
    from airflow_provider_hubcomm.hooks._call import M, _Call
    from airflow_provider_hubcomm.hooks._connection import ConnectionConfig
    from airflow_provider_hubcomm.ratelimit import RateLimiter
    from airflow_provider_hubcomm.redact import Redactor
    from airflow_provider_hubcomm.retry import RetryPolicy

__all__ = ["HubCommExchange"]

#: Answers of a write that are not final yet: returned as they are (the caller reports them unconfirmed).
_NOT_FINAL = frozenset({"PENDING", "PROCESSING"})


@functools.lru_cache(maxsize=1024)
def _absolute(base: httpx.URL, url: str) -> httpx.URL:
    """Return ``url`` joined to a client's ``base_url`` exactly as httpx joins it, parsed once per path.

    httpx parses and joins a relative URL again on every request (~150 µs of CPU); the batch engine sends
    thousands of requests to the same few paths.

    :param base: the client's ``base_url`` (httpx keeps it with a trailing slash).
    :param url: a path relative to it, or an absolute URL.
    """
    merged = httpx.URL(url)
    if not merged.is_relative_url:
        return merged
    return base.copy_with(raw_path=base.raw_path + merged.raw_path.lstrip(b"/"))


def parse_answer(model: type[M], content: bytes) -> M:
    """Parse an answer's JSON into ``model``: pydantic's own JSON parser first, then the model's validation.

    ``pydantic_core.from_json`` (jiter, the parser ``model_validate_json`` uses: same JSON rules) followed by
    ``model_validate`` takes ~110 µs for a 100-row batch write's 34 KB answer against ~130 µs for
    ``model_validate_json`` (``benchmarks/http_cpu.py``). The response models are lax and hold only
    ``str``/``int``/``dict``/``list`` fields, which validate alike from JSON and from Python. A body that is not
    JSON takes the old path, so it raises the same :class:`pydantic.ValidationError` as before.

    :param model: the response model.
    :param content: the answer's body.
    """
    try:
        data = pydantic_core.from_json(content)
    except ValueError:
        return model.model_validate_json(content)
    return model.model_validate(data)


def _request_kwargs(call: _Call[Any]) -> dict[str, Any]:
    if call.content is not None:
        return {"params": call.params, "content": call.content, "headers": {"Content-Type": "application/json"}}
    return {"params": call.params, "json": call.json}


class HubCommExchange:
    """Send requests and turn answers into models or typed errors; base class of the hook."""

    redactor: Redactor
    stats: Counter[str]
    _stats_lock: threading.Lock
    #: ``time.time()`` epoch past which no attempt, retry or wait runs (``None``: no limit).
    deadline: float | None
    _connect_timeout: float
    #: Turns a 2xx answer's body into its model (a class attribute, so benchmarks can compare parsers).
    _parse = staticmethod(parse_answer)

    if TYPE_CHECKING:

        @property
        def config(self) -> ConnectionConfig: ...

        @property
        def client(self) -> httpx.Client: ...

        @property
        def async_client(self) -> httpx.AsyncClient: ...

        @property
        def rate_limiter(self) -> RateLimiter: ...

        @property
        def retry_policy(self) -> RetryPolicy: ...

        async def _aensure_config(self) -> None: ...

    def redact(self, text: str) -> str:
        """Return ``text`` (from a server: an error message, a body) without any secret this hook knows.

        :param text: the text.
        """
        return self.redactor.redact(text)

    def _timeout(self, seconds: float) -> httpx.Timeout:
        return httpx.Timeout(seconds, connect=min(self._connect_timeout, seconds))

    # -- one exchange, sync and async --------------------------------------------------------------------

    def _count(self, key: str, n: int = 1) -> None:
        with self._stats_lock:
            self.stats[key] += n

    def _observe(self, response: httpx.Response) -> httpx.Response:
        self._count("requests")
        self._count(f"http_{response.status_code}")
        self.rate_limiter.observe(response.headers)
        return response

    def _redacted_json(self, content: bytes) -> Any:
        """Return the answer's JSON with secrets removed when it may hold one, else ``None`` (the fast path)."""
        if not self.redactor.may_contain_secret(content):
            return None
        try:
            return self.redactor.redact_value(json.loads(content))
        except ValueError:
            return None

    def _finish(self, call: _Call[M], response: httpx.Response) -> M:
        note = DEADLINE_NOTE if deadline_reached(response) else None
        if not response.is_success:
            raise make_api_error(response, redact=self.redact, note=note)
        try:
            cleaned = self._redacted_json(response.content)
            model = self._parse(call.model, response.content) if cleaned is None else call.model.model_validate(cleaned)
        except ValidationError as err:
            raise make_api_error(response, HubCommResponseValidationError, redact=self.redact) from err
        if isinstance(model, ActionResponse):
            model._correlation_id = response.headers.get("x-hubspot-correlation-id")
            if call.confirm and not model.results and str(model.status or "").upper() not in _NOT_FINAL:
                raise self._unconfirmed(response)
        return model

    def _unconfirmed(self, response: httpx.Response) -> HubCommUnconfirmedError:
        text = self.redact(response.content.decode("utf-8", errors="replace"))
        shown = text if len(text) <= 200 else f"{text[:200]}… ({len(text)} characters)"
        error = make_api_error(
            response,
            HubCommUnconfirmedError,
            redact=self.redact,
            note=f"HubSpot answered {response.status_code} but confirmed no write: the answer was {shown!r}",
        )
        assert isinstance(error, HubCommUnconfirmedError)
        return error

    def _no_answer(self, call: _Call[Any], err: Exception) -> HubCommConnectionError:
        self._count("no_answer")
        url = call.path if call.path.startswith(("http://", "https://")) else f"{self.config.base_url}{call.path}"
        cut = deadline_reached(err) or (self.deadline is not None and time.time() >= self.deadline)
        note = f" ({DEADLINE_NOTE})" if cut else ""
        return HubCommConnectionError(
            self.redact(
                f"HubSpot {call.method} {url} gave no usable answer (retry budget {self.retry_policy.max_retries}): "
                f"{type(err).__name__}: {err}{note}"
            ),
            method=call.method,
            url=url,
            deadline_reached=cut,
        )

    def _budget(self, what: str) -> float:
        """Seconds the next attempt may take: the timeout, the run's deadline and an enclosing attempt bound it."""
        budget = self.config.timeout
        if self.deadline is not None:
            budget = min(budget, self.deadline - time.time())
        outer = remaining()
        if outer is not None:
            budget = min(budget, outer)
        if budget <= 0:
            raise AttemptDeadlineExceeded(f"{what}: the deadline was reached before the attempt")
        return budget

    def _slot_wait(self, what: str) -> float:
        """Book a rate-limiter slot; refuse when waiting for it would pass the run's deadline."""
        wait = self.rate_limiter.reserve()
        if self.deadline is not None and wait > 0 and time.time() + wait >= self.deadline:
            raise AttemptDeadlineExceeded(f"{what}: waiting {wait:.1f} s for the rate limit would pass the deadline")
        return wait

    def _retry_deadline(self) -> float | None:
        """Return the epoch no retry of this exchange may pass: the run's deadline or the enclosing attempt's end."""
        outer = remaining()
        bounds = [b for b in (self.deadline, None if outer is None else time.time() + outer) if b is not None]
        return min(bounds) if bounds else None

    def send(self, method: str, url: str, *, metered: bool = True, **kwargs: Any) -> httpx.Response:
        """Send one request through the hook's limiter, deadlines and retry policy; return the final answer.

        :param method: HTTP method.
        :param url: path (relative to the base URL) or absolute URL.
        :param metered: count it and hold it to the API's rate limit (``False`` for the OAuth token endpoint,
            which has no such budget and is counted as ``token_requests``).
        :param kwargs: passed to :meth:`httpx.Client.request` (``params``, ``json``, ``content``, ``data``, ``auth``).
        :raises httpx.HTTPError: no usable answer after the retries.
        """
        what = f"{method} {url}"

        def attempt() -> httpx.Response:
            wait = self._slot_wait(what) if metered else 0.0
            if wait > 0:
                self.retry_policy.sleep(wait)
            with attempt_deadline(self._budget(what)) as budget:
                client = self.client
                target = _absolute(client.base_url, url)
                response = client.request(method, target, timeout=self._timeout(budget), **kwargs)
            return self._observe(response) if metered else response

        return self.retry_policy.call(attempt, deadline=self._retry_deadline())

    async def asend(self, method: str, url: str, *, metered: bool = True, **kwargs: Any) -> httpx.Response:
        """Async twin of :meth:`send`.

        :param method: HTTP method.
        :param url: path or absolute URL.
        :param metered: see :meth:`send`.
        :param kwargs: passed to :meth:`httpx.AsyncClient.request`.
        """
        await self._aensure_config()
        what = f"{method} {url}"

        async def attempt() -> httpx.Response:
            wait = self._slot_wait(what) if metered else 0.0
            if wait > 0:
                await self.retry_policy.asleep(wait)
            async with async_attempt_deadline(self._budget(what), what) as budget:
                client = self.async_client
                target = _absolute(client.base_url, url)
                response = await client.request(method, target, timeout=self._timeout(budget), **kwargs)
            return self._observe(response) if metered else response

        return await self.retry_policy.acall(attempt, deadline=self._retry_deadline())

    def _execute(self, call: _Call[M]) -> M:
        try:
            response = self.send(call.method, call.path, **_request_kwargs(call))
        except httpx.HTTPError as err:
            raise self._no_answer(call, err) from err
        return self._finish(call, response)

    async def _aexecute(self, call: _Call[M]) -> M:
        try:
            response = await self.asend(call.method, call.path, **_request_kwargs(call))
        except httpx.HTTPError as err:
            raise self._no_answer(call, err) from err
        return self._finish(call, response)
