"""A HubSpot-compatible fake of the Communication Preferences API, for tests, demos and benchmarks.

Standard library only (asyncio, with uvloop when installed): importing it pulls in neither Airflow, httpx
nor pydantic. Start one with ``with FakeHubSpot(**knobs) as fake:``; point a ``hubcomm`` connection at
``fake.url`` (``fake.connection_json()``). The pytest plugin offers it as the ``hubcomm_fake`` and
``hubcomm_fake_factory`` fixtures, and ``hubcomm-fake`` / ``python -m airflow_provider_hubcomm.testing``
runs it as a standalone server.

Behaviour, where HubSpot's documentation leaves a choice open:

* ``v4`` and ``2026-03`` paths are served identically, from one state. OAuth tokens come from
  ``/oauth/v1/token``, ``/oauth/v3/token`` and ``/oauth/2026-03/token`` (refresh-token grant only).
* Subscriber ids are matched case-insensitively and answered lowercased. The path segment is percent-decoded
  exactly once, after routing on the raw path, so ``%2F`` never changes the route.
* A single write to an unknown subscription answers 404 ``OBJECT_NOT_FOUND``. In a batch, unknown or
  inactive subscriptions and non-e-mail subscriber ids become one ``errors[]`` entry per failed input in an
  HTTP 207 (``context`` names ``subscriberIdString`` and ``subscriptionId``); the good inputs are applied.
  Schema problems (bad JSON, enums, non-integer ``subscriptionId``, oversized batch) refuse the whole
  request with 400 and apply nothing. ``subscriptionId`` must be a JSON integer (no numeric strings).
* Reads without ``businessUnitId`` cover brand ``0``; ``GET /definitions`` and the opt-out-of-all reads
  without it cover all brands.
* Rate limits are per app: all private-app tokens share one budget, each OAuth client id has its own.
  Unknown paths, 401s and 429s consume nothing; every other authenticated API answer (400s and injected
  5xx included) consumes one slot and carries the ``X-HubSpot-RateLimit-*`` headers. The token endpoint is
  never rate limited.
* Delayed and canceled batches answer 200 with ``PENDING`` / ``CANCELED`` and ``results`` echoing the
  accepted inputs (without ``setStatusSuccessReason``): only ``status`` tells that nothing is applied yet.
* A request the client gave up on (timeout) is still processed when its injected latency ends, as on a real
  server. Stopping the fake cancels answers still pending.
"""

from __future__ import annotations

from airflow_provider_hubcomm.testing._config import FakeConfig
from airflow_provider_hubcomm.testing._fake import FakeHubSpot

__all__ = ["FakeConfig", "FakeHubSpot"]
