"""The ``hubcomm`` connection form in a real browser (headless Chromium), as a pytest test.

Skipped unless the system Chromium, its chromedriver and Selenium are installed. Screenshots go to a
temporary directory; ``scripts/ui_check.sh`` is the way to refresh the ones in ``docs/img``.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from .ui_check import CHROMEDRIVER, CHROMIUM, run

pytestmark = [
    pytest.mark.ui,
    pytest.mark.slow,
    pytest.mark.skipif(
        not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()),
        reason="needs the Debian chromium and chromium-driver packages",
    ),
    pytest.mark.skipif(importlib.util.find_spec("selenium") is None, reason="needs selenium"),
]


def test_connection_form_in_browser(tmp_path: Path) -> None:
    report = run(tmp_path / "img")
    print(report.summary())
    assert report.ok, "\n".join(report.failed)
    for name in ("connection-form", "connection-form-extra", "connection-test-success", "connection-test-bad-token"):
        assert 0 < (tmp_path / "img" / f"{name}.png").stat().st_size < 300_000
