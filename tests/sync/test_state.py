"""The sync state's layout: whole segments only, last entry wins, compaction safe to interrupt."""

from __future__ import annotations

from pathlib import Path

import pytest

from airflow_provider_hubcomm.batch.rows import WriteRow
from airflow_provider_hubcomm.batch.spool import Spool
from airflow_provider_hubcomm.sync.diff import SyncedSpool, diff
from airflow_provider_hubcomm.sync.state import BASE_NAME, JOURNAL_DIR, Journal, SyncState, state_root


def _spool(tmp_path: Path, writes: list[WriteRow]) -> Spool:
    spool = Spool(str(tmp_path))
    block: list[object] = []
    for row, write in enumerate(writes, start=1):
        block.extend([row, *write])
    spool.dump(block)
    spool.rows = len(writes)
    return spool


def _row(sub: str, state: str = "SUBSCRIBED", basis: str | None = None) -> WriteRow:
    return WriteRow(sub, 101, state, "EMAIL", basis, None)


def _verdicts(tmp_path: Path, state: SyncState, writes: list[WriteRow]) -> list[int]:
    """Rows the diff sends, after fetching the state into a fresh work folder."""
    work = tmp_path / f"work{len(list(tmp_path.iterdir()))}"
    work.mkdir()
    state.workdir = work
    base, segments = state.fetch()
    spool = _spool(work, writes)
    result = diff(spool, base, segments, work)
    try:
        return [row for row, _, superseded in SyncedSpool(spool, result.verdicts).records() if not superseded]
    finally:
        spool.close()


def test_a_plain_path_becomes_a_file_url(tmp_path: Path) -> None:
    assert str(state_root(tmp_path / "s")) == f"file://{tmp_path / 's'}"
    assert state_root("relative/dir").path.endswith("/relative/dir")


def test_last_entry_wins_and_partial_segments_are_ignored(tmp_path: Path) -> None:
    state = SyncState(tmp_path / "state", str(tmp_path / "work"))
    journal = Journal(state, rows=2)
    journal.record(_row("a@x.com"), True)
    journal.record(_row("b@x.com"), True)  # segment 1
    journal.record(_row("A@X.com", "UNSUBSCRIBED"), True)
    journal.record(_row("b@x.com"), False)  # segment 2: a changed, b not confirmed
    journal.record(_row("c@x.com"), True)
    journal.flush()
    (tmp_path / "state" / JOURNAL_DIR / "99999999999999999999-1-000000.jsonl.tmp").write_text("{broken")
    writes = [_row("a@x.com", "UNSUBSCRIBED"), _row("b@x.com"), _row("c@x.com"), _row("d@x.com")]
    assert _verdicts(tmp_path, state, writes) == [2, 4]  # b was not confirmed, d is new


def test_an_interrupted_compaction_leaves_a_correct_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    state = SyncState(tmp_path / "state", str(tmp_path / "work"))
    journal = Journal(state, rows=1)
    for sub in ("a@x.com", "b@x.com"):
        journal.record(_row(sub), True)
    assert state.compact(resync=False, memory_limit="200MB") == 2
    journal.record(_row("a@x.com", "UNSUBSCRIBED"), True)

    from airflow.sdk import ObjectStoragePath

    def crash(self: ObjectStoragePath, *args: object, **kwargs: object) -> None:
        raise OSError("killed between the new base and the journal's cleanup")

    monkeypatch.setattr(ObjectStoragePath, "unlink", crash)
    with pytest.raises(OSError, match="killed"):
        state.compact(resync=False, memory_limit="200MB")
    monkeypatch.undo()
    assert (tmp_path / "state" / BASE_NAME).exists()
    assert len(list((tmp_path / "state" / JOURNAL_DIR).iterdir())) == 1  # the segment repeats the new base
    writes = [_row("a@x.com", "UNSUBSCRIBED"), _row("b@x.com"), _row("a@x.com")]
    assert _verdicts(tmp_path, state, writes) == [3]  # the last a is SUBSCRIBED: changed; the first is a duplicate


def test_new_segments_sort_after_existing_ones_even_if_the_clock_went_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = SyncState(tmp_path / "state", str(tmp_path / "w1"))
    first.append(['{"n":0}'])
    monkeypatch.setattr("airflow_provider_hubcomm.sync.state.time.time_ns", lambda: 5)  # another worker's clock
    second = SyncState(tmp_path / "state", str(tmp_path / "w2"))
    second.fetch()
    second.append(['{"n":0}'])
    assert second.segment_names() == [*first.written, *second.written]


def test_the_journal_overrides_the_base_and_every_row_is_accounted_for(tmp_path: Path) -> None:
    state = SyncState(tmp_path / "state", str(tmp_path / "work"))
    journal = Journal(state, rows=10)
    for sub in ("a@x.com", "b@x.com", "c@x.com"):
        journal.record(_row(sub), True)
    journal.flush()
    assert state.compact(resync=False, memory_limit="200MB") == 3  # base: a, b, c SUBSCRIBED, confirmed
    journal.record(_row("b@x.com", "UNSUBSCRIBED"), True)  # newer than the base: b is now UNSUBSCRIBED
    journal.record(_row("c@x.com"), False)  # c failed last time: sent again
    journal.flush()
    work = tmp_path / "diff"
    work.mkdir()
    state.workdir = work
    base, segments = state.fetch()
    assert base is not None
    assert len(segments) == 1
    writes = [_row("B@x.com"), _row("a@x.com"), _row("b@x.com", "UNSUBSCRIBED"), _row("c@x.com"), _row("d@x.com")]
    spool = _spool(work, writes)
    try:
        result = diff(spool, base, segments, work)
        seen = [(row, superseded) for row, _, superseded in SyncedSpool(spool, result.verdicts).records()]
    finally:
        spool.close()
    # row 1 is superseded by row 3 (same key, case-insensitive); a and b are unchanged; c and d are sent
    assert seen == [(1, True), (4, False), (5, False)]
    assert (result.kept, result.unchanged) == (4, 2)


def test_checkpoint_steps_grow_with_the_run_within_bounds(tmp_path: Path) -> None:
    """A killed run re-sends at most one step: 500 rows early on, 0.5 % of the rows confirmed later, 5,000 at most."""
    sizes: list[int] = []

    class Counting(SyncState):
        def append(self, lines: list[str]) -> None:
            sizes.append(len(lines))

    journal = Journal(Counting(tmp_path / "state", str(tmp_path / "work")), rows=5_000, seconds=1e9)
    checkpointed = 0
    for i in range(250_000):
        journal.record(_row(f"u{i}@x.com"), True)
        unsaved = len(journal.lines)
        assert unsaved < max(500, 0.005 * checkpointed) + 1  # what a kill right now would re-send
        checkpointed = i + 1 - len(journal.lines)
    journal.flush()
    assert sum(sizes) == 250_000
    assert sizes[:200] == [500] * 200  # the first 100,000 rows in steps of 500
    assert 500 < sizes[-2] <= 5_000
    assert len(sizes) < 250_000 / 500  # fewer segments than fixed steps of 500 would write
    small = Journal(Counting(tmp_path / "state", str(tmp_path / "work")), rows=50, seconds=1e9)
    for i in range(120):
        small.record(_row(f"v{i}@x.com"), True)
    assert sizes[-2:] == [50, 50]  # ``rows`` caps the step (the tests' small checkpoints)
