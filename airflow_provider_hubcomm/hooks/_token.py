"""The OAuth token endpoint, called by :class:`~airflow_provider_hubcomm.auth.OAuthRefreshAuth` through the hook.

The refresh goes through the hook's retry policy and deadlines (a refresh inside an attempt is bounded by that
attempt); its errors are redacted like every other answer, so a token endpoint quoting the form leaks nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

import httpx
from pydantic import ValidationError

from airflow_provider_hubcomm.exceptions import HubCommAuthError, HubCommResponseValidationError, make_api_error
from airflow_provider_hubcomm.hooks._call import _Call
from airflow_provider_hubcomm.models import AccessTokenResponse

if TYPE_CHECKING:
    from airflow_provider_hubcomm.exceptions import HubCommConnectionError
    from airflow_provider_hubcomm.hooks._connection import ConnectionConfig

__all__ = ["TokenHost", "afetch_token", "fetch_token"]


class TokenHost(Protocol):
    """What the token calls need of the hook: its config, sender, redactor, counters and no-answer error."""

    hubcomm_conn_id: str

    @property
    def config(self) -> ConnectionConfig:
        """The connection config (``token_url``, ``client_id``, ``client_secret``)."""

    def redact(self, text: str) -> str:
        """Return ``text`` without any secret the hook knows."""

    def send(self, method: str, url: str, *, metered: bool = True, **kwargs: Any) -> httpx.Response:
        """Send one request through the hook's deadlines and retry policy."""

    async def asend(self, method: str, url: str, *, metered: bool = True, **kwargs: Any) -> httpx.Response:
        """Async twin of :meth:`send`."""

    def _count(self, key: str, n: int = 1) -> None:
        """Add to one of the hook's counters."""

    def _no_answer(self, call: _Call[Any], err: Exception) -> HubCommConnectionError:
        """Return the error of a request that got no usable answer."""


def _form(hook: TokenHost, refresh_token: str) -> dict[str, str]:
    config = hook.config
    assert config.client_id is not None
    assert config.client_secret is not None
    return {
        "grant_type": "refresh_token",
        "client_id": config.client_id,
        "client_secret": config.client_secret,
        "refresh_token": refresh_token,
    }


def _answer(hook: TokenHost, response: httpx.Response) -> AccessTokenResponse:
    hook._count("token_requests")
    if not response.is_success:
        err = make_api_error(response, HubCommAuthError, redact=hook.redact)
        raise HubCommAuthError(
            err.status_code,
            {**err.body, "message": f"OAuth refresh for connection {hook.hubcomm_conn_id!r} failed: {err}"},
            method="POST",
            url=hook.config.token_url,
            correlation_id=err.correlation_id,
        )
    try:
        return AccessTokenResponse.model_validate_json(response.content)
    except ValidationError as exc:
        raise make_api_error(response, HubCommResponseValidationError, redact=hook.redact) from exc


def _request(hook: TokenHost, refresh_token: str) -> dict[str, Any]:
    return {"data": _form(hook, refresh_token), "auth": None, "metered": False}


def fetch_token(hook: TokenHost, refresh_token: str) -> AccessTokenResponse:
    """POST the refresh-token grant to the connection's token URL and return the answer.

    :param hook: the hook (client, retry policy, redactor, counters).
    :param refresh_token: the current refresh token.
    """
    url = hook.config.token_url
    try:
        response = hook.send("POST", url, **_request(hook, refresh_token))
    except httpx.HTTPError as err:
        raise hook._no_answer(_Call("POST", url, AccessTokenResponse), err) from err
    return _answer(hook, response)


async def afetch_token(hook: TokenHost, refresh_token: str) -> AccessTokenResponse:
    """Async twin of :func:`fetch_token`.

    :param hook: the hook.
    :param refresh_token: the current refresh token.
    """
    url = hook.config.token_url
    try:
        response = await hook.asend("POST", url, **_request(hook, refresh_token))
    except httpx.HTTPError as err:
        raise hook._no_answer(_Call("POST", url, AccessTokenResponse), err) from err
    return _answer(hook, response)
