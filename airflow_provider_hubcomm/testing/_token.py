"""The fake's OAuth token endpoint (``/oauth/{v1,v3,2026-03}/token``): the refresh-token grant only."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl

from airflow_provider_hubcomm.testing._messages import HttpResponse
from airflow_provider_hubcomm.testing._responses import dumps, json_response

if TYPE_CHECKING:
    from airflow_provider_hubcomm.testing._auth import TokenRegistry
    from airflow_provider_hubcomm.testing._config import FakeConfig
    from airflow_provider_hubcomm.testing._messages import HttpRequest

__all__ = ["token_grant"]


def _refuse(status: str, message: str, error: str, description: str) -> tuple[HttpResponse, str]:
    body = {
        "status": status,
        "message": message,
        "error": error,
        "error_description": description,
        "correlationId": str(uuid.uuid4()),
    }
    return json_response(400, body), "token_refused"


def token_grant(req: HttpRequest, cfg: FakeConfig, tokens: TokenRegistry) -> tuple[HttpResponse, str]:
    """Answer a token request: ``(response, outcome)``.

    :param req: the form-encoded POST.
    :param cfg: the knobs (``token_ttl``, ``rotate_refresh_tokens``).
    :param tokens: the credentials the fake knows.
    """
    try:
        form = dict(parse_qsl(req.body.decode(), keep_blank_values=True))
    except UnicodeDecodeError:
        form = {}
    if form.get("grant_type") != "refresh_token":
        return _refuse(
            "BAD_GRANT_TYPE",
            "grant_type must be refresh_token",
            "unsupported_grant_type",
            "Only the refresh_token grant is supported by this fake.",
        )
    access, refresh = tokens.refresh(
        form.get("client_id", ""),
        form.get("client_secret", ""),
        form.get("refresh_token", ""),
        cfg.token_ttl,
        cfg.rotate_refresh_tokens,
        req.received,
    )
    if access is None:
        if refresh == "BAD_CLIENT_ID":
            return _refuse("BAD_CLIENT_ID", "missing or unknown client id", "invalid_client", "Invalid client.")
        return _refuse(
            "BAD_REFRESH_TOKEN",
            "missing or unknown refresh token",
            "invalid_grant",
            "The refresh token is invalid, expired or revoked.",
        )
    ttl = cfg.token_ttl
    body = {
        "token_type": "bearer",
        "access_token": access,
        "refresh_token": refresh,
        "expires_in": int(ttl) if float(ttl).is_integer() else ttl,
        "token_use": "access_token",
    }
    return HttpResponse(200, dumps(body), [("Cache-Control", "no-store")]), "token_issued"
