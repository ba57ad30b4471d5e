"""Incremental sync (``state_path``) in real ``dag.test()`` runs against the bundled fake HubSpot."""

from __future__ import annotations

import csv
import importlib.util
import json
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import TEST_DAGS

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("airflow_db")]

ROWS = 300


def _write_input(path: Path, rows: list[tuple[str, int, str]]) -> str:
    """Write the rows as CSV, or as Parquet (the vectorised validation pass) when the name ends so."""
    if path.suffix == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        columns = list(zip(*rows, strict=True))
        names = ["subscriberIdString", "subscriptionId", "statusState"]
        pq.write_table(pa.table(dict(zip(names, map(list, columns), strict=True))), str(path))
        return str(path)
    with path.open("w", newline="", encoding="utf-8") as fh:
        out = csv.writer(fh)
        out.writerow(["subscriberIdString", "subscriptionId", "statusState"])
        out.writerows(rows)
    return str(path)


def _rows(n: int = ROWS) -> list[tuple[str, int, str]]:
    return [(f"sync{i}@example.com", 101 + i % 3, "UNSUBSCRIBED" if i % 4 else "NOT_SPECIFIED") for i in range(n)]


def _run(fake: Any, monkeypatch: pytest.MonkeyPatch, conf: dict[str, Any], dag: str = "dag") -> tuple[str, Any]:
    """Run one of ``tests/dags/test_ops_sync.py``'s DAGs; return the task's state and its summary."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    monkeypatch.setenv("AIRFLOW_CONN_HUBCOMM_DEFAULT", fake.connection_json(requests_per_10s=10_000, max_retries=2))
    spec = importlib.util.spec_from_file_location(f"sync_{time.monotonic_ns()}", TEST_DAGS / "test_ops_sync.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    dr = getattr(module, dag).test(run_conf=conf)
    with create_session() as session:
        (ti,) = dr.get_task_instances(session=session)
        rows = session.query(XComModel).filter_by(dag_id=dr.dag_id, run_id=dr.run_id).all()
        values = {row.key: row.value for row in rows}
    value = values.get("return_value", values.get("summary"))
    return str(ti.state), json.loads(value) if isinstance(value, str | bytes) else value


def _sent(fake: Any) -> int:
    """Rows the fake received in batch writes since its counters were reset."""
    return sum(e["n_inputs"] or 0 for e in fake.request_log if e["path"].endswith("/statuses/batch/write"))


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_sync_sends_only_what_changed_and_the_guard_still_holds(
    hubcomm_fake: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, fmt: str
) -> None:
    rows = _rows()
    conf = {"path": _write_input(tmp_path / f"in.{fmt}", rows), "state": str(tmp_path / "state"), "out": str(tmp_path)}
    state, first = _run(hubcomm_fake, monkeypatch, conf)
    assert (state, first["written"], first["state"]["unchanged"]) == ("success", ROWS, 0)
    assert (tmp_path / "state" / "state.parquet").exists()

    hubcomm_fake.reset_counters()
    state, again = _run(hubcomm_fake, monkeypatch, conf)
    assert (state, again["written"], again["unchanged"], again["requests"]) == ("success", 0, ROWS, 0)
    assert hubcomm_fake.request_log == []  # no request at all, not even a token or the definitions

    hubcomm_fake.set_state("sync5@example.com", 103, "UNSUBSCRIBED")  # the contact unsubscribes in HubSpot
    rows[5] = ("sync5@example.com", 103, "SUBSCRIBED")  # and the warehouse, stale, says subscribed
    rows[6] = ("sync6@example.com", 101, "NOT_SPECIFIED")
    rows.append(("new@example.com", 102, "UNSUBSCRIBED"))
    rows.append(("SYNC7@example.com", 102, "UNSUBSCRIBED"))  # the same key as row 7 in another case: the last wins
    conf["path"] = _write_input(tmp_path / f"in2.{fmt}", rows)
    hubcomm_fake.reset_counters()
    state, third = _run(hubcomm_fake, monkeypatch, conf)
    assert state == "success"
    # Row 8 (sync7, 102) was UNSUBSCRIBED already: its later duplicate is unchanged, row 8 superseded.
    assert (third["unchanged"], third["written"], third["skipped_by_reason"]["resubscribe_not_allowed"]) == (
        ROWS - 2,
        2,
        1,
    )
    assert third["skipped_by_reason"]["duplicate"] == 1
    assert _sent(hubcomm_fake) == 2
    assert hubcomm_fake.snapshot()[("sync5@example.com", 103)] == "UNSUBSCRIBED"


def test_a_run_stopped_midway_resumes_where_it_was_confirmed(
    hubcomm_fake_factory: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The account's daily limit stops the first run midway (the task fails); the next day's run sends the rest."""
    fake = hubcomm_fake_factory(daily_limit=4)  # the token is not an API request: definitions + 3 writes
    conf = {"path": _write_input(tmp_path / "in.csv", _rows()), "state": str(tmp_path / "state"), "out": str(tmp_path)}
    state, first = _run(fake, monkeypatch, conf)
    assert state == "failed"
    assert 0 < first["written"] < ROWS
    sent_first = _sent(fake)
    fake.new_day()
    fake.reset_counters()
    state, retry = _run(fake, monkeypatch, conf)
    assert (state, retry["unchanged"], retry["written"]) == ("success", first["written"], ROWS - first["written"])
    assert sent_first + _sent(fake) - ROWS <= 50  # rows sent twice: at most the chunk that met the limit


def test_state_on_object_storage_and_full_resync(
    hubcomm_fake: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("HUBCOMM_TEST_SYNC_STATE", f"file://{tmp_path / 'remote' / 'state'}")
    conf = {"path": _write_input(tmp_path / "in.csv", _rows()), "out": str(tmp_path)}
    state, first = _run(hubcomm_fake, monkeypatch, conf, "storage_dag")
    assert (state, first["written"]) == ("success", ROWS)
    assert first["state"]["path"] == f"file://{tmp_path / 'remote' / 'state'}"
    assert (tmp_path / "remote" / "state" / "state.parquet").exists()
    state, again = _run(hubcomm_fake, monkeypatch, conf, "storage_dag")
    assert (state, again["unchanged"]) == ("success", ROWS)

    conf["state"] = f"file://{tmp_path / 'remote' / 'state'}"
    conf["path"] = _write_input(tmp_path / "half.csv", _rows(ROWS // 2))
    hubcomm_fake.reset_counters()
    state, resync = _run(hubcomm_fake, monkeypatch, conf, "resync_dag")
    assert (state, resync["written"], resync["unchanged"], resync["state"]["resync"]) == ("success", ROWS // 2, 0, True)
    assert _sent(hubcomm_fake) == ROWS // 2
    conf["path"] = _write_input(tmp_path / "all.csv", _rows())
    state, after = _run(hubcomm_fake, monkeypatch, conf)  # the rebuilt state holds the half only
    assert (state, after["unchanged"], after["written"]) == ("success", ROWS // 2, ROWS - ROWS // 2)
