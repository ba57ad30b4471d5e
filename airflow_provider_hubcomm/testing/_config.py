"""Knobs of the fake HubSpot server (:class:`FakeConfig`) and the enums and defaults it validates against.

Standard library only: this module is imported by the pytest plugin's fixtures and the ``hubcomm-fake`` CLI.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

__all__ = [
    "BATCH_MODES",
    "CHANNELS",
    "DEFAULT_CLIENT_ID",
    "DEFAULT_CLIENT_SECRET",
    "DEFAULT_PRIVATE_APP_TOKEN",
    "DEFAULT_REFRESH_TOKEN",
    "KNOWN_API_VERSIONS",
    "LEGAL_BASES",
    "RUNTIME_KNOBS",
    "STATUS_STATES",
    "FakeConfig",
    "OAuthClient",
    "SubscriptionDef",
    "is_email",
]

CHANNELS: Final = ("EMAIL",)
STATUS_STATES: Final = ("NOT_SPECIFIED", "SUBSCRIBED", "UNSUBSCRIBED")
LEGAL_BASES: Final = (
    "CONSENT_WITH_NOTICE",
    "LEGITIMATE_INTEREST_CLIENT",
    "LEGITIMATE_INTEREST_OTHER",
    "LEGITIMATE_INTEREST_PQL",
    "NON_GDPR",
    "PERFORMANCE_OF_CONTRACT",
    "PROCESS_AND_STORE",
)
BATCH_MODES: Final = ("immediate", "delayed", "cancel")
INT64_MAX: Final = 2**63 - 1
#: API version path segments the fake can serve (``api_versions`` picks among them).
KNOWN_API_VERSIONS: Final = ("2026-03", "v4")
#: HubSpot's scopes for the batch endpoints (named in the 403 ``MISSING_SCOPES`` answer).
BATCH_READ_SCOPE: Final = "communication_preferences.statuses.batch.read"
BATCH_WRITE_SCOPE: Final = "communication_preferences.statuses.batch.write"

DEFAULT_PRIVATE_APP_TOKEN: Final = "pat-fake-0123456789abcdef"
DEFAULT_CLIENT_ID: Final = "fake-client-id"
DEFAULT_CLIENT_SECRET: Final = "fake-client-secret"
DEFAULT_REFRESH_TOKEN: Final = "fake-refresh-token"

_DEFAULT_NAMES: Final = {
    101: "Marketing Information",
    102: "Product Updates",
    103: "Customer Service Communication",
}

#: Same rule as ``airflow_provider_hubcomm.models.is_valid_email`` (copied: that module imports pydantic).
_EMAIL_RE: Final = re.compile(r"^[^@\s\x00-\x1f\x7f]{1,64}@[^@\s\x00-\x1f\x7f]+\.[^@\s\x00-\x1f\x7f.]+$")


def is_email(value: str) -> bool:
    """Return whether ``value`` is accepted as an e-mail address (the only kind of subscriber id).

    :param value: the candidate subscriber id.
    """
    return len(value) <= 254 and _EMAIL_RE.fullmatch(value) is not None


@dataclass(frozen=True, slots=True)
class SubscriptionDef:
    """One subscription definition served by ``GET /definitions``.

    :param id: the subscription id (an int in statuses, a string in definitions, as HubSpot does).
    :param name: display name, echoed as ``subscriptionName`` on statuses.
    :param description: free text.
    :param business_unit_id: the brand the subscription belongs to (``0`` is the default Account brand).
    :param is_active: inactive definitions are listed but refuse writes (per-input 400).
    :param is_default: HubSpot's ``isDefault`` flag.
    :param is_internal: HubSpot's ``isInternal`` flag.
    :param purpose: HubSpot's ``purpose`` field.
    :param communication_method: HubSpot's ``communicationMethod`` field.
    """

    id: int
    name: str
    description: str = ""
    business_unit_id: int = 0
    is_active: bool = True
    is_default: bool = False
    is_internal: bool = False
    purpose: str = "Marketing"
    communication_method: str = "Email"

    @classmethod
    def parse(cls, spec: int | Mapping[str, Any]) -> SubscriptionDef:
        """Build a definition from an int id or a dict (camelCase or snake_case keys).

        :param spec: ``101`` or e.g. ``{"id": 201, "name": "News", "businessUnitId": 1}``.
        """
        if isinstance(spec, bool) or not isinstance(spec, int | Mapping):
            raise TypeError(f"subscription must be an int or a dict, got {spec!r}")
        if isinstance(spec, int):
            spec = {"id": spec}
        sid = int(spec["id"])
        if not 0 < sid <= INT64_MAX:
            raise ValueError(f"subscription id must be a positive int64, got {sid}")

        def get(snake: str, camel: str, default: Any) -> Any:
            return spec.get(snake, spec.get(camel, default))

        return cls(
            id=sid,
            name=str(spec.get("name", _DEFAULT_NAMES.get(sid, f"Subscription {sid}"))),
            description=str(spec.get("description", f"Fake subscription {sid}")),
            business_unit_id=int(get("business_unit_id", "businessUnitId", 0)),
            is_active=bool(get("is_active", "isActive", True)),
            is_default=bool(get("is_default", "isDefault", False)),
            is_internal=bool(get("is_internal", "isInternal", False)),
            purpose=str(spec.get("purpose", "Marketing")),
            communication_method=str(get("communication_method", "communicationMethod", "Email")),
        )


@dataclass(frozen=True, slots=True)
class OAuthClient:
    """One OAuth app the token endpoint knows.

    :param client_id: the app's client id.
    :param client_secret: the app's client secret.
    :param refresh_tokens: refresh tokens initially valid for this client.
    """

    client_id: str
    client_secret: str
    refresh_tokens: tuple[str, ...]

    @classmethod
    def parse(cls, spec: Mapping[str, Any]) -> OAuthClient:
        """Build a client from ``{"client_id", "client_secret", "refresh_token" | "refresh_tokens"}``.

        :param spec: the client's settings.
        """
        tokens = spec.get("refresh_tokens") or [spec["refresh_token"]]
        return cls(str(spec["client_id"]), str(spec["client_secret"]), tuple(str(t) for t in tokens))


def _default_clients() -> tuple[dict[str, str], ...]:
    return (
        {
            "client_id": DEFAULT_CLIENT_ID,
            "client_secret": DEFAULT_CLIENT_SECRET,
            "refresh_token": DEFAULT_REFRESH_TOKEN,
        },
    )


@dataclass(frozen=True)
class FakeConfig:
    """Every knob of :class:`~airflow_provider_hubcomm.testing.FakeHubSpot`, with HubSpot-like defaults.

    Probabilities are in ``[0, 1]`` and durations in seconds. All random decisions come from one
    ``random.Random(seed)``: the i-th API request always gets the same draws, whatever knobs are set.

    :param host: interface to listen on (the CLI refuses anything but loopback unless told otherwise).
    :param port: TCP port; ``0`` picks a free ephemeral port.
    :param subscriptions: subscription definitions: ints (ids) or dicts (see :meth:`SubscriptionDef.parse`).
    :param private_app_tokens: static tokens accepted as ``Authorization: Bearer``; they share one budget.
    :param oauth_clients: OAuth apps: dicts with ``client_id``, ``client_secret``, ``refresh_token``.
    :param token_ttl: lifetime of issued OAuth access tokens (``expires_in``).
    :param rotate_refresh_tokens: issue a new refresh token on every refresh and revoke the old one.
    :param requests_per_window: rolling-window budget per app; ``None`` means unlimited and no headers.
    :param window_seconds: length of the rolling window.
    :param send_retry_after: send ``Retry-After`` on 429 answers.
    :param max_batch_size: larger batches are refused whole with a 400 naming the limit; None means no
        limit (HubSpot documents none).
    :param latency: fixed delay added to every API answer.
    :param latency_jitter: uniform extra delay in ``[0, latency_jitter]``.
    :param latency_spike_rate: probability of an extra ``latency_spike_seconds`` delay.
    :param latency_spike_seconds: length of a latency spike.
    :param error_rate_5xx: probability of a 500/502/503/504 answer, given before any write is applied.
    :param error_rate_429: probability of a spurious 429 even under budget (a "storm").
    :param drop_after_write_rate: probability that a write is applied and the connection then closed unanswered.
    :param fault_token_endpoint: apply latency and injected errors to the OAuth token endpoint too.
    :param batch_mode: ``immediate``, ``delayed`` (``PENDING``, visible after ``batch_delay``) or ``cancel``.
    :param batch_delay: seconds until a delayed batch becomes visible.
    :param batch_release_after_reads: in ``delayed`` mode, pending batches also become visible as soon as the
        fake has answered this many status reads since they were written (0: by time only). Lets a test see a
        reader meet ``PENDING`` first and the applied state next, whatever the machine's load.
    :param cancel_rate: probability that a batch write is ``CANCELED`` in ``cancel`` mode.
    :param seed: seed of the single random generator behind every injected fault.
    :param request_log_limit: most recent requests kept in ``request_log``.
    :param max_body_bytes: larger request bodies are refused with 413.
    :param api_versions: API version path segments served (2026-03, v4); other versions answer 404 like an
        unknown route, so serving only 2026-03 models HubSpot after the v4 cutoff (2027-03-30).
    :param partial_status: HTTP status of a batch write or batch unsubscribe-all with per-input errors: 200
        (HubSpot's spec declares only 200) or 207 (older assumption). Batch reads always answer 207.
    :param unknown_subscription_status: status of a single write to an unknown subscription: 400
        (VALIDATION_ERROR) or 404 (OBJECT_NOT_FOUND); the same status is used for the per-input error in a batch.
    :param strict_brands: reads without businessUnitId cover brand 0 only (definitions and status reads);
        False lists every brand in GET /definitions and in the single opt-out-of-all read.
    :param batch_scopes: the app holds the batch scopes; False answers every batch endpoint with 403
        MISSING_SCOPES (an account below Marketing Hub Enterprise).
    :param daily_limit: requests allowed per day for the whole account (None: unlimited); private-app answers
        carry the daily headers, and once spent every API request gets a DAILY 429 without Retry-After.
    :param html_5xx: injected 5xx answers carry a text/html page (like a load balancer) instead of JSON.
    :param require_legal_basis: writes without legalBasis and legalBasisExplanation are refused (the
        account's GDPR settings are on): 400 on a single write, a per-input error in a batch.
    :param drip_interval: seconds between body bytes of a dripped answer (0: off); headers go out at once.
    :param drip_rate: probability that an API answer is dripped when drip_interval is above 0.
    :param echo_secrets: error answers quote the request's Authorization header (and the token endpoint the
        posted client_secret and refresh_token), as a careless proxy would.
    """

    host: str = "127.0.0.1"
    port: int = 0
    subscriptions: Sequence[int | Mapping[str, Any]] = (101, 102, 103)
    private_app_tokens: Sequence[str] = (DEFAULT_PRIVATE_APP_TOKEN,)
    oauth_clients: Sequence[Mapping[str, Any]] = field(default_factory=_default_clients)
    token_ttl: float = 1800.0
    rotate_refresh_tokens: bool = False
    requests_per_window: int | None = None
    window_seconds: float = 10.0
    send_retry_after: bool = True
    max_batch_size: int | None = None
    latency: float = 0.0
    latency_jitter: float = 0.0
    latency_spike_rate: float = 0.0
    latency_spike_seconds: float = 5.0
    error_rate_5xx: float = 0.0
    error_rate_429: float = 0.0
    drop_after_write_rate: float = 0.0
    fault_token_endpoint: bool = False
    batch_mode: str = "immediate"
    batch_delay: float = 2.0
    batch_release_after_reads: int = 0
    cancel_rate: float = 1.0
    seed: int | None = 0
    request_log_limit: int = 100_000
    max_body_bytes: int = 16 * 1024 * 1024
    api_versions: Sequence[str] = KNOWN_API_VERSIONS
    partial_status: int = 200
    unknown_subscription_status: int = 400
    strict_brands: bool = True
    batch_scopes: bool = True
    daily_limit: int | None = None
    html_5xx: bool = False
    require_legal_basis: bool = False
    drip_interval: float = 0.0
    drip_rate: float = 1.0
    echo_secrets: bool = False

    def __post_init__(self) -> None:
        for name in ("latency_spike_rate", "error_rate_5xx", "error_rate_429", "drop_after_write_rate"):
            _check_probability(name, getattr(self, name))
        _check_probability("cancel_rate", self.cancel_rate)
        _check_probability("drip_rate", self.drip_rate)
        for name in ("latency", "latency_jitter", "latency_spike_seconds", "batch_delay", "drip_interval"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
        if self.batch_release_after_reads < 0:
            raise ValueError(f"batch_release_after_reads must be >= 0, got {self.batch_release_after_reads!r}")
        if not (math.isfinite(self.token_ttl) and self.token_ttl > 0):
            raise ValueError(f"token_ttl must be > 0, got {self.token_ttl!r}")
        if not (math.isfinite(self.window_seconds) and self.window_seconds > 0):
            raise ValueError(f"window_seconds must be > 0, got {self.window_seconds!r}")
        if self.requests_per_window is not None and self.requests_per_window < 1:
            raise ValueError(f"requests_per_window must be >= 1 or None, got {self.requests_per_window!r}")
        if self.batch_mode not in BATCH_MODES:
            raise ValueError(f"batch_mode must be one of {BATCH_MODES}, got {self.batch_mode!r}")
        if self.max_batch_size is not None and self.max_batch_size < 1:
            raise ValueError(f"max_batch_size must be >= 1 or None, got {self.max_batch_size!r}")
        if self.daily_limit is not None and self.daily_limit < 1:
            raise ValueError(f"daily_limit must be >= 1 or None, got {self.daily_limit!r}")
        if self.partial_status not in (200, 207):
            raise ValueError(f"partial_status must be 200 or 207, got {self.partial_status!r}")
        if self.unknown_subscription_status not in (400, 404):
            got = self.unknown_subscription_status
            raise ValueError(f"unknown_subscription_status must be 400 or 404, got {got!r}")
        if isinstance(self.api_versions, str) or not set(self.api_versions) <= set(KNOWN_API_VERSIONS):
            got_versions = self.api_versions
            raise ValueError(f"api_versions must be a sequence drawn from {KNOWN_API_VERSIONS}, got {got_versions!r}")
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port must be in 0..65535, got {self.port!r}")
        if isinstance(self.private_app_tokens, str):
            raise TypeError("private_app_tokens must be a sequence of strings, not a string")
        defs = self.subscription_defs()
        if len({d.id for d in defs}) != len(defs):
            raise ValueError("subscription ids must be unique")
        self.clients()

    def subscription_defs(self) -> list[SubscriptionDef]:
        """Return the parsed subscription definitions."""
        return [SubscriptionDef.parse(spec) for spec in self.subscriptions]

    def clients(self) -> list[OAuthClient]:
        """Return the parsed OAuth clients."""
        return [OAuthClient.parse(spec) for spec in self.oauth_clients]

    def replace(self, **knobs: Any) -> FakeConfig:
        """Return a copy with ``knobs`` changed, validated like the constructor.

        :param knobs: field names and their new values.
        """
        unknown = set(knobs) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise TypeError(f"unknown FakeHubSpot knob(s): {', '.join(sorted(unknown))}")
        return dataclasses.replace(self, **knobs)


#: Knobs :meth:`FakeHubSpot.configure` may change while the server runs (the others shape its identity).
RUNTIME_KNOBS: Final = frozenset(
    {
        "token_ttl",
        "rotate_refresh_tokens",
        "requests_per_window",
        "window_seconds",
        "send_retry_after",
        "max_batch_size",
        "latency",
        "latency_jitter",
        "latency_spike_rate",
        "latency_spike_seconds",
        "error_rate_5xx",
        "error_rate_429",
        "drop_after_write_rate",
        "fault_token_endpoint",
        "batch_mode",
        "batch_delay",
        "batch_release_after_reads",
        "cancel_rate",
        "seed",
        "api_versions",
        "partial_status",
        "unknown_subscription_status",
        "strict_brands",
        "batch_scopes",
        "daily_limit",
        "html_5xx",
        "require_legal_basis",
        "drip_interval",
        "drip_rate",
        "echo_secrets",
    }
)


def _check_probability(name: str, value: float) -> None:
    if not (isinstance(value, int | float) and 0.0 <= value <= 1.0):
        raise ValueError(f"{name} must be a probability in [0, 1], got {value!r}")
