"""Docs that are true: what the README and docs/ must say (and stop saying), checked against the code."""

from __future__ import annotations

import inspect
import re

import pytest

from tests.docs.snippets import DOC_FILES, ROOT

README = (ROOT / "README.md").read_text(encoding="utf-8")
DOCS = {p.relative_to(ROOT).as_posix(): p.read_text(encoding="utf-8") for p in DOC_FILES}
TEST_SH = (ROOT / "scripts" / "test.sh").read_text(encoding="utf-8")


def _section(text: str, heading: str) -> str:
    """The body of the Markdown section ``heading`` (up to the next heading of the same or a higher level)."""
    level = len(heading.split(" ", 1)[0])
    lines = text.splitlines()
    start = lines.index(heading) + 1
    fenced = False
    for number in range(start, len(lines)):
        line = lines[number]
        if line.lstrip().startswith(("```", "~~~")):
            fenced = not fenced
        elif not fenced and (found := re.match(r"^(#+) ", line)) and len(found[1]) <= level:
            return "\n".join(lines[start:number])
    return "\n".join(lines[start:])


def _init_arguments(cls: type) -> set[str]:
    """Keyword arguments of ``cls`` and of the provider's base classes it derives from."""
    return {
        name
        for klass in cls.__mro__
        if klass.__module__.startswith("airflow_provider_hubcomm") and "__init__" in vars(klass)
        for name, p in inspect.signature(klass.__init__).parameters.items()
        if p.kind is p.KEYWORD_ONLY
    }


def test_readme_newcomer_commands() -> None:
    """The two commands a newcomer runs are under the headings "Quick start" and "Tests"."""
    assert "bash scripts/demo.sh" in _section(README, "## Quick start")
    tests = _section(README, "## Tests")
    assert "bash scripts/test.sh" in tests
    for word in ("apt-get", "system-wide", "root", "HUBCOMM_SKIP_UI=1", "SKIP_OLDEST=1", "PYTEST_ARGS"):
        assert word in tests, word
    assert "exec bash scripts/test.sh" in (ROOT / ".ci" / "run").read_text()


@pytest.mark.parametrize("knob", ["HUBCOMM_SKIP_UI", "SKIP_OLDEST", "PYTEST_ARGS", "AIRFLOW_LATEST", "AIRFLOW_OLDEST"])
def test_documented_knobs_exist(knob: str) -> None:
    """Every knob the README offers is read by scripts/test.sh."""
    assert knob in _section(README, "## Tests")
    assert "${" + knob in TEST_SH


@pytest.mark.parametrize("name", sorted(DOCS))
def test_no_batch_size_1000_advice(name: str) -> None:
    """HubSpot documents no maximum batch size: the docs never tell users to raise batch_size to 1,000."""
    text = DOCS[name]
    assert not re.search(r"batch_size\s*=\s*1[,_]?000\b", text), name
    assert not re.search(r"default 100, max(imum)? 1,?000", text), name
    assert "Raise `batch_size`" not in text, name


@pytest.mark.parametrize("name", sorted(DOCS))
def test_no_endpoint_pinned_to_v4(name: str) -> None:
    """Every endpoint uses the configured API version; no page documents a v4 path."""
    assert "/communication-preferences/v4/" not in DOCS[name], name
    assert "`v4` (batch write" not in DOCS[name], name


def test_connection_fields_documented() -> None:
    """Every connection extra of the form is in docs/connection.md's field table and the README's table."""
    from airflow_provider_hubcomm.get_provider_info import get_provider_info

    (conn_type,) = get_provider_info()["connection-types"]
    extras = set(conn_type["conn-fields"])
    assert {"api_version", "business_unit_ids", "timeout"} <= extras
    fields = _section(DOCS["docs/connection.md"], "## Fields")
    readme = _section(README, "## Connection setup")
    for name in extras:
        assert f"`extra.{name}`" in fields, name
        assert f"`{name}`" in readme, name


def test_tls_section_matches_the_code() -> None:
    """The TLS section no longer says that the schema field downgrades to plain HTTP."""
    tls = _section(DOCS["docs/connection.md"], "## TLS and plain HTTP")
    assert "never changes that" in tls
    assert "It does not warn" not in tls
    assert "logs a warning" in tls


def test_cli_secrets_warning_comes_after_the_masked_ways() -> None:
    text = DOCS["docs/connection.md"]
    setting_up = _section(text, "## Setting it up")
    order = [setting_up.index(h) for h in ("### Environment variable", "### Secrets backend", "### CLI")]
    assert order == sorted(order)
    assert "audit log" in _section(setting_up, "### CLI")
    assert '--conn-extra \'{"auth_type": "oauth"' not in text


def test_operator_and_sensor_arguments_documented() -> None:
    """Every keyword argument of the public operators and the sensor is named on their page."""
    from airflow_provider_hubcomm.operators import (
        BatchUnsubscribeAllOperator,
        BatchWriteStatusesOperator,
        SetStatusOperator,
        UnsubscribeAllOperator,
    )
    from airflow_provider_hubcomm.sensors import BatchStatusSensor

    operators = DOCS["docs/operators.md"]
    for cls in (SetStatusOperator, UnsubscribeAllOperator, BatchWriteStatusesOperator, BatchUnsubscribeAllOperator):
        missing = {a for a in _init_arguments(cls) if f"`{a}`" not in operators}
        assert not missing, f"{cls.__name__}: {sorted(missing)} not in docs/operators.md"
    sensor = DOCS["docs/sensor.md"]
    missing = {a for a in _init_arguments(BatchStatusSensor) if f"`{a}`" not in sensor}
    assert not missing, f"BatchStatusSensor: {sorted(missing)} not in docs/sensor.md"
