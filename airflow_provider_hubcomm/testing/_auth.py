"""Authentication and rate limiting of the fake: private-app tokens, OAuth refresh grant, rolling window.

Budgets are per *app*, as HubSpot counts them: every private-app token shares the one ``private-app``
budget, and each OAuth client id has its own.
"""

from __future__ import annotations

import math
import secrets
import threading
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from airflow_provider_hubcomm.testing._config import OAuthClient

__all__ = ["PRIVATE_APP", "AuthResult", "RateDecision", "RollingWindowBudget", "TokenRegistry"]

PRIVATE_APP = "private-app"


@dataclass(frozen=True, slots=True)
class AuthResult:
    """Outcome of checking a bearer token: the app it belongs to, or why it was refused."""

    app: str | None
    category: str = ""
    message: str = ""


class TokenRegistry:
    """Every credential the fake knows, and the access tokens it has issued.

    :param private_app_tokens: static tokens (no expiry).
    :param clients: OAuth apps.
    """

    def __init__(self, private_app_tokens: list[str], clients: list[OAuthClient]) -> None:
        self._lock = threading.Lock()
        self._static = set(private_app_tokens)
        self._clients = {c.client_id: c for c in clients}
        self._refresh: dict[str, str] = {t: c.client_id for c in clients for t in c.refresh_tokens}
        self._access: dict[str, tuple[str, float]] = {}  # token -> (client_id, monotonic expiry)

    def check(self, authorization: str | None, now: float) -> AuthResult:
        """Check an ``Authorization`` header value.

        :param authorization: the raw header value, or ``None``.
        :param now: current monotonic time.
        """
        scheme, _, token = (authorization or "").strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            return AuthResult(
                None,
                "INVALID_AUTHENTICATION",
                "Authentication credentials not found. This API supports OAuth 2.0 authentication and you "
                "can find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview",
            )
        if token in self._static:
            return AuthResult(PRIVATE_APP)
        with self._lock:
            issued = self._access.get(token)
        if issued is None:
            return AuthResult(
                None,
                "INVALID_AUTHENTICATION",
                "Authentication credentials not found. The access token provided is invalid or was revoked.",
            )
        client_id, expiry = issued
        if now >= expiry:
            ago = max(0, int(now - expiry))
            return AuthResult(
                None,
                "EXPIRED_AUTHENTICATION",
                f"The OAuth token used to make this call expired {ago} second(s) ago.",
            )
        return AuthResult(f"oauth:{client_id}")

    def refresh(
        self, client_id: str, client_secret: str, refresh_token: str, ttl: float, rotate: bool, now: float
    ) -> tuple[str, str] | tuple[None, str]:
        """Run the refresh-token grant: ``(access_token, refresh_token)`` or ``(None, error_status)``.

        :param client_id: form field ``client_id``.
        :param client_secret: form field ``client_secret``.
        :param refresh_token: form field ``refresh_token``.
        :param ttl: lifetime of the new access token.
        :param rotate: replace the refresh token by a new one.
        :param now: current monotonic time.
        """
        client = self._clients.get(client_id)
        if client is None or not secrets.compare_digest(client.client_secret, client_secret):
            return None, "BAD_CLIENT_ID"
        with self._lock:
            if self._refresh.get(refresh_token) != client_id:
                return None, "BAD_REFRESH_TOKEN"
            access = "oat-fake-" + secrets.token_urlsafe(48)
            self._access[access] = (client_id, now + ttl)
            if rotate:
                del self._refresh[refresh_token]
                refresh_token = "rt-fake-" + secrets.token_urlsafe(24)
                self._refresh[refresh_token] = client_id
            return access, refresh_token

    def revoke_refresh_token(self, token: str) -> bool:
        """Forget a refresh token; return whether it was known.

        :param token: the refresh token.
        """
        with self._lock:
            return self._refresh.pop(token, None) is not None

    def expire_all_access_tokens(self, now: float) -> None:
        """Make every issued access token expired as of ``now``.

        :param now: current monotonic time.
        """
        with self._lock:
            self._access = {t: (c, min(exp, now)) for t, (c, exp) in self._access.items()}

    def refresh_tokens(self) -> dict[str, str]:
        """Return ``{refresh_token: client_id}`` of every currently valid refresh token."""
        with self._lock:
            return dict(self._refresh)


@dataclass(frozen=True, slots=True)
class RateDecision:
    """Whether a request fits the budget, and the values of the rate-limit headers."""

    allowed: bool
    limit: int
    remaining: int
    retry_after: int


class RollingWindowBudget:
    """HubSpot's rolling-window request budget, one per app; only admitted requests consume it.

    Not thread-safe on its own: :class:`~airflow_provider_hubcomm.testing._app.FakeApp` calls it under its lock.
    """

    def __init__(self) -> None:
        self._windows: dict[str, deque[float]] = {}

    def peek(self, app: str, limit: int, window: float, now: float) -> RateDecision:
        """Check the budget of ``app`` without consuming it.

        :param app: the app key (``private-app`` or ``oauth:<client_id>``).
        :param limit: requests allowed per window.
        :param window: window length in seconds.
        :param now: current monotonic time.
        """
        q = self._windows.setdefault(app, deque())
        horizon = now - window
        while q and q[0] <= horizon:
            q.popleft()
        while len(q) > limit:  # the limit was lowered while running
            q.popleft()
        if len(q) >= limit:
            retry = max(1, math.ceil(q[0] + window - now))
            return RateDecision(False, limit, 0, retry)
        return RateDecision(True, limit, limit - len(q), 1)

    def consume(self, app: str, decision: RateDecision, now: float) -> RateDecision:
        """Record one admitted request and return the decision with the updated ``remaining``.

        :param app: the app key.
        :param decision: what :meth:`peek` answered just before.
        :param now: current monotonic time.
        """
        self._windows.setdefault(app, deque()).append(now)
        return RateDecision(True, decision.limit, decision.remaining - 1, decision.retry_after)
