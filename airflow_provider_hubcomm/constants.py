"""Every tunable of the provider in one place: API versions, paths, defaults and limits."""

from __future__ import annotations

from typing import Final

#: Connection defaults.
DEFAULT_CONN_ID: Final = "hubcomm_default"
CONN_TYPE: Final = "hubcomm"
DEFAULT_BASE_URL: Final = "https://api.hubapi.com"

#: API version segment of every Communication Preferences path. ``v4`` and ``2026-03`` are structurally identical;
#: HubSpot stops supporting ``v4`` on 2027-03-30, so ``2026-03`` is the default of the connection's ``api_version``
#: extra and the hook's ``api_version`` argument, and no endpoint pins its own version.
DEFAULT_API_VERSION: Final = "2026-03"

#: Path prefix shared by every Communication Preferences endpoint.
PATH_PREFIX: Final = "/communication-preferences"

#: OAuth token endpoint, relative to the base URL. v1 is sunset on 2027-02-16, so v3 is the default.
DEFAULT_TOKEN_PATH: Final = "/oauth/v3/token"

#: Timeouts (seconds).
DEFAULT_TIMEOUT: Final = 30.0
DEFAULT_CONNECT_TIMEOUT: Final = 10.0
#: ``test_connection`` (``airflow connections test``, the UI's Test button): one try, answered in seconds.
TEST_CONNECTION_DEADLINE: Final = 10.0
TEST_CONNECTION_CONNECT_TIMEOUT: Final = 5.0

#: Retry policy.
DEFAULT_MAX_RETRIES: Final = 5
INITIAL_RETRY_DELAY: Final = 0.5
MAX_RETRY_DELAY: Final = 30.0
#: Longest ``Retry-After`` honoured; a longer one is capped to this.
MAX_RETRY_AFTER: Final = 60.0
#: When a 429 carries neither ``Retry-After`` nor an interval header, wait this long (HubSpot's window).
DEFAULT_RATE_LIMIT_WAIT: Final = 10.0
#: 423 Locked: HubSpot asks to wait at least this long before retrying.
LOCKED_RETRY_DELAY: Final = 2.0
RETRYABLE_STATUS_CODES: Final = frozenset({423, 429, 500, 502, 503, 504, 521, 522, 523, 524})

#: OAuth: refresh when less than this fraction of the token's lifetime is left (and at least the margin).
TOKEN_REFRESH_FRACTION: Final = 0.2
TOKEN_REFRESH_MIN_MARGIN: Final = 30.0

#: Rate limiting. HubSpot's burst window is 10 s; private apps on Free/Starter get 100 requests per window.
RATE_LIMIT_WINDOW: Final = 10.0
#: Budget used before the first response tells us the real one (headroom under the smallest tier).
DEFAULT_REQUESTS_PER_10S: Final = 90
#: Extra time added to each window so client and server clocks never disagree on which window a request is in.
RATE_LIMIT_SAFETY: Final = 0.15

#: Batches. HubSpot documents no maximum; 100 is the safe default, 1,000 the hard cap.
DEFAULT_BATCH_SIZE: Final = 100
MAX_BATCH_SIZE: Final = 1000
DEFAULT_MAX_CONCURRENCY: Final = 4
#: Upper bound of ``max_concurrency`` (the hook's connection pool holds 64 connections).
MAX_CONCURRENCY: Final = 32

#: Largest signed 64-bit integer (``subscriptionId`` is an int64).
INT64_MAX: Final = 2**63 - 1
