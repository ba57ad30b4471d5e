"""Outputs of a killed attempt are never taken for a good attempt's (issue 17.7)."""

from __future__ import annotations

import json
import os
import re
import stat
import tempfile
from pathlib import Path

import pytest

from airflow_provider_hubcomm.batch.outputs import (
    PARTIAL_SUFFIX,
    JsonLinesSink,
    default_output_dir,
    make_private_dir,
    output_name,
)


def test_output_name_tells_dag_task_run_and_try() -> None:
    name = output_name("gdpr_sync", "write.3", "manual__2026-12-01T10:00:00+00:00", 2)
    assert name == "gdpr_sync-write.3-manual__2026-12-01T10_00_00_00_00-try2"
    assert re.fullmatch(r"[A-Za-z0-9._-]+", name)


def test_output_name_cannot_escape_the_folder() -> None:
    name = output_name("../../etc", "t/../x", "run id\n", 1)
    assert "/" not in name
    assert ".." not in name.split("-")[0]


def test_generated_names_carry_the_attempt(tmp_path: Path) -> None:
    names = []
    for attempt in (1, 2):
        sink = JsonLinesSink(output_dir=str(tmp_path), kind="failed", name=output_name("d", "t", "r", attempt))
        sink.write({"row": 1})
        location = sink.close()
        assert location is not None
        names.append(Path(location).name)
    assert re.fullmatch(r"hubcomm-failed-d-t-r-try1-\d{8}T\d{6}\.jsonl", names[0])
    assert "-try2-" in names[1]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(names)


def test_a_local_file_is_partial_until_closed(tmp_path: Path) -> None:
    sink = JsonLinesSink(output_dir=str(tmp_path), kind="written", name="d-t-r-try1")
    sink.write({"row": 1, "subscriberIdString": "a@x.com"})
    sink._fh.flush()  # type: ignore[union-attr]
    (partial,) = tmp_path.iterdir()
    assert partial.name.endswith(".jsonl" + PARTIAL_SUFFIX)
    location = sink.close()
    assert location == str(partial)[: -len(PARTIAL_SUFFIX)]
    assert [p.name for p in tmp_path.iterdir()] == [Path(location).name]
    assert json.loads(Path(location).read_text()) == {"row": 1, "subscriberIdString": "a@x.com"}


def test_a_named_target_is_not_created_before_close(tmp_path: Path) -> None:
    """A killed attempt (no close) leaves no 0-byte or truncated file under the user's name."""
    target = tmp_path / "out" / "failed.jsonl"
    sink = JsonLinesSink(target, kind="failed")
    sink.write({"row": 7})
    sink._fh.flush()  # type: ignore[union-attr]
    assert not target.exists()
    assert Path(str(target) + PARTIAL_SUFFIX).exists()
    assert sink.close() == str(target)
    assert target.read_text().count("\n") == 1
    assert not Path(str(target) + PARTIAL_SUFFIX).exists()


def test_a_named_target_with_nothing_to_write_is_created_empty_on_close(tmp_path: Path) -> None:
    target = tmp_path / "failed.jsonl"
    assert JsonLinesSink(target, kind="failed").close() == str(target)
    assert target.read_text() == ""


def test_the_temp_fallback_is_renamed_too() -> None:
    sink = JsonLinesSink(kind="failed", name="d-t-r-try3")
    sink.write({"row": 1})
    location = sink.close()
    assert location is not None
    try:
        assert Path(location).name.startswith("hubcomm-failed-d-t-r-try3-")
        assert location.endswith(".jsonl")
        assert not Path(location + PARTIAL_SUFFIX).exists()
    finally:
        os.unlink(location)


def test_an_object_storage_target_is_written_in_place(tmp_path: Path) -> None:
    sink = JsonLinesSink(output_dir=f"file://{tmp_path}", kind="failed", name="d-t-r-try1")
    sink.write({"row": 1})
    location = sink.close()
    assert location is not None
    assert [p.name for p in tmp_path.iterdir()] == [location.rsplit("/", 1)[1]]


def test_default_output_dir_is_a_run_folder() -> None:
    path = default_output_dir("gdpr", "scheduled__2026-12-01T00:00:00+00:00", "write")
    assert path == os.path.join(
        tempfile.gettempdir(), "hubcomm", "gdpr", "scheduled__2026-12-01T00_00_00_00_00", "write"
    )


@pytest.mark.skipif(os.name != "posix", reason="POSIX modes")
def test_make_private_dir_creates_every_missing_level_0700(tmp_path: Path) -> None:
    existing = tmp_path / "shared"
    existing.mkdir(mode=0o755)
    target = existing / "hubcomm" / "dag" / "run" / "task"
    assert make_private_dir(str(target)) == str(target)
    for level in (existing / "hubcomm", existing / "hubcomm" / "dag", target):
        assert stat.S_IMODE(level.stat().st_mode) == 0o700, level
    assert stat.S_IMODE(existing.stat().st_mode) == 0o755
    make_private_dir(str(target))  # idempotent


@pytest.mark.parametrize("named", [True, False])
def test_discard_leaves_nothing(tmp_path: Path, named: bool) -> None:
    target = tmp_path / "failed.jsonl" if named else None
    sink = JsonLinesSink(target, output_dir=str(tmp_path), kind="failed", name="d-t-r-try1")
    sink.write({"row": 1, "subscriberIdString": "a@x.com"})
    sink.discard()
    assert list(tmp_path.iterdir()) == []
    assert sink.close() is None
    assert list(tmp_path.iterdir()) == []


def test_discard_of_an_object_storage_file(tmp_path: Path) -> None:
    sink = JsonLinesSink(output_dir=f"file://{tmp_path}", kind="failed", name="d-t-r-try1")
    sink.write({"row": 1})
    sink.discard()
    assert list(tmp_path.iterdir()) == []
