"""One writer per sync state: the lease a run takes before it reads the state, and when it may be taken over."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_hubcomm import workdirs
from airflow_provider_hubcomm.exceptions import HubCommStateInUseError
from airflow_provider_hubcomm.sync import lease as lease_module
from airflow_provider_hubcomm.sync import state as state_module
from airflow_provider_hubcomm.sync.lease import LEASE_NAME
from tests.batch._mini import MiniHubSpot, rows, run


def _foreign_lease(folder: Path, **fields: Any) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    lease = {
        "owner": "someone-else",
        "task": "nightly/sync/scheduled__2026-12-01",
        "host": "worker-7",
        "pid": 4242,
        "heartbeat": time.time(),
        "heartbeat_at": "2026-12-02T03:00:00+00:00",
        **fields,
    }
    (folder / LEASE_NAME).write_text(json.dumps(lease), encoding="utf-8")


def test_a_second_writer_is_refused_before_anything_is_sent(tmp_path: Path) -> None:
    api = MiniHubSpot()
    _foreign_lease(tmp_path / "state")
    with pytest.raises(HubCommStateInUseError) as caught:
        run(api, rows(20), tmp_path / "out", state_path=str(tmp_path / "state"))
    message = str(caught.value)
    assert "nightly/sync/scheduled__2026-12-01" in message
    assert "max_active_runs=1" in message
    assert api.writes == []
    assert api.calls == 0
    holder = json.loads((tmp_path / "state" / LEASE_NAME).read_text())
    assert holder["owner"] == "someone-else"  # the refused run left the holder's lease alone


def test_a_dry_run_reads_without_a_lease(tmp_path: Path) -> None:
    _foreign_lease(tmp_path / "state")
    summary = run(MiniHubSpot(), rows(20), tmp_path / "out", state_path=str(tmp_path / "state"), dry_run=True)
    assert summary["skipped_by_reason"]["dry_run"] == 20


@pytest.mark.parametrize(
    "holder",
    [
        {"heartbeat": time.time() - lease_module.LEASE_SECONDS - 5},  # stale
        {"host": socket.gethostname(), "pid": -1},  # placeholder pid, replaced by a process that is gone
        # a live pid that another process (started at another time) now uses: the holder is gone
        {"host": socket.gethostname(), "pid": os.getpid(), "started": "1", "task": None},
    ],
    ids=["stale-heartbeat", "dead-process-on-this-host", "reused-pid-on-this-host"],
)
def test_a_lease_left_behind_is_taken_over(tmp_path: Path, holder: dict[str, Any]) -> None:
    if holder.get("pid") == -1:
        gone = subprocess.Popen([sys.executable, "-c", "pass"])
        gone.wait()
        holder = {**holder, "pid": gone.pid}
    _foreign_lease(tmp_path / "state", **holder)
    summary = run(MiniHubSpot(), rows(20), tmp_path / "out", state_path=str(tmp_path / "state"))
    assert summary["written"] == 20
    assert not (tmp_path / "state" / LEASE_NAME).exists()  # released at the end


def test_a_gone_pid_of_another_pid_namespace_keeps_its_lease(tmp_path: Path) -> None:
    """Another container with this host name: its process ids cannot be checked from here."""
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    _foreign_lease(tmp_path / "state", host=socket.gethostname(), pid=gone.pid, pid_namespace="pid:[1]")
    with pytest.raises(HubCommStateInUseError):
        run(MiniHubSpot(), rows(5), tmp_path / "out", state_path=str(tmp_path / "state"))


def test_a_live_process_on_this_host_keeps_its_lease(tmp_path: Path) -> None:
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        started = workdirs.process_start(holder.pid)
        _foreign_lease(tmp_path / "state", host=socket.gethostname(), pid=holder.pid, started=started)
        with pytest.raises(HubCommStateInUseError):
            run(MiniHubSpot(), rows(5), tmp_path / "out", state_path=str(tmp_path / "state"))
    finally:
        holder.kill()
        holder.wait()


def test_the_lease_is_held_during_the_run_and_renewed_at_checkpoints(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(lease_module, "LEASE_REFRESH_SECONDS", 0.0)
    monkeypatch.setattr(state_module, "CHECKPOINT_MIN_ROWS", 10)
    seen: list[dict[str, Any]] = []
    real_append = state_module.SyncState.append

    def watching_append(self: state_module.SyncState, lines: list[str]) -> None:
        real_append(self, lines)
        seen.append(json.loads((tmp_path / "state" / LEASE_NAME).read_text()))

    monkeypatch.setattr(state_module.SyncState, "append", watching_append)
    run(MiniHubSpot(), rows(60), tmp_path / "out", state_path=str(tmp_path / "state"), batch_size=10)
    assert len(seen) >= 3
    assert {lease["owner"] for lease in seen} == {seen[0]["owner"]}
    assert seen[0]["pid"] == os.getpid()
    assert seen[0]["started"] == workdirs.process_start()
    assert seen[0]["pid_namespace"] == workdirs.process_space()
    assert [lease["heartbeat"] for lease in seen] == sorted(lease["heartbeat"] for lease in seen)
    assert seen[-1]["heartbeat"] > seen[0]["heartbeat"]
    assert not (tmp_path / "state" / LEASE_NAME).exists()


def test_an_earlier_try_of_the_same_task_is_taken_over(tmp_path: Path) -> None:
    """Airflow's retry of a killed try (another process, maybe another host) must not be locked out."""
    _foreign_lease(tmp_path / "state", task="nightly/sync/manual__1")
    summary = run(
        MiniHubSpot(),
        rows(5),
        tmp_path / "out",
        state_path=str(tmp_path / "state"),
        task_run=("nightly", "sync", "manual__1", 2),
    )
    assert summary["written"] == 5
    _foreign_lease(tmp_path / "state", task="nightly/sync/manual__1")
    with pytest.raises(HubCommStateInUseError):  # another run of the DAG is another writer
        run(
            MiniHubSpot(),
            rows(5),
            tmp_path / "out2",
            state_path=str(tmp_path / "state"),
            task_run=("nightly", "sync", "manual__2", 1),
        )
