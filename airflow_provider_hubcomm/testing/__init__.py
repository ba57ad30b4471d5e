"""A HubSpot-compatible fake of the Communication Preferences API, for tests, demos and benchmarks.

A Starlette application (:mod:`._asgi`) around the HubSpot behaviour (:mod:`._app`, :mod:`._handlers`), served
by uvicorn on its own event loop in a background thread (:mod:`._server`), or run without a socket through
``httpx`` transports (:meth:`FakeHubSpot.transport`, :meth:`FakeHubSpot.async_transport`). Importing it pulls in
neither Airflow, httpx, pydantic, uvicorn nor Starlette: they load when a fake starts or hands out a transport.
Start one with ``with FakeHubSpot(**knobs) as fake:``; point a ``hubcomm`` connection at ``fake.url``
(``fake.connection_json()``). The pytest plugin offers it as the ``hubcomm_fake`` and
``hubcomm_fake_factory`` fixtures, and ``hubcomm-fake`` / ``python -m airflow_provider_hubcomm.testing``
runs it as a standalone server.

Behaviour follows HubSpot's published contract (OpenAPI spec and developer docs); where they leave a choice
open, the fake picks the documented-safe reading and offers a knob for the other:

* ``2026-03`` and ``v4`` paths are served identically, from one state; ``api_versions=("2026-03",)`` models
  HubSpot after the v4 cutoff (other versions answer 404 like an unknown route). OAuth tokens come from
  ``/oauth/v1/token``, ``/oauth/v3/token`` and ``/oauth/2026-03/token`` (refresh-token grant only).
* Subscriber ids are matched case-insensitively and answered lowercased. The path segment is percent-decoded
  exactly once, after routing on the raw path, so ``%2F`` never changes the route.
* Batch write and batch unsubscribe-all answer per-input errors with HTTP 200 plus ``errors[]`` and
  ``numErrors`` (the spec declares only 200; ``partial_status=207`` for the older assumption); batch reads
  answer them with 207, as declared. Each error is a ``StandardError`` (``status`` as a string, ``category``,
  ``message``, ``context`` naming ``subscriberIdString`` and ``subscriptionId``, ``errors``, ``links``); the
  good inputs are applied. Schema problems (bad JSON, enums, non-integer ``subscriptionId``) refuse the whole
  request with 400 and apply nothing. ``subscriptionId`` must be a JSON integer (no numeric strings).
* A single write to an unknown subscription answers 400 ``VALIDATION_ERROR`` (HubSpot never promised 404;
  ``unknown_subscription_status=404`` gives ``OBJECT_NOT_FOUND``). With ``require_legal_basis`` a write
  without ``legalBasis`` and ``legalBasisExplanation`` is refused (400, or a per-input error in a batch).
* No batch size limit is invented: ``max_batch_size`` (default unlimited) refuses a larger batch whole with a
  400 ``VALIDATION_ERROR`` whose message says the batch is too large and names the limit.
* Brands (``strict_brands``, default on): ``GET /definitions`` and status reads without ``businessUnitId``
  cover brand 0 only, with it that brand only; ``batch/unsubscribe-all/read`` without it covers every brand
  (documented). Writes take no ``businessUnitId`` and work for any brand's subscription; unsubscribe-all
  applies to the brand given (default 0).
* ``batch_scopes=False`` answers every batch endpoint with 403 ``MISSING_SCOPES`` (an account below Marketing
  Hub Enterprise); the single endpoints keep working.
* Rate limits are per app: all private-app tokens share one budget, each OAuth client id has its own.
  Unknown paths, 401s and 429s consume nothing; every other authenticated API answer (400s, 403s and
  injected 5xx included) consumes one slot and carries the ``X-HubSpot-RateLimit-*`` headers. ``daily_limit``
  is one budget for the whole account: private-app answers carry ``X-HubSpot-RateLimit-Daily`` and
  ``-Daily-Remaining`` (OAuth answers do not), and once it is spent every API request gets a ``DAILY`` 429
  without ``Retry-After``. The token endpoint is never rate limited.
* Delayed and canceled batches answer with ``PENDING`` / ``CANCELED`` and empty ``results`` (HubSpot never
  promised an echo); delayed writes apply after ``batch_delay``.
* Injected 5xx answers are JSON, or a load balancer's HTML page with ``html_5xx``. ``drip_interval`` sends an
  answer's headers at once and its body one byte at a time. ``echo_secrets`` makes error answers quote the
  request's credentials (for testing a client's masking); the request log and counters never hold secrets.
* ``drop_after_write_rate``: the write is applied, the answer's head is sent, then the connection is closed
  without its body; the client gets ``httpx.RemoteProtocolError`` (no answer), as when HubSpot's edge drops
  a connection mid-answer.
* A request the client gave up on (timeout) is still processed when its injected latency ends, as on a real
  server. Stopping the fake cancels answers still pending (and drips in progress).
"""

from __future__ import annotations

from airflow_provider_hubcomm.testing._config import FakeConfig
from airflow_provider_hubcomm.testing._fake import FakeHubSpot

__all__ = ["FakeConfig", "FakeHubSpot"]
