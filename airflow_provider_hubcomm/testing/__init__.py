"""A HubSpot-compatible fake of the Communication Preferences API, for tests, demos and benchmarks.

Standard library only (asyncio, with uvloop when installed): importing it pulls in neither Airflow, httpx
nor pydantic. Start one with ``with FakeHubSpot(**knobs) as fake:``; point a ``hubcomm`` connection at
``fake.url`` (``fake.connection_json()``). The pytest plugin offers it as the ``hubcomm_fake`` fixture, and
``hubcomm-fake`` / ``python -m airflow_provider_hubcomm.testing`` runs it as a standalone server.
"""

from __future__ import annotations

from airflow_provider_hubcomm.testing._config import FakeConfig
from airflow_provider_hubcomm.testing._fake import FakeHubSpot

__all__ = ["FakeConfig", "FakeHubSpot"]
