"""Read and validate a ``hubcomm`` Airflow connection into a typed, secret-safe config."""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from airflow_provider_hubcomm.constants import (
    DEFAULT_API_VERSION,
    DEFAULT_BASE_URL,
    DEFAULT_MAX_RETRIES,
    DEFAULT_TIMEOUT,
    DEFAULT_TOKEN_PATH,
)
from airflow_provider_hubcomm.exceptions import HubCommConfigError

if TYPE_CHECKING:
    from airflow.sdk import Connection

log = logging.getLogger(__name__)

__all__ = ["AUTH_TYPES", "ConnectionConfig", "config_from_connection"]

AUTH_TYPES = ("private_app", "oauth")
#: ``v4`` or a date version such as ``2026-03`` (the path segment HubSpot uses).
_API_VERSION_RE = re.compile(r"^(v[0-9]+|[0-9]{4}-[0-9]{2})$")
OAUTH_FIELDS = ("client_id", "client_secret", "refresh_token")


@dataclass(frozen=True)
class ConnectionConfig:
    """Everything the hook needs from a connection. Secrets are excluded from ``repr``."""

    conn_id: str
    base_url: str
    auth_type: Literal["private_app", "oauth"]
    token_url: str
    timeout: float = DEFAULT_TIMEOUT
    max_retries: int = DEFAULT_MAX_RETRIES
    requests_per_10s: int | None = None
    business_unit_id: int | None = None
    #: Path segment of every Communication Preferences endpoint (``2026-03`` unless the connection says).
    api_version: str = DEFAULT_API_VERSION
    #: The account's brand ids (``businessUnitId``) declared on the connection; brand ``0`` is always known.
    business_unit_ids: tuple[int, ...] = ()
    #: The HubSpot account (portal / hub) id, only for naming lineage datasets; optional.
    portal_id: str | None = None
    access_token: str | None = field(default=None, repr=False)
    client_id: str | None = None
    client_secret: str | None = field(default=None, repr=False)
    refresh_token: str | None = field(default=None, repr=False)

    @property
    def brands(self) -> tuple[int, ...]:
        """Every brand id the provider knows of: ``0``, the default ``business_unit_id`` and the declared ones."""
        known = {0, *self.business_unit_ids}
        if self.business_unit_id is not None:
            known.add(self.business_unit_id)
        return tuple(sorted(known))

    @property
    def secrets(self) -> list[str]:
        """Every secret value of this config, for the secrets masker."""
        return [s for s in (self.access_token, self.client_secret, self.refresh_token) if s]


def _fail(conn_id: str, name: str, problem: str) -> HubCommConfigError:
    return HubCommConfigError(f"HubSpot connection {conn_id!r}: field {name!r} {problem}")


def _extras(conn: Connection) -> dict[str, Any]:
    raw = conn.extra
    if not raw:
        return {}
    if isinstance(raw, dict):
        return raw
    try:
        value = json.loads(raw)
    except ValueError as err:
        raise _fail(conn.conn_id, "extra", f"is not valid JSON ({err})") from None
    if not isinstance(value, dict):
        raise _fail(conn.conn_id, "extra", "must be a JSON object")
    return value


def _number(conn_id: str, extras: dict[str, Any], name: str, kind: type, low: float, high: float) -> Any:
    value = extras.get(name)
    if value is None or value == "":
        return None
    try:
        if isinstance(value, bool):
            raise ValueError
        number = kind(value) if kind is float else int(str(value).strip())
    except (TypeError, ValueError):
        raise _fail(conn_id, name, f"must be a number between {low} and {high}, got {value!r}") from None
    if not low <= number <= high:
        raise _fail(conn_id, name, f"must be between {low} and {high}, got {value!r}")
    return number


def _api_version(conn_id: str, extras: dict[str, Any]) -> str:
    value = str(extras.get("api_version") or "").strip()
    if not value:
        return DEFAULT_API_VERSION
    if not _API_VERSION_RE.match(value):
        raise _fail(conn_id, "api_version", f"must look like '2026-03' or 'v4', got {value!r}")
    return value


def _brand_ids(conn_id: str, extras: dict[str, Any]) -> tuple[int, ...]:
    value = extras.get("business_unit_ids")
    if value is None or value == "":
        return ()
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list | tuple):
        raise _fail(conn_id, "business_unit_ids", f"must be a list of brand ids or '0,7', got {value!r}")
    ids: list[int] = []
    for item in items:
        try:
            if isinstance(item, bool):
                raise ValueError
            number = int(str(item).strip())
        except (TypeError, ValueError):
            raise _fail(conn_id, "business_unit_ids", f"must hold whole numbers >= 0, got {item!r}") from None
        if number < 0:
            raise _fail(conn_id, "business_unit_ids", f"must hold whole numbers >= 0, got {item!r}")
        ids.append(number)
    return tuple(sorted(set(ids)))


def _base_url(conn: Connection) -> str:
    host = (conn.host or "").strip()
    if not host:
        return DEFAULT_BASE_URL
    if "://" not in host:
        # TLS unless the host itself says http://: the schema field never downgrades to plain HTTP.
        host = f"https://{host}"
    scheme, _, rest = host.partition("://")
    if scheme.lower() not in ("http", "https"):
        raise _fail(conn.conn_id, "host", f"must be an http(s) URL, got scheme {scheme!r}")
    if conn.port and ":" not in rest.split("/", 1)[0]:
        netloc, sep, path = rest.partition("/")
        rest = f"{netloc}:{conn.port}{sep}{path}"
    if scheme.lower() == "http":
        log.warning(
            "HubSpot connection %r uses plain HTTP (%s): only meant for a local fake; tokens travel unencrypted.",
            conn.conn_id,
            host.split("/", 3)[2] if host.count("/") >= 2 else host,
        )
    return f"{scheme.lower()}://{rest}".rstrip("/")


def config_from_connection(conn: Connection) -> ConnectionConfig:
    """Validate an Airflow connection and return its :class:`ConnectionConfig`.

    A connection that lacks what its auth mode needs raises :class:`HubCommConfigError` naming the
    connection id and the missing field.

    :param conn: the Airflow connection (``conn_type`` ``hubcomm``).
    """
    conn_id = conn.conn_id
    extras = _extras(conn)
    base_url = _base_url(conn)
    token = (conn.password or "").strip() or None
    auth_type = str(extras.get("auth_type") or "").strip().lower() or None
    if auth_type is None:
        auth_type = "oauth" if token is None and any(extras.get(f) for f in OAUTH_FIELDS) else "private_app"
    if auth_type not in AUTH_TYPES:
        raise _fail(conn_id, "auth_type", f"must be one of {', '.join(AUTH_TYPES)}, got {auth_type!r}")
    oauth = {f: (str(extras[f]).strip() if extras.get(f) else None) for f in OAUTH_FIELDS}
    if auth_type == "private_app" and token is None:
        raise _fail(
            conn_id,
            "password",
            "is empty: a private app needs its access token there "
            "(or set extra auth_type=oauth with client_id, client_secret, refresh_token)",
        )
    if auth_type == "oauth":
        missing = [f for f in OAUTH_FIELDS if not oauth[f]]
        if missing:
            raise _fail(conn_id, missing[0], f"is required for auth_type 'oauth' (missing: {', '.join(missing)})")
    token_url = str(extras.get("token_url") or "").strip() or f"{base_url}{DEFAULT_TOKEN_PATH}"
    if not token_url.startswith(("http://", "https://")):
        token_url = f"{base_url}/{token_url.lstrip('/')}"
    if token_url.startswith("http://") and auth_type == "oauth":
        log.warning(
            "HubSpot connection %r sends its OAuth client secret and refresh token over plain HTTP (token_url); "
            "only meant for a local fake.",
            conn_id,
        )
    timeout = _number(conn_id, extras, "timeout", float, 0.1, 3600)
    max_retries = _number(conn_id, extras, "max_retries", int, 0, 20)
    return ConnectionConfig(
        conn_id=conn_id,
        base_url=base_url,
        auth_type=auth_type,  # type: ignore[arg-type]
        token_url=token_url,
        timeout=DEFAULT_TIMEOUT if timeout is None else timeout,
        max_retries=DEFAULT_MAX_RETRIES if max_retries is None else max_retries,
        requests_per_10s=_number(conn_id, extras, "requests_per_10s", int, 1, 10_000),
        business_unit_id=_number(conn_id, extras, "business_unit_id", int, 0, 2**63 - 1),
        api_version=_api_version(conn_id, extras),
        business_unit_ids=_brand_ids(conn_id, extras),
        portal_id=str(extras["portal_id"]).strip() or None if extras.get("portal_id") not in (None, "") else None,
        access_token=token if auth_type == "private_app" else None,
        client_id=oauth["client_id"],
        client_secret=oauth["client_secret"],
        refresh_token=oauth["refresh_token"],
    )
