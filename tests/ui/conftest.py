"""Registers the ``ui`` marker (``--strict-markers`` is on) for the browser check of the connection form."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "ui: drives the Airflow UI in headless Chromium (needs chromium, chromium-driver, selenium)"
    )
