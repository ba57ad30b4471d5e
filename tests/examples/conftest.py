"""Fixtures for the example DAG tests: dags_examples/ as the dags folder, a seeded warehouse, the fake HubSpot."""

from __future__ import annotations

import importlib.util
import json
import sqlite3
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.conftest import ROOT

EXAMPLES = ROOT / "dags_examples"
SEED_SCRIPT = ROOT / "scripts" / "seed_warehouse.py"
STATUSES = ("SUBSCRIBED", "UNSUBSCRIBED", "NOT_SPECIFIED")
LEGAL_BASES = (
    "CONSENT_WITH_NOTICE",
    "LEGITIMATE_INTEREST_CLIENT",
    "LEGITIMATE_INTEREST_OTHER",
    "LEGITIMATE_INTEREST_PQL",
    "NON_GDPR",
    "PERFORMANCE_OF_CONTRACT",
    "PROCESS_AND_STORE",
)
#: The fake's rate budget in these tests: generous, so a run takes seconds, but present (headers, limiter).
TEST_RATE = 1000


def load_module(path: Path, name: str) -> ModuleType:
    """Import a file that is not in a package (an example DAG, the seed script), once per session."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def load_example(stem: str) -> ModuleType:
    """Import an example DAG afresh for each test: its module reads the environment when it is imported.

    ``large_consent_sync`` fixes its sync state's folder (``STATE_PATH``, from ``HUBCOMM_WORK_DIR``) at import;
    a module cached from a test without ``examples_env`` pointed a later ``dag.test()`` at the default folder and
    its state of an earlier session (found by a run in random order).
    """
    name = f"hubcomm_example_{stem}"
    sys.modules.pop(name, None)
    return load_module(EXAMPLES / f"{stem}.py", name)


@pytest.fixture(scope="session")
def seed_module() -> ModuleType:
    return load_module(SEED_SCRIPT, "hubcomm_seed_warehouse")


@pytest.fixture
def examples_env(airflow_db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Make dags_examples/ the dags folder (``dag.test()`` syncs the DAG from it) and route run files to tmp_path.

    ``dag.test()`` in Airflow 3.3 only runs a DAG that its dags-folder bundle contains; the bundle's path is
    ``airflow.settings.DAGS_FOLDER``, read when the bundle is built, so patching it (and the env var, for
    anything reading the config) for the test is enough.
    """
    from airflow import settings

    monkeypatch.setattr(settings, "DAGS_FOLDER", str(EXAMPLES))
    monkeypatch.setenv("AIRFLOW__CORE__DAGS_FOLDER", str(EXAMPLES))
    monkeypatch.setenv("HUBCOMM_WORK_DIR", str(tmp_path / "work"))
    monkeypatch.setenv("HUBCOMM_REPORT_DIR", str(tmp_path / "reports"))
    return tmp_path


def use_warehouse(monkeypatch: pytest.MonkeyPatch, db: Path) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_WAREHOUSE_DEFAULT", json.dumps({"conn_type": "sqlite", "host": str(db)}))


def use_fake(monkeypatch: pytest.MonkeyPatch, fake: Any, **extra: Any) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_HUBCOMM_DEFAULT", fake.connection_json(**extra))


def xcoms(dr: Any) -> dict[str, Any]:
    """Return ``{task_id or (task_id, map_index): return_value}`` of a finished run."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    out: dict[Any, Any] = {}
    with create_session() as session:
        rows = session.query(XComModel).filter_by(dag_id=dr.dag_id, run_id=dr.run_id, key="return_value").all()
        for row in rows:
            value = XComModel.deserialize_value(row)
            out[row.task_id if row.map_index < 0 else (row.task_id, row.map_index)] = value
    return out


def task_states(dr: Any) -> dict[Any, str]:
    from airflow.utils.session import create_session

    with create_session() as session:
        return {
            (ti.task_id if ti.map_index < 0 else (ti.task_id, ti.map_index)): str(ti.state)
            for ti in dr.get_task_instances(session=session)
        }


def _valid(row: tuple[Any, ...]) -> tuple[str, int, str, bool] | None:
    """Independent re-statement of the input rules: (email, subscription, status, has legal basis), or None."""
    from airflow_provider_hubcomm.models import is_valid_email

    email, sid, status, basis, explanation = row
    if not isinstance(email, str) or not is_valid_email(email.strip()):
        return None
    if not isinstance(sid, int) or isinstance(sid, bool) or sid <= 0:
        return None
    if not isinstance(status, str) or status.strip().upper() not in STATUSES:
        return None
    if (basis is None) != (explanation is None):
        return None
    if basis is not None and (basis.strip().upper() not in LEGAL_BASES or not explanation):
        return None
    return email.strip(), sid, status.strip().upper(), basis is not None


class Expected:
    """What a sync of ``table`` must do, computed from the warehouse alone (not from the provider's code).

    Valid rows: last one (by ``updated_at``, ``id``) wins per (lower-cased e-mail, subscription). A row of a
    subscription the account does not define is skipped ``unknown_subscription`` before any write (the
    definitions preflight; duplicates of it are duplicates first). Against HubSpot's state before the run
    (``before``; a status never set reads ``NOT_SPECIFIED``): the same status is ``unchanged``; ``SUBSCRIBED``
    over ``UNSUBSCRIBED`` is ``resubscribe_not_allowed``; with ``legal_basis_required`` (an account with
    GDPR settings on) a write without a legal basis fails; the rest is written.
    """

    def __init__(
        self,
        db: Path,
        table: str,
        subscriptions: set[int],
        before: dict[tuple[str, int], str] | None = None,
        *,
        legal_basis_required: bool = False,
    ) -> None:
        before = before or {}
        with sqlite3.connect(db) as conn:
            rows = conn.execute(
                "SELECT email, subscription_id, consent_status, legal_basis, legal_basis_explanation "
                f"FROM {table} ORDER BY updated_at, id"
            ).fetchall()
        conn.close()
        self.rows_read = len(rows)
        valid = [v for v in map(_valid, rows) if v is not None]
        self.invalid = self.rows_read - len(valid)
        desired: dict[tuple[str, int], str] = {}
        basis: dict[tuple[str, int], bool] = {}
        for email, sid, status, has_basis in valid:
            desired[(email.lower(), sid)] = status
            basis[(email.lower(), sid)] = has_basis
        self.duplicate = len(valid) - len(desired)
        self.unchanged = self.resubscribe = self.written = self.failed = self.unknown = 0
        self.final = dict(before)
        for key, status in desired.items():
            current = before.get(key, "NOT_SPECIFIED")
            if key[1] not in subscriptions:
                self.unknown += 1
            elif status == current:
                self.unchanged += 1
            elif status == "SUBSCRIBED" and current == "UNSUBSCRIBED":
                self.resubscribe += 1
            elif legal_basis_required and not basis[key]:
                self.failed += 1
            else:
                self.written += 1
                self.final[key] = status
        self.desired = desired
        self.skipped = self.invalid + self.duplicate + self.unchanged + self.resubscribe + self.unknown

    def final_state_mismatches(self, snapshot: dict[tuple[str, int], str]) -> dict[tuple[str, int], tuple[str, str]]:
        """Keys whose status in the fake differs from the expected final state (never set = NOT_SPECIFIED)."""
        keys = set(self.final) | set(snapshot)
        return {
            k: (self.final.get(k, "NOT_SPECIFIED"), snapshot.get(k, "NOT_SPECIFIED"))
            for k in keys
            if self.final.get(k, "NOT_SPECIFIED") != snapshot.get(k, "NOT_SPECIFIED")
        }

    def check_summary(self, summary: dict[str, Any]) -> None:
        assert summary["rows_read"] == self.rows_read
        assert summary["written"] + summary["failed"] + summary["skipped"] == summary["rows_read"]
        assert summary["skipped_by_reason"]["invalid"] == self.invalid
        assert summary["skipped_by_reason"]["duplicate"] == self.duplicate
        assert summary["skipped_by_reason"]["unchanged"] == self.unchanged
        assert summary["skipped_by_reason"]["resubscribe_not_allowed"] == self.resubscribe
        assert summary["skipped_by_reason"].get("unknown_subscription", 0) == self.unknown
        assert summary["unchanged"] == self.unchanged
        assert (summary["written"], summary["failed"], summary["skipped"]) == (
            self.written,
            self.failed,
            self.skipped,
        )
