"""Answers the fake gives before (or instead of) an endpoint handler: rate limits, scopes, faults, echo.

Pure functions over :class:`FakeConfig` values; :class:`~airflow_provider_hubcomm.testing._app.FakeApp`
decides when each applies.
"""

from __future__ import annotations

import html
import json
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl

from airflow_provider_hubcomm.testing._config import BATCH_READ_SCOPE, BATCH_WRITE_SCOPE
from airflow_provider_hubcomm.testing._responses import (
    dumps,
    error_response,
    html_response,
    json_response,
    missing_scopes_body,
    rate_limit_body,
)

if TYPE_CHECKING:
    from airflow_provider_hubcomm.testing._config import FakeConfig
    from airflow_provider_hubcomm.testing._messages import HttpRequest, HttpResponse

__all__ = [
    "BATCH_SCOPES",
    "FIVE_XX",
    "daily_headers",
    "echo_secrets",
    "injected_5xx",
    "missing_scopes",
    "rate_headers",
    "too_many",
    "too_many_daily",
]

FIVE_XX = (500, 502, 503, 504)
_5XX_MESSAGES = {
    500: "An internal error occurred.",
    502: "Bad Gateway: processing limits reached, try again later.",
    503: "Service Unavailable: HubSpot is temporarily unavailable.",
    504: "Gateway Timeout: processing limits reached, try again later.",
}
#: Batch endpoints and the granular scope each needs (Marketing Hub Enterprise only).
BATCH_SCOPES = {
    "batch_read": BATCH_READ_SCOPE,
    "batch_unsubscribe_all_read": BATCH_READ_SCOPE,
    "batch_write": BATCH_WRITE_SCOPE,
    "batch_unsubscribe_all": BATCH_WRITE_SCOPE,
}


def rate_headers(cfg: FakeConfig, limit: int, remaining: int) -> list[tuple[str, str]]:
    """Return the rolling-window ``X-HubSpot-RateLimit-*`` headers.

    :param cfg: the knobs (for the window length).
    :param limit: requests allowed per window.
    :param remaining: requests left in the window.
    """
    return [
        ("X-HubSpot-RateLimit-Max", str(limit)),
        ("X-HubSpot-RateLimit-Remaining", str(max(0, remaining))),
        ("X-HubSpot-RateLimit-Interval-Milliseconds", str(round(cfg.window_seconds * 1000))),
    ]


def daily_headers(limit: int, used: int) -> list[tuple[str, str]]:
    """Return the daily headers (sent on private-app answers only, never for OAuth).

    :param limit: the day's budget.
    :param used: requests counted so far today.
    """
    remaining = str(max(0, limit - used))
    return [("X-HubSpot-RateLimit-Daily", str(limit)), ("X-HubSpot-RateLimit-Daily-Remaining", remaining)]


def too_many(cfg: FakeConfig, retry_after: int, correlation_id: str) -> HttpResponse:
    """Return a ``TEN_SECONDLY_ROLLING`` 429 (with ``Retry-After`` unless ``send_retry_after`` is off).

    :param cfg: the knobs.
    :param retry_after: seconds until the window has room.
    :param correlation_id: the request's correlation id.
    """
    resp = json_response(429, rate_limit_body(correlation_id))
    if cfg.send_retry_after:
        resp.headers.append(("Retry-After", str(retry_after)))
    return resp


def too_many_daily(correlation_id: str) -> HttpResponse:
    """Return a ``DAILY`` 429; HubSpot sends no ``Retry-After`` (the budget resets at midnight).

    :param correlation_id: the request's correlation id.
    """
    return json_response(429, rate_limit_body(correlation_id, "DAILY"))


def missing_scopes(endpoint: str, correlation_id: str) -> HttpResponse:
    """Return the 403 ``MISSING_SCOPES`` of a batch endpoint on an account without the batch scopes.

    :param endpoint: the batch endpoint's name.
    :param correlation_id: the request's correlation id.
    """
    return json_response(403, missing_scopes_body(correlation_id, BATCH_SCOPES[endpoint]))


def injected_5xx(cfg: FakeConfig, draw: float, correlation_id: str) -> HttpResponse:
    """Return an injected 500/502/503/504, as JSON or (``html_5xx``) as a load balancer's HTML page.

    :param cfg: the knobs.
    :param draw: the random draw choosing the status.
    :param correlation_id: the request's correlation id.
    """
    status = FIVE_XX[int(draw * 4) % 4]
    if cfg.html_5xx:
        return html_response(status, _5XX_MESSAGES[status], correlation_id)
    return error_response(status, _5XX_MESSAGES[status], correlation_id)


def echo_secrets(resp: HttpResponse, req: HttpRequest, token_endpoint: bool) -> None:
    """Quote the request's credentials inside an error answer's message, as a careless proxy would.

    Only used with ``echo_secrets`` on, to test that clients mask what servers echo. The fake's own
    request log and counters never see these values.

    :param resp: the error answer (changed in place).
    :param req: the request it answers.
    :param token_endpoint: also quote the posted ``client_secret`` and ``refresh_token``.
    """
    quoted = [f"Authorization: {req.headers['authorization']}"] if "authorization" in req.headers else []
    if token_endpoint:
        try:
            form = dict(parse_qsl(req.body.decode(), keep_blank_values=True))
        except UnicodeDecodeError:
            form = {}
        quoted.extend(f"{k}={form[k]}" for k in ("client_secret", "refresh_token") if k in form)
    if not quoted:
        return
    note = " [request was: " + "; ".join(quoted) + "]"
    if resp.content_type.startswith("text/html"):
        resp.body = resp.body.replace(b"</body>", f"<pre>{html.escape(note)}</pre></body>".encode())
        return
    try:
        body = json.loads(resp.body)
    except ValueError:
        return
    if isinstance(body, dict):
        body["message"] = str(body.get("message", "")) + note
        resp.body = dumps(body)
