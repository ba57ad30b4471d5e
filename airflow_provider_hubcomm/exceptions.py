"""Typed errors of the provider, and the one function that maps an HTTP answer to them.

::

    HubCommError (AirflowException)
    ├── HubCommConfigError              connection lacks a field / has a bad value
    ├── HubCommValidationError          input rows refused before anything was sent
    ├── HubCommConnectionError          no answer: connect error, timeout, dropped connection
    ├── HubCommResponseValidationError  an answer that is not the JSON HubSpot promises
    ├── HubCommThresholdError           a batch run failed more rows than allowed
    ├── BatchAbortedError               a fatal error stopped a batch run midway (summary attached)
    └── HubCommAPIError                 HubSpot answered with an error status
        ├── HubCommAuthError            401 / 403 (``missing_scopes``), and OAuth token-endpoint failures
        ├── HubCommNotFoundError        404
        ├── HubCommRequestRejectedError other 4xx (400 VALIDATION_ERROR, 409, 423 …)
        ├── HubCommRateLimitError       429 (``is_daily``: the DAILY policy, final until midnight)
        ├── HubCommServerError          5xx
        └── HubCommResponseValidationError  a 2xx answer that is not the JSON HubSpot promises
            └── HubCommUnconfirmedError     a 2xx answer to a single write that confirms nothing

Messages carry the HTTP status, HubSpot's ``category``/``subCategory``, ``message`` and ``correlationId``;
they never carry a token: request headers and form bodies are not part of any message, and server text
(which may echo a token) goes through the hook's redactor before an error is built (``make_api_error``'s
``redact``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import AirflowException

if TYPE_CHECKING:
    import httpx

    from airflow_provider_hubcomm.contracts import BatchSummary

Redact = Callable[[str], str]

__all__ = [
    "BatchAbortedError",
    "HubCommAPIError",
    "HubCommAuthError",
    "HubCommConfigError",
    "HubCommConnectionError",
    "HubCommError",
    "HubCommNotFoundError",
    "HubCommRateLimitError",
    "HubCommRequestRejectedError",
    "HubCommResponseValidationError",
    "HubCommServerError",
    "HubCommThresholdError",
    "HubCommUnconfirmedError",
    "HubCommValidationError",
    "is_daily_limit",
    "is_missing_scopes",
    "raise_for_response",
]

_BODY_EXCERPT = 300
#: Longest URL or HubSpot message quoted in an error message (a hostile 20 kB subscriber id stays readable).
_TEXT_MAX = 500


def is_daily_limit(outcome: httpx.Response | BaseException) -> bool:
    """Return whether ``outcome`` is HubSpot's ``DAILY`` 429: final until the account's midnight reset.

    The one rule for it: the retry policy never retries such an answer
    (:meth:`~airflow_provider_hubcomm.retry.RetryPolicy.retryable`), a batch run aborts on the error
    (:func:`~airflow_provider_hubcomm.batch.reasons.classify_error`), and :attr:`HubCommRateLimitError.is_daily`
    reads it.

    :param outcome: an answer whose body has been read, or an exception.
    """
    if isinstance(outcome, BaseException):
        body = outcome.body if isinstance(outcome, HubCommRateLimitError) else None
    else:
        body = parse_error_body(outcome)[0] if outcome.status_code == 429 else None
    return body is not None and str(body.get("policyName") or "").upper() == "DAILY"


def is_missing_scopes(err: BaseException) -> bool:
    """Return whether ``err`` is a ``403 MISSING_SCOPES`` (the account lacks a scope, e.g. the batch endpoints').

    The one rule for it: a batch run falls back to single calls, a read-back to single reads.

    :param err: an exception raised by the hook.
    """
    return isinstance(err, HubCommAuthError) and err.missing_scopes


def _clip(text: str) -> str:
    return text if len(text) <= _TEXT_MAX else f"{text[:_TEXT_MAX]}… ({len(text)} characters)"


class HubCommError(AirflowException):
    """Base class of every error raised by the provider."""


class HubCommConfigError(HubCommError):
    """The connection (or a hook argument) lacks a required field or holds a bad value."""


class HubCommStateInUseError(HubCommError):
    """Another run holds the sync state's writer lease: two writers at once would corrupt the state."""


class HubCommValidationError(HubCommError, ValueError):
    """Input refused before any request was sent; the message names row, field, value and allowed values.

    :param message: the human-readable summary.
    :param errors: structured row errors (dicts with ``row``, ``field``, ``value``, ``allowed``, ``message``).
    """

    def __init__(self, message: str, errors: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.errors = errors or []


#: The note on an error the hook gave up on because the run's deadline left no time for another attempt.
DEADLINE_NOTE = "the run's deadline was reached: no more retries"


class HubCommConnectionError(HubCommError):
    """The request got no answer (connect error, timeout, connection dropped) after all retries.

    :param message: what happened.
    :param method: HTTP method of the request.
    :param url: URL of the request (no credentials are ever part of it).
    :param deadline_reached: the hook stopped because the run's deadline left no time for another attempt.
    """

    def __init__(
        self, message: str, *, method: str | None = None, url: str | None = None, deadline_reached: bool = False
    ) -> None:
        super().__init__(message)
        self.method = method
        self.url = url
        self.deadline_reached = deadline_reached


class HubCommThresholdError(HubCommError):
    """A batch run failed more rows than ``max_failed_rows``/``max_failed_ratio`` allow.

    :param message: the reason, followed by the run summary.
    :param summary: the JSON-able run summary.
    """

    def __init__(self, message: str, summary: BatchSummary) -> None:
        super().__init__(message)
        self.summary = summary


class BatchAbortedError(HubCommError):
    """A fatal error (401/403, daily rate limit, unexpected exception) stopped a batch run midway.

    :param message: the reason, followed by the run summary.
    :param summary: the JSON-able run summary (the rows not sent are counted failed).
    """

    def __init__(self, message: str, summary: BatchSummary) -> None:
        super().__init__(message)
        self.summary = summary


class HubCommAPIError(HubCommError):
    """HubSpot answered with an error status.

    :param status_code: HTTP status.
    :param body: parsed JSON body (or ``None`` when the body was not JSON).
    :param method: HTTP method of the request.
    :param url: URL of the request.
    :param text: raw body excerpt, used when the body was not JSON.
    :param correlation_id: correlation id from the headers, when the body has none.
    :param note: appended to the message (e.g. "the run's deadline was reached, no more retries").
    """

    def __init__(
        self,
        status_code: int,
        body: dict[str, Any] | None,
        *,
        method: str | None = None,
        url: str | None = None,
        text: str | None = None,
        correlation_id: str | None = None,
        note: str | None = None,
    ) -> None:
        self.status_code = status_code
        self.body = body or {}
        self.method = method
        self.url = url
        self.category: str | None = self.body.get("category") or self.body.get("errorType")
        sub = self.body.get("subCategory")
        self.sub_category: str | None = None if sub is None else str(sub)
        self.hubspot_message: str | None = self.body.get("message") or self.body.get("error_description")
        self.correlation_id: str | None = self.body.get("correlationId") or correlation_id
        self.policy_name: str | None = self.body.get("policyName")
        self.text = text
        self.note = note
        super().__init__(self._render() + (f" ({note})" if note else ""))

    def _render(self) -> str:
        parts = [f"correlationId={self.correlation_id or 'n/a'}", f"HTTP {self.status_code}"]
        if self.category:
            parts.append(f"category={self.category}")
        if self.sub_category:
            parts.append(f"subCategory={self.sub_category}")
        if self.policy_name:
            parts.append(f"policyName={self.policy_name}")
        if self.method and self.url:
            parts.append(f"request={self.method} {_clip(self.url)}")
        head = " ".join(parts)
        if self.hubspot_message:
            return f"{head}: {_clip(str(self.hubspot_message))}"
        if self.text:
            return f"{head}: non-JSON body: {self.text[:_BODY_EXCERPT]!r}"
        return head

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(status_code={self.status_code}, category={self.category!r}, "
            f"correlation_id={self.correlation_id!r}, message={self.hubspot_message!r})"
        )

    @property
    def deadline_reached(self) -> bool:
        """Whether the hook did not retry this answer because the run's deadline left no time for it."""
        return self.note == DEADLINE_NOTE

    def __reduce__(self) -> tuple[Any, ...]:
        return (
            _rebuild_api_error,
            (type(self), self.status_code, self.body, self.method, self.url, self.text, self.correlation_id, self.note),
        )


def _rebuild_api_error(
    cls: type[HubCommAPIError],
    status_code: int,
    body: dict[str, Any] | None,
    method: str | None,
    url: str | None,
    text: str | None,
    correlation_id: str | None,
    note: str | None = None,
) -> HubCommAPIError:
    return cls(status_code, body, method=method, url=url, text=text, correlation_id=correlation_id, note=note)


class HubCommAuthError(HubCommAPIError):
    """401 or 403: the token is invalid, expired, revoked or lacks scopes (e.g. batch scopes)."""

    @property
    def missing_scopes(self) -> bool:
        """Whether this is a ``403`` with category ``MISSING_SCOPES`` (the app lacks a scope, e.g. batch)."""
        return self.status_code == 403 and str(self.category or "").upper() == "MISSING_SCOPES"


class HubCommNotFoundError(HubCommAPIError):
    """404: the subscriber, subscription or endpoint does not exist."""


class HubCommRequestRejectedError(HubCommAPIError):
    """Another 4xx: HubSpot refused the request (``VALIDATION_ERROR`` and friends). Not retried."""


class HubCommRateLimitError(HubCommAPIError):
    """429: the rate budget is exhausted (``policyName`` tells which: ``TEN_SECONDLY_ROLLING``, ``DAILY``)."""

    @property
    def is_daily(self) -> bool:
        """Whether the account's DAILY budget is spent: final until HubSpot's midnight reset, never retried."""
        return is_daily_limit(self)


class HubCommServerError(HubCommAPIError):
    """5xx: HubSpot failed; retried by the policy before this is raised."""


class HubCommResponseValidationError(HubCommAPIError):
    """A 2xx answer whose body is not the JSON HubSpot documents (not JSON, truncated, wrong shape)."""


class HubCommUnconfirmedError(HubCommResponseValidationError):
    """A 2xx answer to a single write whose body confirms nothing (``{}``, no ``results``): not a success."""


def _error_class(status_code: int) -> type[HubCommAPIError]:
    if status_code in (401, 403):
        return HubCommAuthError
    if status_code == 404:
        return HubCommNotFoundError
    if status_code == 429:
        return HubCommRateLimitError
    if status_code >= 500:
        return HubCommServerError
    return HubCommRequestRejectedError


def parse_error_body(response: httpx.Response) -> tuple[dict[str, Any] | None, str | None]:
    """Return ``(json_body, None)`` for a JSON object body, else ``(None, text_excerpt)``.

    :param response: a response whose body has been read.
    """
    try:
        body = json.loads(response.content) if response.content else None
    except ValueError:
        return None, response.content[:_BODY_EXCERPT].decode("utf-8", errors="replace")
    if isinstance(body, dict):
        return body, None
    return None, None if body is None else json.dumps(body)[:_BODY_EXCERPT]


def make_api_error(
    response: httpx.Response,
    cls: type[HubCommAPIError] | None = None,
    *,
    redact: Redact | None = None,
    note: str | None = None,
) -> HubCommAPIError:
    """Build the typed error for an error response (the body must have been read).

    :param response: the HTTP answer.
    :param cls: force this class instead of mapping from the status code.
    :param redact: applied to every string taken from the answer (the hook passes its redactor, so a
        server echoing a token leaves nothing in the message, ``body``, ``text``, ``repr`` or pickle).
    :param note: appended to the message.
    """
    body, text = parse_error_body(response)
    request = response.request
    correlation = response.headers.get("x-hubspot-correlation-id") or response.headers.get("x-request-id")
    url = str(request.url.copy_with(query=None))
    if redact is not None:
        body = _redact_value(body, redact)
        text = None if text is None else redact(text)
        correlation = None if correlation is None else redact(correlation)
        url = redact(url)
    return (cls or _error_class(response.status_code))(
        response.status_code,
        body,
        method=request.method,
        url=url,
        text=text,
        correlation_id=correlation,
        note=note,
    )


def _redact_value(value: Any, redact: Redact) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {redact(str(k)): _redact_value(v, redact) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact_value(v, redact) for v in value]
    return value


def raise_for_response(response: httpx.Response) -> None:
    """Raise the typed :class:`HubCommAPIError` subclass for an error answer; return for 2xx.

    :param response: the HTTP answer (its body must have been read).
    """
    if response.is_success:
        return
    raise make_api_error(response)
