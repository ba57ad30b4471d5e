"""pytest plugin (entry point ``hubcomm``): the ``hubcomm_fake`` and ``hubcomm_fake_factory`` fixtures.

Loaded in every pytest session of anyone who installs the provider, so it imports nothing but pytest at
module level; the server is imported when a fixture is first used.

.. code-block:: python

    def test_my_dag(hubcomm_fake, monkeypatch):
        monkeypatch.setenv("AIRFLOW_CONN_HUBCOMM_DEFAULT", hubcomm_fake.connection_json())
        ...
        assert hubcomm_fake.snapshot()[("a@example.com", 101)] == "UNSUBSCRIBED"


    def test_rate_limited(hubcomm_fake_factory):
        fake = hubcomm_fake_factory(requests_per_window=10, error_rate_5xx=0.1, seed=3)
        ...
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

import pytest

if TYPE_CHECKING:
    from collections.abc import Iterator

    from airflow_provider_hubcomm.testing import FakeHubSpot

__all__ = ["FakeFactory", "hubcomm_fake", "hubcomm_fake_factory"]


class FakeFactory(Protocol):
    """Type of ``hubcomm_fake_factory``: call it with knobs to get a started fake."""

    def __call__(self, **knobs: Any) -> FakeHubSpot:
        """Start a fake with ``knobs``; it is stopped at the end of the test."""


@pytest.fixture
def hubcomm_fake_factory() -> Iterator[FakeFactory]:
    """Return a callable ``(**knobs) -> FakeHubSpot``; every fake it starts is stopped at teardown."""
    from airflow_provider_hubcomm.testing import FakeHubSpot

    started: list[FakeHubSpot] = []

    def make(**knobs: Any) -> FakeHubSpot:
        fake = FakeHubSpot(**knobs).start()
        started.append(fake)
        return fake

    try:
        yield make
    finally:
        for fake in reversed(started):
            fake.stop()


@pytest.fixture
def hubcomm_fake(hubcomm_fake_factory: FakeFactory) -> FakeHubSpot:
    """Return a started :class:`~airflow_provider_hubcomm.testing.FakeHubSpot` with default knobs."""
    return hubcomm_fake_factory()
