"""The sync log (``sync_log``): one Parquet row per input row and its outcome, queryable next to the state."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import duckdb
import httpx
import pytest

from tests.batch._mini import TOKEN, MiniHubSpot, assert_adds_up, rows, run
from tests.docs.snippets import ROOT, extract


def _sync(api: MiniHubSpot, inputs: Any, tmp_path: Path, **options: Any) -> dict[str, Any]:
    options.setdefault("state_path", str(tmp_path / "state"))
    options.setdefault("on_invalid", "skip")
    summary = run(api, inputs, tmp_path / "out", **options)
    assert_adds_up(summary)
    return summary


def _local(url: str) -> str:
    assert url.startswith("file://"), url
    return url[len("file://") :]


def _log(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """The rows of one run's log file, as dicts."""
    relation = duckdb.read_parquet(_local(summary["state"]["log"]))
    return [dict(zip(relation.columns, values, strict=True)) for values in relation.fetchall()]


def _assert_counts_match(summary: dict[str, Any], log: list[dict[str, Any]]) -> None:
    """The log has one row per input row, and its outcomes are the summary's counts."""
    assert len(log) == summary["rows_read"]
    assert sorted(r["row"] for r in log) == sorted({r["row"] for r in log})  # each input row once
    outcomes = Counter(r["outcome"] for r in log)
    assert (outcomes["written"], outcomes["failed"], outcomes["skipped"]) == (
        summary["written"],
        summary["failed"],
        summary["skipped"],
    )
    skipped = Counter(r["reason"] for r in log if r["outcome"] == "skipped")
    assert skipped == +Counter(summary["skipped_by_reason"])
    failed = Counter(
        f"{r['reason']}: {r['message']}" if r["reason"] else r["message"] for r in log if r["outcome"] == "failed"
    )
    assert failed == Counter(summary["failed_by_reason"])
    assert sum(r["operation_status"] != "COMPLETE" for r in log if r["outcome"] == "written") == summary["unconfirmed"]


def _inputs(explanation: str, user2: str) -> list[dict[str, Any]]:
    data = [
        {"subscriberIdString": "User3@Example.com", "subscriptionId": 101, "statusState": "SUBSCRIBED"},  # superseded
        *rows(10),
        *rows(3, start=50, sid=999),  # every write to 999 fails
        {"subscriberIdString": "not-an-email", "subscriptionId": 101, "statusState": "SUBSCRIBED"},  # invalid
        {"subscriberIdString": "blocked@example.com", "subscriptionId": 102, "statusState": "SUBSCRIBED"},
    ]
    data[2].update(legalBasis="LEGITIMATE_INTEREST_CLIENT", legalBasisExplanation=explanation)  # user1
    data[3]["statusState"] = user2
    data[4]["subscriberIdString"] = "User3@Example.com"  # the last row for user3 wins, as given
    return data


def test_two_runs_answer_when_we_last_set_a_status_and_why(tmp_path: Path) -> None:
    api = MiniHubSpot()
    api.state[("blocked@example.com", 102)] = "UNSUBSCRIBED"  # the contact opted out in HubSpot
    first = _sync(api, _inputs("signed up at the fair", "UNSUBSCRIBED"), tmp_path)
    second = _sync(api, _inputs("asked again by phone", "NOT_SPECIFIED"), tmp_path)
    assert (first["written"], first["failed"], second["written"], second["unchanged"]) == (10, 3, 2, 8)
    log1, log2 = _log(first), _log(second)
    _assert_counts_match(first, log1)
    _assert_counts_match(second, log2)
    assert first["state"]["log"] != second["state"]["log"]
    assert "/log/date=" in first["state"]["log"]

    by_row = {r["row"]: r for r in log1}
    assert by_row[1]["reason"] == "duplicate"
    assert by_row[5]["subscriber"] == "User3@Example.com"
    assert by_row[12]["outcome"] == "failed"
    assert (by_row[12]["reason"], by_row[12]["subscription_id"]) == ("OBJECT_NOT_FOUND", 999)
    assert (by_row[15]["reason"], by_row[15]["subscriber"]) == ("invalid", "not-an-email")
    assert "subscriberIdString" in by_row[15]["message"]
    assert by_row[16]["reason"] == "resubscribe_not_allowed"

    state = tmp_path / "state"
    latest = dict(
        duckdb.execute(
            """
            SELECT lower(subscriber) || '/' || subscription_id,
                   arg_max(outcome || ':' || coalesce(reason, '') || ':' || coalesce(legal_basis_explanation, ''),
                           (synced_at, "row"))
            FROM read_parquet(?, hive_partitioning = true) GROUP BY ALL
            """,
            [f"{state}/log/*/*.parquet"],
        ).fetchall()
    )
    assert latest["user1@example.com/101"] == "written::asked again by phone"
    assert latest["user2@example.com/101"] == "written::"
    assert latest["user4@example.com/101"] == "skipped:unchanged:"
    assert latest["user3@example.com/101"] == "skipped:unchanged:"
    assert latest["user50@example.com/999"] == "failed:OBJECT_NOT_FOUND:"  # failed twice, sent twice
    assert latest["blocked@example.com/102"] == "skipped:resubscribe_not_allowed:"
    days = duckdb.execute(
        "SELECT DISTINCT CAST(date AS VARCHAR) = strftime(synced_at, '%Y-%m-%d') "
        "FROM read_parquet(?, hive_partitioning = true)",
        [f"{state}/log/*/*.parquet"],
    ).fetchall()
    assert days == [(True,)]


def test_the_documented_query_answers_from_the_log(tmp_path: Path) -> None:
    """docs/operators.md's ``last_set`` runs as written against the log of two runs."""
    (snippet,) = [s for s in extract(ROOT / "docs" / "operators.md") if "def last_set" in s.code]
    namespace: dict[str, Any] = {}
    exec(compile(snippet.code, "operators.md", "exec"), namespace)
    last_set = namespace["last_set"]
    api = MiniHubSpot()
    _sync(api, _inputs("signed up at the fair", "UNSUBSCRIBED"), tmp_path)
    assert last_set(str(tmp_path / "state"), "user1@example.com", 101)[1:4] == (
        "UNSUBSCRIBED",
        "LEGITIMATE_INTEREST_CLIENT",
        "signed up at the fair",
    )
    _sync(api, _inputs("asked again by phone", "UNSUBSCRIBED"), tmp_path)
    assert last_set(str(tmp_path / "state"), "USER1@example.com", 101)[3] == "asked again by phone"
    first = last_set(str(tmp_path / "state"), "user4@example.com", 101)
    assert first is not None  # unchanged in the second run: the answer is the first run's write
    assert last_set(str(tmp_path / "state"), "user50@example.com", 999) is None  # never written
    assert last_set(str(tmp_path / "state"), "nobody@example.com", 101) is None


def test_no_log_in_a_dry_run_or_when_turned_off(tmp_path: Path) -> None:
    api = MiniHubSpot()
    dry = _sync(api, rows(20), tmp_path, dry_run=True)
    off = _sync(api, rows(20), tmp_path, sync_log=False)
    assert (dry["state"]["log"], off["state"]["log"], off["written"]) == (None, None, 20)
    assert not (tmp_path / "state" / "log").exists()
    on = _sync(api, rows(20), tmp_path)
    assert [r["reason"] for r in _log(on)] == ["unchanged"] * 20


def test_a_server_echoing_the_token_leaves_no_secret_in_the_log(tmp_path: Path) -> None:
    def echo(request: httpx.Request, n: int) -> httpx.Response | None:
        if request.url.path.endswith("/batch/write"):
            message = f"bad request, Authorization: Bearer {TOKEN}"
            return httpx.Response(400, json={"status": "error", "category": "VALIDATION_ERROR", "message": message})
        return None

    summary = _sync(MiniHubSpot(echo), rows(5), tmp_path)
    assert summary["failed"] == 5
    log = _log(summary)
    assert {r["outcome"] for r in log} == {"failed"}
    assert all("bad request" in r["message"] and TOKEN not in r["message"] for r in log)
    assert TOKEN.encode() not in Path(_local(summary["state"]["log"])).read_bytes()


def test_an_aborted_run_logs_its_rows_not_sent(tmp_path: Path) -> None:
    """A 401 midway aborts the run: the log still holds every row, the rest as failed "not sent"."""
    from airflow_provider_hubcomm.exceptions import BatchAbortedError

    def refuse_after_two(request: httpx.Request, n: int) -> httpx.Response | None:
        if n > 2:
            return httpx.Response(401, json={"status": "error", "category": "INVALID_AUTHENTICATION", "message": "x"})
        return None

    with pytest.raises(BatchAbortedError) as caught:
        _sync(MiniHubSpot(refuse_after_two), rows(100), tmp_path, batch_size=10, max_concurrency=1)
    summary = caught.value.summary
    log = _log(summary)
    _assert_counts_match(summary, log)
    assert Counter(r["outcome"] for r in log) == {"written": 20, "failed": 80}
