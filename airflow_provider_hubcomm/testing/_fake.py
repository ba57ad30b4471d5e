"""``FakeHubSpot``: the fake served by uvicorn on its own event loop in a background thread, or without a socket."""

from __future__ import annotations

import json
import threading
import time
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import quote

from airflow_provider_hubcomm.testing._app import LOG_FIELDS, FakeApp
from airflow_provider_hubcomm.testing._config import RUNTIME_KNOBS, STATUS_STATES, FakeConfig

if TYPE_CHECKING:
    from types import TracebackType

    import httpx

    from airflow_provider_hubcomm.testing._server import BackgroundServer

__all__ = ["NO_SOCKET_URL", "FakeHubSpot"]

#: The host of :meth:`FakeHubSpot.connection_json` when the fake is used only through its transports: never
#: resolvable (``.invalid``), and ``https`` so a hook has no reason to warn about plain HTTP.
NO_SOCKET_URL = "https://hubcomm-fake.invalid"


class FakeHubSpot:
    """A HubSpot Communication Preferences API double on ``http://127.0.0.1:<port>``, or in process.

    .. code-block:: python

        with FakeHubSpot(requests_per_window=100, error_rate_5xx=0.05, seed=7) as fake:
            os.environ["AIRFLOW_CONN_HUBCOMM_DEFAULT"] = fake.connection_json()
            ...
            assert fake.status("a@example.com", 101)["status"] == "UNSUBSCRIBED"

        # no socket, no thread: the same behaviour through httpx transports
        fake = FakeHubSpot(latency=0.01)
        hook = HubCommHook(transport=fake.transport(), async_transport=fake.async_transport())

    :param config: a complete :class:`FakeConfig`; ``knobs`` override its fields.
    :param knobs: any :class:`FakeConfig` field, e.g. ``latency=0.05``.
    """

    def __init__(self, config: FakeConfig | None = None, **knobs: Any) -> None:
        base = config or FakeConfig()
        self.config = base.replace(**knobs) if knobs else base
        self._app = FakeApp(self.config)
        self._server: BackgroundServer | None = None
        self._port: int | None = None
        self._in_process = False
        self._lock = threading.Lock()

    # -- lifecycle ---------------------------------------------------------------------------------------
    def start(self) -> FakeHubSpot:
        """Start listening (idempotent); return ``self``. Raises ``OSError`` if the port cannot be bound."""
        with self._lock:
            if self._server is not None:
                return self
            # uvicorn and Starlette are imported only here: importing the fake stays light.
            from airflow_provider_hubcomm.testing._asgi import asgi_app
            from airflow_provider_hubcomm.testing._server import BackgroundServer

            server = BackgroundServer(asgi_app(self._app), self.config.host, self.config.port)
            self._port = server.start()
            self._server = server
            return self

    def stop(self) -> None:
        """Stop the server, abort every connection, cancel pending answers and join the thread (idempotent)."""
        with self._lock:
            server, self._server = self._server, None
            if server is not None:
                server.stop()

    def __enter__(self) -> FakeHubSpot:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- without a socket --------------------------------------------------------------------------------
    def transport(self) -> httpx.BaseTransport:
        """Return a sync ``httpx`` transport answering from this fake in the calling thread (no socket).

        Same state, faults and counters as the served fake; injected latency sleeps the caller, a dropped
        answer raises ``httpx.RemoteProtocolError`` (the write is applied), timeouts are not enforced.
        """
        from airflow_provider_hubcomm.testing._transports import mock_transport

        self._in_process = True
        return mock_transport(self._app)

    def async_transport(self) -> httpx.AsyncBaseTransport:
        """Return an async ``httpx`` transport running this fake's ASGI application in the caller's loop."""
        from airflow_provider_hubcomm.testing._asgi import asgi_app
        from airflow_provider_hubcomm.testing._transports import AsgiTransport

        self._in_process = True
        return AsgiTransport(asgi_app(self._app))

    @property
    def running(self) -> bool:
        """Whether the server is listening."""
        return self._server is not None

    # -- addresses and connections -----------------------------------------------------------------------
    @property
    def port(self) -> int:
        """The TCP port the server listens on (after :meth:`start`)."""
        if self._port is None:
            raise RuntimeError("FakeHubSpot is not started; use `with FakeHubSpot() as fake:` or .start()")
        return self._port

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:54321`` (use it as the connection's host).

        Before any :meth:`start`, once a transport was handed out: :data:`NO_SOCKET_URL`.
        """
        if self._port is None and self._in_process:
            return NO_SOCKET_URL
        return f"http://{self.config.host}:{self.port}"

    @property
    def token(self) -> str:
        """The first private-app token (valid for every API endpoint)."""
        return str(self.config.private_app_tokens[0])

    @property
    def oauth_client(self) -> dict[str, str]:
        """The first OAuth client: ``client_id``, ``client_secret`` and its first ``refresh_token``."""
        client = self.config.clients()[0]
        return {
            "client_id": client.client_id,
            "client_secret": client.client_secret,
            "refresh_token": client.refresh_tokens[0],
        }

    def _connection_parts(self, auth: str, extra: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        if auth == "private_app":
            return self.token, dict(extra)
        if auth == "oauth":
            return "", {"auth_type": "oauth", **self.oauth_client, **extra}
        raise ValueError(f"auth must be 'private_app' or 'oauth', got {auth!r}")

    def connection_json(self, auth: Literal["private_app", "oauth"] = "private_app", **extra: Any) -> str:
        """Return the JSON form of an Airflow connection to this fake (for ``AIRFLOW_CONN_<ID>``).

        :param auth: ``private_app`` (token as password) or ``oauth`` (client id/secret/refresh token extras).
        :param extra: more connection extras, e.g. ``max_retries=2``.
        """
        password, extras = self._connection_parts(auth, extra)
        conn: dict[str, Any] = {"conn_type": "hubcomm", "host": self.url}
        if password:
            conn["password"] = password
        if extras:
            conn["extra"] = extras
        return json.dumps(conn)

    def connection_uri(self, auth: Literal["private_app", "oauth"] = "private_app", **extra: Any) -> str:
        """Return the URI form of the same connection.

        The host carries a scheme, so it is percent-encoded whole (``http%3A%2F%2F127.0.0.1%3A<port>``);
        Airflow's ``Connection.from_uri`` decodes it back to ``http://127.0.0.1:<port>``. Extras travel as
        one JSON ``__extra__`` query parameter.

        :param auth: ``private_app`` or ``oauth``.
        :param extra: more connection extras.
        """
        password, extras = self._connection_parts(auth, extra)
        userinfo = f":{quote(password, safe='')}@" if password else ""
        uri = f"hubcomm://{userinfo}{quote(self.url, safe='')}/"
        if extras:
            uri += "?__extra__=" + quote(json.dumps(extras), safe="")
        return uri

    # -- state -------------------------------------------------------------------------------------------
    def status(self, subscriber: str, subscription_id: int) -> dict[str, Any] | None:
        """Return the current status record of one (subscriber, subscription), or ``None`` if never set.

        Delayed batch writes that are due are applied first.

        :param subscriber: the e-mail address (any case).
        :param subscription_id: the subscription id.
        """
        store = self._app.store
        with store.lock:
            store.apply_due()
            rec = store.get(subscriber, subscription_id)
            return rec.as_dict() if rec is not None else None

    def snapshot(self) -> dict[tuple[str, int], str]:
        """Return ``{(subscriber_lowercase, subscription_id): status}`` of every status ever written."""
        return self._app.store.snapshot()

    def opted_out_of_all(self, subscriber: str, business_unit_id: int = 0) -> bool:
        """Return whether ``subscriber`` is opted out of all e-mail of the brand.

        :param subscriber: the e-mail address.
        :param business_unit_id: the brand.
        """
        self._app.store.apply_due()
        return bool(self._app.store.wide_statuses(subscriber, business_unit_id))

    def set_state(
        self, subscriber: str, subscription_id: int, status: str | None, source: str = "Behind the run's back"
    ) -> None:
        """Change a status directly (as a contact clicking a link would), bypassing the API.

        :param subscriber: the e-mail address.
        :param subscription_id: the subscription id.
        :param status: ``SUBSCRIBED``, ``UNSUBSCRIBED``, ``NOT_SPECIFIED``, or ``None`` to forget it.
        :param source: the ``source`` reported for it.
        """
        if status is not None and status not in STATUS_STATES:
            raise ValueError(f"status must be one of {STATUS_STATES} or None, got {status!r}")
        self._app.store.set_state(subscriber, subscription_id, status, source)

    def dump_state(self) -> dict[str, Any]:
        """Return statuses, opt-outs, pending writes and counters as JSON-ready data."""
        return {"url": self.url if self._port else None, **self._app.store.dump(), "counters": self.counters}

    # -- observation -------------------------------------------------------------------------------------
    @property
    def counters(self) -> dict[str, int]:
        """Counts per outcome and ``endpoint:<name>``.

        Outcomes: ``ok``, ``partial``, ``pending``, ``canceled``, ``validation_error``, ``not_found``,
        ``unauthorized``, ``missing_scopes``, ``rate_limited``, ``daily_limited``, ``injected_5xx``,
        ``injected_429``, ``dropped_after_write``, ``token_issued``, ``token_refused``, …
        """
        with self._app.lock:
            return dict(self._app.counters)

    @property
    def request_log(self) -> list[dict[str, Any]]:
        """Most recent requests: time, method, raw path, redacted query, status, outcome, duration_ms, n_inputs.

        Never holds headers, bodies, tokens or secrets.
        """
        with self._app.lock:
            entries = list(self._app.log)
        return [dict(zip(LOG_FIELDS, e, strict=True)) for e in entries]

    def reset_counters(self) -> None:
        """Clear the counters and the request log (state and credentials are kept)."""
        with self._app.lock:
            self._app.counters.clear()
            self._app.log.clear()

    # -- knobs and credentials ---------------------------------------------------------------------------
    def configure(self, **knobs: Any) -> None:
        """Change fault, rate-limit, token and batch knobs while running (thread-safe).

        Changing ``seed`` restarts the random generator from that seed.

        :param knobs: any of the runtime knobs (see ``RUNTIME_KNOBS``).
        """
        fixed = set(knobs) - RUNTIME_KNOBS
        if fixed:
            raise ValueError(f"cannot change {', '.join(sorted(fixed))} on a created FakeHubSpot")
        new = self.config.replace(**knobs)
        self.config = new
        self._app.reconfigure(new, reseed="seed" in knobs)

    def new_day(self) -> None:
        """Start a new day: the account's ``daily_limit`` budget is full again (HubSpot resets it at midnight)."""
        with self._app.lock:
            self._app.daily_used = 0

    def revoke_refresh_token(self, token: str) -> bool:
        """Revoke a refresh token (the next refresh grant with it gets ``BAD_REFRESH_TOKEN``).

        :param token: the refresh token.
        """
        return self._app.tokens.revoke_refresh_token(token)

    def expire_all_access_tokens(self) -> None:
        """Expire every OAuth access token issued so far (next API call with one gets 401)."""
        self._app.tokens.expire_all_access_tokens(time.monotonic())

    @property
    def refresh_tokens(self) -> dict[str, str]:
        """Currently valid refresh tokens and their client id (changes with ``rotate_refresh_tokens``)."""
        return self._app.tokens.refresh_tokens()

    def __repr__(self) -> str:
        where = self.url if self._port is not None and self.running else "not started"
        return f"<FakeHubSpot {where}>"
