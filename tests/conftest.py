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


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """Create the Airflow metadata database once per session (only tests that run DAGs need it)."""
    from airflow.utils import db

    db.resetdb()
    return _HOME
