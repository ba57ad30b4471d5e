"""Hook for HubSpot's Communication Preferences API."""

from __future__ import annotations

import contextlib
import dataclasses
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from functools import cached_property
from typing import TYPE_CHECKING, Any

import httpx
from airflow.providers.common.compat.sdk import BaseHook, mask_secret

from airflow_provider_hubcomm import __version__
from airflow_provider_hubcomm.auth import OAuthRefreshAuth, PrivateAppAuth
from airflow_provider_hubcomm.constants import (
    CONN_TYPE,
    DEFAULT_CONN_ID,
    DEFAULT_CONNECT_TIMEOUT,
    TEST_CONNECTION_CONNECT_TIMEOUT,
    TEST_CONNECTION_DEADLINE,
)
from airflow_provider_hubcomm.exceptions import (
    HubCommError,
)
from airflow_provider_hubcomm.hooks import _form, _token
from airflow_provider_hubcomm.hooks._api import HubCommAPIMixin
from airflow_provider_hubcomm.hooks._catalog import SubscriptionCatalog
from airflow_provider_hubcomm.hooks._connection import ConnectionConfig, config_from_connection
from airflow_provider_hubcomm.hooks._deadline import (
    install_deadlines,
)
from airflow_provider_hubcomm.hooks._exchange import HubCommExchange
from airflow_provider_hubcomm.hooks._nocookies import drop_cookies
from airflow_provider_hubcomm.ratelimit import RateLimiter
from airflow_provider_hubcomm.redact import Redactor
from airflow_provider_hubcomm.retry import RetryPolicy

if TYPE_CHECKING:
    from airflow.sdk import Connection

__all__ = ["HubCommHook"]

USER_AGENT = f"airflow-provider-hubcomm/{__version__}"


class HubCommHook(HubCommExchange, HubCommAPIMixin, BaseHook):
    """Talk to HubSpot's Communication Preferences API with one pooled, rate-limited, retrying client.

    .. seealso:: ``docs/connection.md`` for the connection fields.

    :param hubcomm_conn_id: the ``hubcomm`` connection to use.
    :param transport: an ``httpx`` transport for the sync client (tests inject ``httpx.MockTransport``).
    :param async_transport: an ``httpx`` async transport for the async client.
    :param connection: an already-loaded connection (triggers load it asynchronously).
    :param timeout: overrides the connection's ``timeout`` extra: the TOTAL time of one HTTP attempt, connect
        to last byte (seconds), enforced even against a server that drips its answer.
    :param deadline: a ``time.time()`` epoch (JSON-friendly, e.g. from a trigger's payload) the hook never
        works past: retries and ``Retry-After``/backoff waits that would end after it are not made (the last
        outcome is raised, saying the deadline was reached), and each attempt gets at most the time left.
        Can be changed later through :attr:`deadline`.
    :param max_retries: overrides the connection's ``max_retries`` extra.
    :param requests_per_10s: overrides the connection's ``requests_per_10s`` extra (the account's budget).
    :param api_version: overrides the connection's ``api_version`` extra (default ``2026-03``), the version
        segment of every endpoint's path.
    :param rate_limit_share: fraction of the budget this hook may use, e.g. ``0.25`` when four tasks run at
        once against one HubSpot app (each task process has its own limiter).
    :param retry_sleep: sync sleep used between retries (tests pass a no-op).
    :param retry_asleep: async sleep used between retries.
    """

    conn_name_attr = "hubcomm_conn_id"
    default_conn_name = DEFAULT_CONN_ID
    conn_type = CONN_TYPE
    hook_name = "HubSpot Communication Preferences"

    def __init__(
        self,
        hubcomm_conn_id: str = DEFAULT_CONN_ID,
        *,
        transport: httpx.BaseTransport | None = None,
        async_transport: httpx.AsyncBaseTransport | None = None,
        connection: Connection | None = None,
        timeout: float | None = None,
        deadline: float | None = None,
        max_retries: int | None = None,
        requests_per_10s: int | None = None,
        api_version: str | None = None,
        rate_limit_share: float | None = None,
        retry_sleep: Callable[[float], None] | None = None,
        retry_asleep: Callable[[float], Awaitable[None]] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.hubcomm_conn_id = hubcomm_conn_id
        self._transport = transport
        self._async_transport = async_transport
        self._connection = connection
        self._overrides = {
            "timeout": timeout,
            "max_retries": max_retries,
            "requests_per_10s": requests_per_10s,
            "api_version": api_version,
        }
        #: ``time.time()`` epoch past which no attempt, retry or wait of this hook runs (``None``: no limit).
        self.deadline = deadline
        self._connect_timeout = DEFAULT_CONNECT_TIMEOUT
        self._rate_limit_share = rate_limit_share
        self._retry_sleep = retry_sleep
        self._retry_asleep = retry_asleep
        self._stats_lock = threading.Lock()
        self._catalog_lock = threading.Lock()
        self.stats: Counter[str] = Counter()
        #: Knows every secret of this hook (connection secrets, access tokens issued): server text is
        #: redacted through it before it is stored, logged or raised.
        self.redactor = Redactor()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(hubcomm_conn_id={self.hubcomm_conn_id!r})"

    # -- configuration ---------------------------------------------------------------------------------

    def _load_config(self, conn: Connection) -> ConnectionConfig:
        config = config_from_connection(conn)
        for secret in config.secrets:
            self._know_secret(secret)
        overrides: dict[str, Any] = {k: v for k, v in self._overrides.items() if v is not None}
        return dataclasses.replace(config, **overrides) if overrides else config

    def _know_secret(self, secret: str) -> None:
        """Register a secret with Airflow's masker and with this hook's redactor."""
        mask_secret(secret)
        self.redactor.add(secret)

    def prepare(self) -> None:
        """Load the connection and build the client, limiter and retry policy now, in the calling thread.

        Call it before sharing the hook between threads: lazily built attributes are not thread-safe.
        """
        _ = self.config, self.client, self.rate_limiter, self.retry_policy, self.auth

    def counters(self) -> dict[str, int]:
        """Return what this hook has done so far (``requests``, ``retries``, ``token_requests``, ``http_<code>``)."""
        with self._stats_lock:
            out = dict(self.stats)
        out.setdefault("requests", 0)
        out["retries"] = self.retry_policy.retries if "retry_policy" in self.__dict__ else 0
        return out

    @cached_property
    def config(self) -> ConnectionConfig:
        """The validated connection config (loaded once)."""
        return self._load_config(self._connection or self.get_connection(self.hubcomm_conn_id))

    async def _aensure_config(self) -> None:
        if "config" not in self.__dict__:
            conn = self._connection
            if conn is None:
                from airflow.providers.common.compat.connection import get_async_connection

                conn = await get_async_connection(self.hubcomm_conn_id)
            self.__dict__["config"] = self._load_config(conn)

    @cached_property
    def rate_limiter(self) -> RateLimiter:
        """The limiter shared by every request of this hook (sync and async)."""
        return RateLimiter(self.config.requests_per_10s, share=self._rate_limit_share or 1.0)

    @cached_property
    def retry_policy(self) -> RetryPolicy:
        """The one retry policy of this hook."""
        policy = RetryPolicy(max_retries=self.config.max_retries, on_throttle=self.rate_limiter.observe_throttled)
        if self._retry_sleep is not None:
            policy.sleep = self._retry_sleep
        if self._retry_asleep is not None:
            policy.asleep = self._retry_asleep
        return policy

    @cached_property
    def auth(self) -> httpx.Auth:
        """The ``httpx.Auth`` flow for the connection's auth type."""
        config = self.config
        if config.auth_type == "private_app":
            assert config.access_token is not None
            return PrivateAppAuth(config.access_token)
        assert config.refresh_token is not None
        return OAuthRefreshAuth(
            config.refresh_token,
            fetch=lambda refresh: _token.fetch_token(self, refresh),
            afetch=lambda refresh: _token.afetch_token(self, refresh),
            on_token=self._know_secret,
        )

    def _client_kwargs(self) -> dict[str, Any]:
        config = self.config
        return {
            "base_url": config.base_url,
            "timeout": self._timeout(config.timeout),
            "headers": {"User-Agent": USER_AGENT, "Accept": "application/json"},
            "auth": self.auth,
            "limits": httpx.Limits(max_connections=64, max_keepalive_connections=32),
            "follow_redirects": False,
        }

    @cached_property
    def client(self) -> httpx.Client:
        """The pooled sync client (keep-alive, total deadline per attempt, base URL, User-Agent, no cookie jar)."""
        client = httpx.Client(transport=self._transport, **self._client_kwargs())
        install_deadlines(client)
        drop_cookies(client)
        return client

    @cached_property
    def async_client(self) -> httpx.AsyncClient:
        """The pooled async client, twin of :attr:`client`."""
        client = httpx.AsyncClient(transport=self._async_transport, **self._client_kwargs())
        drop_cookies(client)
        return client

    def _default_business_unit(self) -> int | None:
        return self.config.business_unit_id

    def _api_version(self) -> str:
        return self.config.api_version

    def subscription_catalog(self) -> SubscriptionCatalog:
        """Return the account's subscriptions (id, name, brand, active), read once per hook.

        One ``GET /definitions`` per known brand (``0``, the connection's ``business_unit_id`` and its
        ``business_unit_ids``); see :mod:`~airflow_provider_hubcomm.hooks._catalog`.
        """
        with self._catalog_lock:
            if "_catalog" not in self.__dict__:
                answers = {b: self.get_definitions(business_unit_id=b) for b in self.config.brands}
                self.__dict__["_catalog"] = SubscriptionCatalog.from_answers(answers)
            catalog: SubscriptionCatalog = self.__dict__["_catalog"]
            return catalog

    async def asubscription_catalog(self) -> SubscriptionCatalog:
        """Async twin of :meth:`subscription_catalog`."""
        await self._aensure_config()
        if "_catalog" not in self.__dict__:
            answers = {b: await self.aget_definitions(business_unit_id=b) for b in self.config.brands}
            self.__dict__.setdefault("_catalog", SubscriptionCatalog.from_answers(answers))
        catalog: SubscriptionCatalog = self.__dict__["_catalog"]
        return catalog

    def get_conn(self) -> httpx.Client:
        """Return the sync ``httpx.Client``."""
        return self.client

    def close(self) -> None:
        """Close the sync client if it was built."""
        if "client" in self.__dict__:
            self.__dict__.pop("client").close()

    async def aclose(self) -> None:
        """Close the async client if it was built."""
        if "async_client" in self.__dict__:
            await self.__dict__.pop("async_client").aclose()

    # -- Airflow integration -----------------------------------------------------------------------------

    @contextlib.contextmanager
    def _one_short_try(self) -> Iterator[None]:
        """No retries, a short total deadline and a short connect timeout (for :meth:`test_connection`)."""
        saved = self.deadline, self._connect_timeout, self.retry_policy.max_retries
        now_bound = time.time() + TEST_CONNECTION_DEADLINE
        self.deadline = now_bound if self.deadline is None else min(self.deadline, now_bound)
        self._connect_timeout = TEST_CONNECTION_CONNECT_TIMEOUT
        self.retry_policy.max_retries = 0
        try:
            yield
        finally:
            self.deadline, self._connect_timeout, self.retry_policy.max_retries = saved

    def test_connection(self) -> tuple[bool, str]:
        """Make one cheap authenticated call (list definitions): one short try, no retries, answers in seconds."""
        try:
            with self._one_short_try():
                answer = self.get_definitions()
        except HubCommError as err:
            return False, str(err)
        except Exception as err:
            return False, self.redact(f"{type(err).__name__}: {err}")
        finally:
            self.close()
        return (
            True,
            f"Connected to HubSpot at {self.config.base_url}: {len(answer.results)} subscription types.",
        )

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """Form behaviour for Airflow < 3.2 (newer versions read ``conn-fields`` from provider info)."""
        return _form.ui_field_behaviour()

    @classmethod
    def get_connection_form_widgets(cls) -> dict[str, Any]:
        """Extra form fields for Airflow < 3.2 (needs Flask-AppBuilder's widgets, absent in newer Airflow)."""
        return _form.connection_form_widgets()
