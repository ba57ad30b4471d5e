"""A run's work folder is named after its owner, and folders of owners that are gone are removed.

Real processes, no mocks: a child process makes a folder and is SIGKILLed (or exits and stays a zombie, or keeps
running), then this process creates its own folder and the sweep runs.
"""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from airflow_provider_hubcomm import workdirs

PREFIX = "hubcomm-spool-"

CHILD = textwrap.dedent(
    """
    import sys, time
    from airflow_provider_hubcomm.workdirs import private_folder
    folder = private_folder(sys.argv[1], sys.argv[2])
    (folder / "rows.parquet").write_text("alice@example.com")
    print(folder, flush=True)
    if sys.argv[3] == "wait":
        time.sleep(120)
    """
)


def child(tmp_path: Path, mode: str) -> tuple[subprocess.Popen[str], Path]:
    """Start a process that makes a work folder in ``tmp_path``; return it and its folder once made."""
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, PREFIX, str(tmp_path), mode], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    assert line, "the child made no folder"
    return proc, Path(line)


def test_folder_is_private_and_named_after_its_owner(tmp_path: Path) -> None:
    folder = workdirs.private_folder(PREFIX, str(tmp_path))
    assert folder.parent == tmp_path
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    host, pid, start, _ = folder.name[len(PREFIX) :].split("-")
    assert host == workdirs._host()
    assert int(pid) == os.getpid()
    if Path("/proc/self/stat").exists():
        assert int(start) > 0


def test_killed_owner_folder_is_removed_by_the_next_run(tmp_path: Path) -> None:
    proc, left = child(tmp_path, "wait")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert (left / "rows.parquet").exists()  # the kill left it behind

    mine = workdirs.private_folder(PREFIX, str(tmp_path))

    assert not left.exists()
    assert sorted(tmp_path.iterdir()) == [mine]


def test_zombie_owner_counts_as_gone(tmp_path: Path) -> None:
    if not Path("/proc/self/stat").exists():
        pytest.skip("needs /proc to see a zombie")
    proc, left = child(tmp_path, "exit")
    assert proc.stdout is not None
    proc.stdout.read()  # end of output: the child is exiting; it stays a zombie until it is reaped
    deadline = time.monotonic() + 10
    while (workdirs._stat(proc.pid) or ("?",))[0] != "Z":
        assert time.monotonic() < deadline, "the child did not exit"
        time.sleep(0.01)
    assert workdirs.sweep(PREFIX, str(tmp_path)) == [left]
    proc.wait()


def test_parquet_spool_sweeps_and_removes_its_folder(tmp_path: Path) -> None:
    pytest.importorskip("pyarrow")
    from airflow_provider_hubcomm.batch.parquet import ParquetSpool

    proc, left = child(tmp_path, "wait")
    proc.kill()
    proc.wait()
    spool = ParquetSpool(str(tmp_path))
    assert not left.exists()
    assert spool.folder.name.startswith(f"{PREFIX}{workdirs._host()}-{os.getpid()}-")
    spool.close()
    assert list(tmp_path.iterdir()) == []


def test_live_owner_folder_is_kept(tmp_path: Path) -> None:
    proc, theirs = child(tmp_path, "wait")
    try:
        mine = workdirs.private_folder(PREFIX, str(tmp_path))
        assert theirs.exists()
        assert mine.exists()
        assert workdirs.sweep(PREFIX, str(tmp_path)) == []
    finally:
        proc.kill()
        proc.wait()
    assert workdirs.sweep(PREFIX, str(tmp_path)) == [theirs]
    assert mine.exists()  # this process still runs


def test_reused_pid_is_another_owner(tmp_path: Path) -> None:
    """A folder with a live pid but another start time belongs to a process that ended."""
    if not Path("/proc/self/stat").exists():
        pytest.skip("needs /proc for start times")
    _, started = workdirs._stat(os.getpid())  # type: ignore[misc]
    old = tmp_path / f"{PREFIX}{workdirs._host()}-{os.getpid()}-{int(started) - 1}-abc123"
    old.mkdir()
    assert workdirs.sweep(PREFIX, str(tmp_path)) == [old]


@pytest.mark.parametrize(
    "name",
    [
        "hubcomm-spool-abcd1234",  # not named after an owner
        "hubcomm-spool-00000000-999999999-5-abc",  # another host
        "hubcomm-sync-{host}-999999999-5-abc",  # another family
        "other-{host}-999999999-5-abc",
    ],
)
def test_folders_it_cannot_attribute_are_kept(tmp_path: Path, name: str) -> None:
    folder = tmp_path / name.format(host=workdirs._host())
    folder.mkdir()
    assert workdirs.sweep(PREFIX, str(tmp_path)) == []
    assert folder.exists()


def test_a_folder_of_another_pid_namespace_is_kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Same host name (a container with ``--network host``), other processes: its pids mean nothing here."""
    with monkeypatch.context() as patch:
        patch.setattr(workdirs, "process_space", lambda: "pid:[1]")
        theirs = workdirs._host()
    assert theirs != workdirs._host()
    folder = tmp_path / f"{PREFIX}{theirs}-999999999-5-abc"
    folder.mkdir()
    assert workdirs.sweep(PREFIX, str(tmp_path)) == []
    assert folder.exists()


def test_a_file_with_an_owner_name_is_kept(tmp_path: Path) -> None:
    path = tmp_path / f"{PREFIX}{workdirs._host()}-999999999-5-abc"
    path.write_text("not a folder")
    assert workdirs.sweep(PREFIX, str(tmp_path)) == []
    assert path.exists()


def test_missing_directory_is_not_an_error(tmp_path: Path) -> None:
    assert workdirs.sweep(PREFIX, str(tmp_path / "absent")) == []
