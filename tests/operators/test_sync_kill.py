"""Kill and retry: a sync killed (SIGKILL) midway in its own process, then run again, sends only the rest.

The first run is a real ``dag.test()`` in a child process (``tests/dags/test_ops_sync_kill.py``) against the
bundled fake in this process; the test kills it once the fake has received about half of the rows. No
``finally`` runs in a killed process: what survives is the journal's checkpoints. The retry (``dag.test()``
in this process, as a retry on another worker) must send only the rows no checkpoint recorded; every row
must end written exactly once over the two runs; HubSpot and the state must both equal the input.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import duckdb
import pytest

from tests.conftest import ROOT, TEST_DAGS

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("airflow_db")]

ROWS = 3000
BATCH = 25  # the DAG's batch_size
STEP = 200  # the checkpoint step, rows
CHILD_TIMEOUT = 180.0  # a loaded 2-core machine takes 40 s to start a DAG run in a fresh process


def _input(path: Path) -> dict[tuple[str, int], str]:
    rows = {(f"kill{i}@example.com", 101 + i % 3): ("UNSUBSCRIBED" if i % 5 else "NOT_SPECIFIED") for i in range(ROWS)}
    with path.open("w", newline="", encoding="utf-8") as fh:
        out = csv.writer(fh)
        out.writerow(["subscriberIdString", "subscriptionId", "statusState"])
        out.writerows((sub, sid, state) for (sub, sid), state in rows.items())
    return rows


def _child(fake: Any, conf: dict[str, str]) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "AIRFLOW_CONN_HUBCOMM_DEFAULT": fake.connection_json(requests_per_10s=10_000, max_retries=2),
        "HUBCOMM_TEST_CHECKPOINT_ROWS": str(STEP),
        "TMPDIR": conf["tmp"],  # the killed run's work folder (e-mail addresses) goes with the test's
    }
    # output to a file, not a pipe: nobody drains a pipe while waiting to kill, and a full pipe blocks the child
    with (Path(conf["tmp"]) / "child.log").open("w") as log:
        return subprocess.Popen(
            [sys.executable, str(TEST_DAGS / "test_ops_sync_kill.py"), json.dumps(conf)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )


def _rows_received(fake: Any) -> int:
    return sum(e["n_inputs"] or 0 for e in fake.request_log if e["path"].endswith("/statuses/batch/write"))


def _journal_keys(state: Path) -> set[tuple[str, int]]:
    """Keys the journal's complete segments record as confirmed."""
    segments = sorted(str(p) for p in (state / "journal").glob("*.jsonl"))
    if not segments:
        return set()
    found = duckdb.execute("SELECT k, s FROM read_json(?, format='newline_delimited') WHERE ok", [segments]).fetchall()
    return {(k, int(s)) for k, s in found}


def _retry(fake: Any, conf: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> str:
    """Run the DAG again, in this process (as Airflow's retry would, on any worker); return its state."""
    import importlib.util

    from airflow_provider_hubcomm.sync import state

    monkeypatch.setattr(state, "CHECKPOINT_ROWS", STEP)
    monkeypatch.setenv("AIRFLOW_CONN_HUBCOMM_DEFAULT", fake.connection_json(requests_per_10s=10_000, max_retries=2))
    spec = importlib.util.spec_from_file_location(
        f"sync_kill_{time.monotonic_ns()}", TEST_DAGS / "test_ops_sync_kill.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return str(module.dag.test(run_conf=conf).state)


def test_a_killed_sync_retried_sends_only_what_was_not_confirmed(
    hubcomm_fake_factory: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = hubcomm_fake_factory(latency=0.02)  # ~120 write requests: a few seconds to kill in
    rows = _input(tmp_path / "in.csv")
    state = tmp_path / "state"
    conf = {"path": str(tmp_path / "in.csv"), "state": str(state), "out": str(tmp_path / "out")}
    (tmp_path / "tmp").mkdir()
    conf["tmp"] = str(tmp_path / "tmp")

    child = _child(fake, conf)
    deadline = time.monotonic() + CHILD_TIMEOUT
    try:
        while _rows_received(fake) < ROWS // 2:
            if child.poll() is not None:
                output = (tmp_path / "tmp" / "child.log").read_text()[-3000:]
                pytest.fail(f"the first run ended before it was killed:\n{output}")
            assert time.monotonic() < deadline, "the first run did not reach half of the rows in time"
            time.sleep(0.02)
        os.killpg(child.pid, signal.SIGKILL)
    finally:
        child.wait(10)
    assert child.returncode == -signal.SIGKILL
    sent_first = _rows_received(fake)
    assert ROWS // 2 <= sent_first < ROWS
    confirmed = _journal_keys(state)
    assert not (state / "state.parquet").exists()  # never compacted: the kill left checkpoints only
    assert not (state / "log").exists()  # and no log: the run never finished
    assert 0 < len(confirmed) <= sent_first
    assert sent_first - len(confirmed) <= STEP + BATCH  # what the killed run sent beyond its last checkpoint

    fake.reset_counters()
    assert _retry(fake, conf, monkeypatch) == "success"
    sent_again = _rows_received(fake)

    (log_file,) = (state / "log").glob("date=*/*.parquet")
    log = duckdb.execute(
        "SELECT lower(subscriber), subscription_id, outcome, reason, run_id, try_number, dag_id FROM read_parquet(?)",
        [str(log_file)],
    ).fetchall()
    assert len(log) == ROWS
    assert {(dag, t) for *_, run_id, t, dag in log if run_id} == {("test_ops_sync_kill", 1)}
    written = {(k, s) for k, s, outcome, *_ in log if outcome == "written"}
    unchanged = {(k, s) for k, s, outcome, reason, *_ in log if (outcome, reason) == ("skipped", "unchanged")}
    assert unchanged == confirmed  # what the killed run confirmed is not sent again
    assert written | unchanged == set(rows)  # every row ends written exactly once over the two runs
    assert not written & unchanged
    assert sent_again == len(written) == ROWS - len(confirmed)
    assert sent_first + sent_again - ROWS <= STEP + BATCH  # rows sent twice: one checkpoint step + one chunk

    assert {key: fake.snapshot()[key] for key in rows} == rows  # HubSpot holds the input
    final = duckdb.execute("SELECT k, s, st, ok FROM read_parquet(?)", [str(state / "state.parquet")]).fetchall()
    assert {(k, int(s)): st for k, s, st, _ in final} == rows  # and so does the state, all confirmed
    assert all(ok for *_, ok in final)
    assert list((state / "journal").glob("*.jsonl")) == []
