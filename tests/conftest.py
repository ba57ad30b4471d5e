"""Test configuration: an isolated Airflow home with SQLite, set before Airflow is imported."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import pytest

_HOME = Path(tempfile.mkdtemp(prefix="hubcomm-airflow-home-"))
_OWNER_PID = os.getpid()


def _remove_home() -> None:
    """Remove the Airflow home when the test process exits; forked children (executors) leave it alone."""
    if os.getpid() == _OWNER_PID:
        shutil.rmtree(_HOME, ignore_errors=True)


# At exit: after every fixture's teardown and pytest's own reporting, so a run leaves no Airflow home behind
# in the temp directory. Subprocesses a test starts must have ended by then.
atexit.register(_remove_home)
ROOT = Path(__file__).resolve().parent.parent
TEST_DAGS = Path(__file__).resolve().parent / "dags"

os.environ["AIRFLOW_HOME"] = str(_HOME)
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__UNIT_TEST_MODE"] = "True"
os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"sqlite:///{_HOME / 'airflow.db'}"
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(TEST_DAGS)
os.environ["AIRFLOW__LOGGING__BASE_LOG_FOLDER"] = str(_HOME / "logs")
os.environ.setdefault("AIRFLOW__CORE__EXECUTOR", "LocalExecutor")


@pytest.fixture(autouse=True)
def _test_temp_dir(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Give each test its own system temp dir, under pytest's base temp (which pytest prunes: 3 sessions kept).

    A run's default output folder (``<temp dir>/hubcomm/<dag>/<run>/<task>``), its spool and a sync state left
    at a default path then stay with the test that made them: no test leaves files (e-mail addresses of test
    data) in the machine's temp dir, and no test reads what an earlier test or session left there.
    """
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path_factory.mktemp("temp", numbered=True)))


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """Create the Airflow metadata database once per session (only tests that run DAGs need it)."""
    from airflow.utils import db

    db.resetdb()
    _reuse_in_process_execution_api()
    return _HOME


def _reuse_in_process_execution_api() -> None:
    """Build ``dag.test()``'s in-process execution API once per session on Airflow 3.2, as 3.3 does.

    Airflow 3.3 (task SDK 1.3) caches it (``supervisor.in_process_api_server`` is an ``lru_cache``); 3.2 builds a
    new FastAPI app for every task it runs, and generating its versioned routes costs seconds of CPU per task
    (6-30 s per task measured on a loaded 2-core machine: the oldest-Airflow suite took 11.5 min against 3.7 min
    for the same tests on 3.3). Caching the same factory function is what 3.3 itself does; nothing else of Airflow
    changes. Users' Airflow is not touched: this runs in the test session only.
    """
    import functools

    from airflow.sdk.execution_time import supervisor

    factory = getattr(supervisor, "in_process_api_server", None)
    if factory is not None and not hasattr(factory, "cache_info"):
        supervisor.in_process_api_server = functools.lru_cache(maxsize=1)(factory)  # type: ignore[attr-defined]
