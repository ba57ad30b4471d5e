"""Every example DAG parses without import errors, documents itself, and follows the example conventions."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.examples.conftest import EXAMPLES

EXAMPLE_FILES = sorted(p for p in EXAMPLES.glob("*.py") if not p.name.startswith("_"))
EXPECTED_DAGS = {
    "consent_sync_from_warehouse",
    "gdpr_unsubscribe_request",
    "gdpr_bulk_unsubscribe",
    "large_consent_sync",
}


def _dagbag_class():
    try:
        from airflow.dag_processing.dagbag import DagBag  # Airflow >= 3.1
    except ImportError:  # pragma: no cover - older Airflow 3
        from airflow.models.dagbag import DagBag
    return DagBag


@pytest.fixture(scope="module")
def dagbag():
    return _dagbag_class()(dag_folder=str(EXAMPLES), known_pools={"default_pool", "hubspot_api"})


def test_no_import_errors(dagbag):
    assert dagbag.import_errors == {}


def test_expected_dags(dagbag):
    assert set(dagbag.dag_ids) == EXPECTED_DAGS
    assert {Path(dag.fileloc).name for dag in dagbag.dags.values()} == {p.name for p in EXAMPLE_FILES}


@pytest.mark.parametrize("dag_id", sorted(EXPECTED_DAGS))
def test_conventions(dagbag, dag_id):
    dag = dagbag.dags[dag_id]
    assert "What this example shows" in (dag.doc_md or "")
    assert dag.schedule is None
    assert "example" in dag.tags


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=lambda p: p.name)
def test_module_docstring_and_markers(path):
    source = path.read_text()
    assert ast.get_docstring(ast.parse(source))
    starts = source.count("# [START ")
    assert starts > 0
    assert starts == source.count("# [END ")


def test_pool_is_declared(dagbag):
    """The large sync's HubSpot tasks share the ``hubspot_api`` pool (create it with ``airflow pools set``)."""
    dag = dagbag.dags["large_consent_sync"]
    assert dag.get_task("write_partition").pool == "hubspot_api"
    assert dag.get_task("verify_partition").pool == "hubspot_api"


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=lambda p: p.name)
def test_no_io_at_parse_time(path, monkeypatch, tmp_path):
    """Parsing reads no connection and opens no file: the warehouse and HubSpot are touched only when tasks run."""
    import builtins
    import sqlite3

    from airflow.sdk import BaseHook

    def forbidden(*args, **kwargs):
        raise AssertionError(f"I/O at parse time: {args!r}")

    real_open = builtins.open

    def guarded_open(file, *args, **kwargs):
        if Path(str(file)).resolve() != path.resolve() and str(file).endswith((".csv", ".db", ".json", ".jsonl")):
            forbidden(file)
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(BaseHook, "get_connection", classmethod(lambda cls, conn_id: forbidden(conn_id)))
    monkeypatch.setattr(builtins, "open", guarded_open)
    monkeypatch.setattr(sqlite3, "connect", forbidden)
    monkeypatch.setenv("AIRFLOW_CONN_WAREHOUSE_DEFAULT", '{"conn_type": "sqlite", "host": "/nonexistent/x.db"}')
    bag = _dagbag_class()(dag_folder=str(path), known_pools={"default_pool", "hubspot_api"})
    assert bag.import_errors == {}
    assert bag.dags, f"{path.name} defines no DAG"
    assert {Path(dag.fileloc).name for dag in bag.dags.values()} == {path.name}
