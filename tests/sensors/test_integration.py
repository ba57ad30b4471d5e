"""``BatchStatusSensor`` in real ``dag.test()`` runs against the bundled fake HubSpot."""

from __future__ import annotations

import importlib.util
import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import TEST_DAGS

pytestmark = pytest.mark.integration

DAG_FILE = TEST_DAGS / "test_sensor_batch_status.py"
#: Delayed batches: visible once the sensor has read them once (its first check meets PENDING, a later one the
#: applied state), never by time: a timed delay raced the first check on a loaded 2-core machine (8 s was once
#: not enough with three suites running). The long delay only bounds a test that would otherwise hang.
DELAYED = {"batch_mode": "delayed", "batch_delay": 300.0, "batch_release_after_reads": 1}


class Run:
    """Outcome of one DAG run: task states and tries, XComs, TI state transitions of the sensor."""

    def __init__(self, dr: Any, transitions: list[str], seconds: float) -> None:
        from airflow.models.xcom import XComModel
        from airflow.utils.session import create_session

        self.seconds = seconds
        self.transitions = transitions
        with create_session() as session:
            tis = dr.get_task_instances(session=session)
            self.states = {ti.task_id: ti.state for ti in tis}
            self.tries = {ti.task_id: ti.try_number for ti in tis}
            rows = session.query(XComModel).filter_by(dag_id=dr.dag_id, run_id=dr.run_id, key="return_value").all()
            self.xcom = {row.task_id: _value(row.value) for row in rows}


def _value(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str | bytes) else value


@pytest.fixture
def run_dag(airflow_db, monkeypatch):
    """Return ``run(fake, **settings) -> Run``: import the DAG file afresh with the settings and dag.test() it."""
    from airflow.models.taskinstance import TaskInstance

    transitions: list[str] = []
    original = TaskInstance.set_state

    def spy(self, state, *args, **kwargs):
        if self.task_id == "verify":
            transitions.append(str(state))
        return original(self, state, *args, **kwargs)

    monkeypatch.setattr(TaskInstance, "set_state", spy)

    def run(fake: Any, conn_extra: dict[str, Any] | None = None, **settings: Any) -> Run:
        connection = fake.connection_json(max_retries=1, **(conn_extra or {}))
        monkeypatch.setenv("AIRFLOW_CONN_HUBCOMM_DEFAULT", connection)
        monkeypatch.setenv("HUBCOMM_SENSOR_TEST", json.dumps(settings))
        spec = importlib.util.spec_from_file_location(f"sensor_dag_{time.monotonic_ns()}", DAG_FILE)
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        transitions.clear()
        started = time.monotonic()
        dr = module.dag.test()
        return Run(dr, list(transitions), time.monotonic() - started)

    return run


def output(capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> str:
    """Task logs go to stdout or through logging depending on where Airflow routes them."""
    return capfd.readouterr().out + caplog.text


def change_behind_the_back(fake: Any, directory: Path, subscriber: str, subscription: int) -> threading.Thread:
    """When the DAG's ``behind_the_back`` task is ready, set another status in the fake directly."""

    def work() -> None:
        deadline = time.monotonic() + 30
        while not (directory / "ready").exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        fake.set_state(subscriber, subscription, "SUBSCRIBED")
        (directory / "done").touch()

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    return thread


@pytest.mark.parametrize("deferrable", [False, True], ids=["poke", "deferrable"])
@pytest.mark.parametrize("batch_mode", ["immediate", "delayed"])
def test_completes_and_reports_matches(run_dag, hubcomm_fake_factory, deferrable, batch_mode):
    fake = hubcomm_fake_factory(**(DELAYED if batch_mode == "delayed" else {}))
    run = run_dag(fake, deferrable=deferrable, sample_size=10, rows=60)
    assert run.states == {"write": "success", "verify": "success", "report": "success"}
    result = run.xcom["verify"]
    ops = result["operations"]
    if batch_mode == "immediate":
        # 10 sampled rows of COMPLETE operations
        assert (result["rows_verified"], result["rows_matching"], result["pending"]) == (10, 10, 0)
        assert ops["by_status"]["COMPLETE"] == 3
    else:
        # every row of the 3 PENDING operations is read back until applied
        assert (result["rows_verified"], result["rows_matching"], result["pending"]) == (60, 60, 0)
        assert ops["by_status_at_write"]["PENDING"] == 3
        assert ops["by_status"]["COMPLETE"] == 3
        assert ops["verified_complete_by_read_back"] == [0, 1, 2]
        assert result["checks"] >= 2
        assert fake.counters.get("endpoint:batch_read", 0) >= 2  # a check met PENDING, a later one the rows
    assert run.xcom["report"] == {
        "rows_verified": result["rows_verified"],
        "rows_matching": result["rows_matching"],
        "pending": 0,
        "mismatch_count": 0,
    }
    if deferrable and batch_mode == "delayed":
        # The sensor checked once in the worker, deferred, and resumed after the (inline) trigger fired.
        assert "TaskInstanceState.DEFERRED" in run.transitions
    if batch_mode == "immediate":
        assert "TaskInstanceState.DEFERRED" not in run.transitions  # already done: no deferral, no race


@pytest.mark.parametrize("deferrable", [False, True], ids=["poke", "deferrable"])
def test_canceled_fails_at_once_without_retry(run_dag, hubcomm_fake_factory, capfd, caplog, deferrable):
    fake = hubcomm_fake_factory(batch_mode="cancel")
    run = run_dag(fake, deferrable=deferrable, rows=40)
    assert run.states == {"write": "success", "verify": "failed", "report": "success"}
    assert run.tries["verify"] == 1  # retries=1 in the DAG, yet no retry
    assert "TaskInstanceState.DEFERRED" not in run.transitions
    out = output(capfd, caplog)
    assert "BatchCanceledError" in out
    assert "HubSpot answered CANCELED for 2 batch write operation(s) (40 rows" in out


@pytest.mark.parametrize(
    ("deferrable", "soft_fail", "state"),
    [(False, False, "failed"), (True, False, "failed"), (False, True, "skipped"), (True, True, "skipped")],
    ids=["poke", "deferrable", "poke-soft_fail", "deferrable-soft_fail"],
)
def test_timeout_reports_pending_rows(run_dag, hubcomm_fake_factory, capfd, caplog, deferrable, soft_fail, state):
    fake = hubcomm_fake_factory(batch_mode="delayed", batch_delay=60)
    run = run_dag(fake, deferrable=deferrable, soft_fail=soft_fail, timeout=2, rows=40)
    assert run.states == {"write": "success", "verify": state, "report": "success"}
    assert run.tries["verify"] == 1
    assert ("TaskInstanceState.DEFERRED" in run.transitions) is deferrable
    assert "with 40 row(s) still pending" in output(capfd, caplog)
    assert run.xcom["report"] == {"rows_verified": 40, "rows_matching": 0, "pending": 40, "mismatch_count": 0}


@pytest.mark.parametrize("deferrable", [False, True], ids=["poke", "deferrable"])
def test_status_changed_behind_the_runs_back_is_reported(
    run_dag, hubcomm_fake_factory, capfd, caplog, tmp_path, deferrable
):
    fake = hubcomm_fake_factory()
    changer = change_behind_the_back(fake, tmp_path, "user5@example.com", 102)
    run = run_dag(fake, deferrable=deferrable, verify="all", rows=40, handshake_dir=str(tmp_path))
    changer.join(5)
    assert run.states == {"write": "success", "behind_the_back": "success", "verify": "failed", "report": "success"}
    assert run.tries["verify"] == 1
    out = output(capfd, caplog)
    assert ("TaskInstanceState.DEFERRED" in run.transitions) is deferrable  # 1st read in the worker, 2nd in the trigger
    assert "BatchMismatchError" in out
    assert "user5@example.com subscription 102: expected UNSUBSCRIBED, read SUBSCRIBED" in out
    assert run.xcom["report"] == {"rows_verified": 40, "rows_matching": 39, "pending": 0, "mismatch_count": 1}
    assert run.xcom["verify"]["mismatches"] == [
        {
            "subscriber": "user5@example.com",
            "subscription": 102,
            "expected": "UNSUBSCRIBED",
            "actual": "SUBSCRIBED",
            "operation": 0,
            "operationStatus": "COMPLETE",
        }
    ]


def test_reschedule_mode_completes_without_memory_between_pokes(run_dag, hubcomm_fake_factory):
    fake = hubcomm_fake_factory(**DELAYED)
    run = run_dag(fake, mode="reschedule", rows=40)
    assert run.states == {"write": "success", "verify": "success", "report": "success"}
    assert run.tries["verify"] == 1
    assert "TaskInstanceState.UP_FOR_RESCHEDULE" in run.transitions
    result = run.xcom["verify"]
    assert (result["rows_verified"], result["rows_matching"], result["pending"]) == (40, 40, 0)
    assert result["checks"] == 1  # each poke starts again from the summary


@pytest.mark.parametrize("deferrable", [False, True], ids=["poke", "deferrable"])
def test_rows_of_another_brand_are_read_with_their_brand(run_dag, hubcomm_fake_factory, deferrable):
    # Subscription 102 belongs to brand 7: read without businessUnitId=7 its rows are invisible, and the
    # sensor used to wait for them until its timeout.
    subscriptions = [101, {"id": 102, "name": "Brand 7 news", "businessUnitId": 7}, 103]
    fake = hubcomm_fake_factory(subscriptions=subscriptions, **DELAYED)
    run = run_dag(fake, conn_extra={"business_unit_ids": [7]}, deferrable=deferrable, verify="all", rows=40)
    assert run.states == {"write": "success", "verify": "success", "report": "success"}
    result = run.xcom["verify"]
    assert (result["rows_verified"], result["rows_matching"], result["pending"]) == (40, 40, 0)
    assert result["unconfirmed"]["confirmed"] == result["unconfirmed"]["read"] == 40  # all written PENDING
