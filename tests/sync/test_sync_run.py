"""Incremental sync (``state_path``) through the batch engine, against the in-memory HubSpot of the engine tests."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_hubcomm.sync import state as state_module
from airflow_provider_hubcomm.sync.state import BASE_NAME, JOURNAL_DIR
from tests.batch._mini import MiniHubSpot, assert_adds_up, read_lines, rows, run


def _sync(api: MiniHubSpot, inputs: Any, tmp_path: Path, **options: Any) -> dict[str, Any]:
    options.setdefault("state_path", str(tmp_path / "state"))
    summary = run(api, inputs, tmp_path / "out", **options)
    assert_adds_up(summary)
    return summary


def _sent(api: MiniHubSpot, since: int = 0) -> list[tuple[str, int, str]]:
    return [(i["subscriberIdString"], i["subscriptionId"], i["statusState"]) for w in api.writes[since:] for i in w]


def _journal(tmp_path: Path) -> list[str]:
    folder = tmp_path / "state" / JOURNAL_DIR
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def _die_after_checkpoints(monkeypatch: pytest.MonkeyPatch, kept: int) -> Callable[[], None]:
    """Checkpoint every 50 rows and kill the run at checkpoint ``kept + 1``; return what undoes the kill.

    The kill is a ``KeyboardInterrupt`` raised where the journal segment would be written: like the task's
    SIGTERM, a BaseException in the run's thread, after ``kept`` checkpoints were confirmed.
    """
    monkeypatch.setattr(state_module, "CHECKPOINT_ROWS", 50)
    real_append = state_module.SyncState.append
    segments = 0

    def dying_append(self: state_module.SyncState, lines: list[str]) -> None:
        nonlocal segments
        segments += 1
        if segments > kept:
            raise KeyboardInterrupt("killed")
        real_append(self, lines)

    monkeypatch.setattr(state_module.SyncState, "append", dying_append)
    return lambda: monkeypatch.setattr(state_module.SyncState, "append", real_append)


def test_first_sync_writes_all_and_an_unchanged_rerun_sends_nothing(tmp_path: Path) -> None:
    api = MiniHubSpot()
    data = rows(250)
    first = _sync(api, data, tmp_path)
    assert (first["written"], first["unchanged"]) == (250, 0)
    log = first["state"].pop("log")
    assert first["state"] == {"path": f"file://{tmp_path / 'state'}", "unchanged": 0, "resync": False}
    assert log.startswith(f"file://{tmp_path / 'state' / 'log'}/date=")
    assert log.endswith(".parquet")
    assert (tmp_path / "state" / BASE_NAME).exists()
    assert _journal(tmp_path) == []  # compacted into the base
    calls, definitions = api.calls, api.definition_reads
    base = (tmp_path / "state" / BASE_NAME).stat().st_mtime_ns
    again = _sync(api, data, tmp_path)
    assert (tmp_path / "state" / BASE_NAME).stat().st_mtime_ns == base  # nothing new: the base is not rewritten
    assert (again["written"], again["skipped_by_reason"]["unchanged"], again["requests"]) == (0, 250, 0)
    assert (api.calls, api.definition_reads) == (calls, definitions)  # not even the definitions
    assert again["state"]["unchanged"] == 250


def test_only_new_and_changed_rows_are_sent(tmp_path: Path) -> None:
    api = MiniHubSpot()
    data = rows(200)
    _sync(api, data, tmp_path)
    before = len(api.writes)
    data[3]["statusState"] = "SUBSCRIBED"
    data[7]["legalBasisExplanation"] = "asked at the counter"
    data[7]["legalBasis"] = "CONSENT_WITH_NOTICE"
    data.append({"subscriberIdString": "NEW@example.com", "subscriptionId": 102, "statusState": "UNSUBSCRIBED"})
    second = _sync(api, data, tmp_path, allow_resubscribe=True)
    assert sorted(_sent(api, before)) == sorted(
        [
            ("user3@example.com", 101, "SUBSCRIBED"),
            ("user7@example.com", 101, "UNSUBSCRIBED"),
            ("NEW@example.com", 102, "UNSUBSCRIBED"),
        ]
    )
    assert (second["written"], second["unchanged"]) == (3, 198)
    assert _sync(api, data, tmp_path)["written"] == 0  # and now they are in the state


def test_rows_that_failed_or_stayed_pending_are_sent_again(tmp_path: Path) -> None:
    api = MiniHubSpot()
    data = [*rows(20), *rows(5, sid=999)]  # every write to 999 fails
    first = _sync(api, data, tmp_path)
    assert (first["written"], first["failed"]) == (20, 5)
    before = len(api.writes)
    second = _sync(api, data, tmp_path)
    assert {s for _, s, _ in _sent(api, before)} == {999}
    assert second["failed"] == 5
    assert second["unchanged"] == 20

    pending = MiniHubSpot(status="PENDING")
    other = tmp_path / "pending"
    assert _sync(pending, rows(10), other)["unconfirmed"] == 10
    assert _sync(pending, rows(10), other)["written"] == 10  # not confirmed: sent again
    pending.status = "COMPLETE"
    assert _sync(pending, rows(10), other)["written"] == 10
    assert _sync(pending, rows(10), other)["unchanged"] == 10


def test_a_crashed_run_resumes_after_its_last_checkpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A task killed mid-run (here: the 4th checkpoint dies) re-sends at most one checkpoint's rows."""
    revive = _die_after_checkpoints(monkeypatch, 3)
    api = MiniHubSpot()
    data = rows(400)
    with pytest.raises(KeyboardInterrupt):
        _sync(api, data, tmp_path, batch_size=10, max_concurrency=1)
    sent_first = {s for s, _, _ in _sent(api)}
    assert len(_journal(tmp_path)) == 3  # the confirmed checkpoints survived, the base was never written
    assert not (tmp_path / "state" / BASE_NAME).exists()
    revive()
    before = len(api.writes)
    retry = _sync(api, data, tmp_path, batch_size=10, max_concurrency=1)
    sent_again = {s for s, _, _ in _sent(api, before)}
    assert retry["unchanged"] == 150
    assert retry["written"] == 250
    assert len(sent_first & sent_again) <= 50 + 10  # one checkpoint step, plus the chunk in flight
    assert {s for s, _, _ in _sent(api)} == {r["subscriberIdString"] for r in data}
    assert _journal(tmp_path) == []


def test_an_aborted_run_keeps_what_it_confirmed(tmp_path: Path) -> None:
    import httpx

    def refuse_after_five(request: httpx.Request, n: int) -> httpx.Response | None:
        if n > 5:
            return httpx.Response(401, json={"status": "error", "category": "INVALID_AUTHENTICATION", "message": "x"})
        return None

    api = MiniHubSpot(refuse_after_five)
    data = rows(300)
    from airflow_provider_hubcomm.exceptions import BatchAbortedError

    with pytest.raises(BatchAbortedError):
        _sync(api, data, tmp_path, batch_size=20, max_concurrency=1)
    confirmed = {s for s, _, _ in _sent(api)}
    assert len(confirmed) == 100
    api.override = None
    before = len(api.writes)
    retry = _sync(api, data, tmp_path, batch_size=20, max_concurrency=1)
    assert retry["unchanged"] == 100
    assert retry["written"] == 200
    assert not confirmed & {s for s, _, _ in _sent(api, before)}


def test_full_resync_sends_everything_and_rebuilds_the_state(tmp_path: Path) -> None:
    api = MiniHubSpot()
    _sync(api, rows(100), tmp_path)
    before = len(api.writes)
    resync = _sync(api, rows(60), tmp_path, full_resync=True)
    assert (resync["written"], resync["unchanged"], resync["state"]["resync"]) == (60, 0, True)
    assert len(_sent(api, before)) == 60
    # the rebuilt state holds only the 60 rows: the 40 others are new again
    after = _sync(api, rows(100), tmp_path)
    assert (after["unchanged"], after["written"]) == (60, 40)


def test_a_dry_run_reports_and_leaves_the_state_alone(tmp_path: Path) -> None:
    api = MiniHubSpot()
    _sync(api, rows(50), tmp_path)
    base = (tmp_path / "state" / BASE_NAME).read_bytes()
    data = rows(60)
    dry = _sync(api, data, tmp_path, dry_run=True)
    assert (dry["unchanged"], dry["skipped_by_reason"]["dry_run"], dry["plan"]["rows_to_send"]) == (50, 10, 10)
    assert (tmp_path / "state" / BASE_NAME).read_bytes() == base
    assert _journal(tmp_path) == []


def test_the_state_is_no_proof_of_consent(tmp_path: Path) -> None:
    """HubSpot-side changes stay until the warehouse changes; a changed SUBSCRIBED row still meets the guard."""
    api = MiniHubSpot()
    row = {"subscriberIdString": "ann@example.com", "subscriptionId": 101, "statusState": "SUBSCRIBED"}
    assert _sync(api, [row], tmp_path)["written"] == 1
    api.state[("ann@example.com", 101)] = "UNSUBSCRIBED"  # Ann unsubscribes in HubSpot
    assert _sync(api, [row], tmp_path)["unchanged"] == 1  # not overwritten: the warehouse did not change
    changed = {**row, "legalBasis": "CONSENT_WITH_NOTICE", "legalBasisExplanation": "form"}
    guarded = _sync(api, [changed], tmp_path)
    assert guarded["skipped_by_reason"]["resubscribe_not_allowed"] == 1
    assert guarded["written"] == 0
    assert api.state[("ann@example.com", 101)] == "UNSUBSCRIBED"
    calls = api.calls
    remembered = _sync(api, [changed], tmp_path)  # the same row again: the refusal is remembered, no read
    assert remembered["skipped_by_reason"]["resubscribe_not_allowed"] == 1
    assert (remembered["requests"], api.calls) == (0, calls)
    (listed,) = read_lines(remembered["failed_rows_path"])
    assert listed["reason"] == "resubscribe_not_allowed"
    assert "earlier run" in listed["message"]
    resync = _sync(api, [row], tmp_path, full_resync=True)  # full_resync: the guard decides, the row is sent again
    assert resync["skipped_by_reason"]["resubscribe_not_allowed"] == 1
    assert resync["requests"] > 0


def test_a_remembered_refusal_ends_when_the_warehouse_row_changes(tmp_path: Path) -> None:
    api = MiniHubSpot()
    api.state[("bo@example.com", 101)] = "UNSUBSCRIBED"
    row = {"subscriberIdString": "bo@example.com", "subscriptionId": 101, "statusState": "SUBSCRIBED"}
    first = _sync(api, [row, *rows(10)], tmp_path)
    assert (first["skipped_by_reason"]["resubscribe_not_allowed"], first["written"]) == (1, 10)
    again = _sync(api, [row, *rows(10)], tmp_path)
    assert (again["skipped_by_reason"]["resubscribe_not_allowed"], again["unchanged"], again["requests"]) == (1, 10, 0)
    api.state[("bo@example.com", 101)] = "NOT_SPECIFIED"  # HubSpot changes behind the sync: not seen, as documented
    assert _sync(api, [row, *rows(10)], tmp_path)["skipped_by_reason"]["resubscribe_not_allowed"] == 1
    moved = {**row, "statusState": "UNSUBSCRIBED"}  # the warehouse changes: the row is sent
    changed = _sync(api, [moved, *rows(10)], tmp_path)
    assert (changed["written"], changed["skipped_by_reason"]["resubscribe_not_allowed"]) == (1, 0)
    back = _sync(api, [row, *rows(10)], tmp_path)  # back to SUBSCRIBED: changed again, so the guard reads
    assert back["requests"] > 0
    assert (back["written"], back["skipped_by_reason"]["resubscribe_not_allowed"]) == (0, 1)  # our UNSUBSCRIBED


@pytest.mark.parametrize("with_state", [False, True])
def test_colliding_keys_are_never_taken_for_duplicates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, with_state: bool
) -> None:
    from airflow_provider_hubcomm.batch import spool

    monkeypatch.setattr(spool, "hash", lambda _key: 42, raising=False)  # every key collides
    api = MiniHubSpot()
    data = [*rows(30), rows(1)[0], {**rows(1, start=5)[0], "subscriberIdString": "USER5@example.com"}]
    options: dict[str, Any] = {} if with_state else {"state_path": None}
    summary = _sync(api, data, tmp_path, **options)
    assert (summary["written"], summary["skipped_by_reason"]["duplicate"]) == (30, 2)
    assert len({(s.lower(), i) for s, i, _ in _sent(api)}) == 30


def test_a_killed_full_resync_resumes_where_it_stopped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The retry of a killed resync skips what the resync confirmed, not what the old state held."""
    api = MiniHubSpot()
    _sync(api, rows(100), tmp_path)  # the old state: 100 rows, which the resync must send again
    revive = _die_after_checkpoints(monkeypatch, 3)
    data = rows(400)
    before = len(api.writes)
    with pytest.raises(KeyboardInterrupt):
        _sync(api, data, tmp_path, batch_size=10, max_concurrency=1, full_resync=True)
    sent_first = {s for s, _, _ in _sent(api, before)}
    assert {f"user{i}@example.com" for i in range(100)} <= sent_first  # the old state was ignored
    assert (tmp_path / "state" / state_module.RESYNC_MARK).exists()
    revive()
    before = len(api.writes)
    retry = _sync(api, data, tmp_path, batch_size=10, max_concurrency=1, full_resync=True)
    sent_again = {s for s, _, _ in _sent(api, before)}
    assert (retry["unchanged"], retry["written"]) == (150, 250)  # the resync's three checkpoints were kept
    assert len(sent_first & sent_again) <= 50 + 10
    assert not (tmp_path / "state" / state_module.RESYNC_MARK).exists()
    assert _journal(tmp_path) == []
    assert _sync(api, data, tmp_path)["unchanged"] == 400  # the rebuilt state holds every row


def test_a_small_change_keeps_the_journal_and_a_large_one_compacts(tmp_path: Path) -> None:
    api = MiniHubSpot()
    data = rows(200)
    _sync(api, data, tmp_path)
    base = tmp_path / "state" / BASE_NAME
    written_at = base.stat().st_mtime_ns
    for i in range(3):
        data[i]["statusState"] = "NOT_SPECIFIED"
    assert _sync(api, data, tmp_path)["written"] == 3
    assert base.stat().st_mtime_ns == written_at  # 3 rows of 200: the base is not rewritten
    assert len(_journal(tmp_path)) == 1
    again = _sync(api, data, tmp_path)
    assert (again["unchanged"], again["requests"]) == (200, 0)  # the journal counts as state
    for i in range(10, 40):
        data[i]["statusState"] = "NOT_SPECIFIED"
    assert _sync(api, data, tmp_path)["written"] == 30
    assert _journal(tmp_path) == []  # 33 journal rows > 10 % of 200: compacted
    assert base.stat().st_mtime_ns != written_at
    assert _sync(api, data, tmp_path)["unchanged"] == 200
