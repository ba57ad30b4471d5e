"""Partitions for many workers in a real ``dag.test()``: 4 mapped tasks over one input, one state each."""

from __future__ import annotations

import csv
import importlib.util
import json
import time
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_hubcomm.sync import partition_of
from tests.conftest import TEST_DAGS

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("airflow_db")]

PARTITIONS = 4
SUBSCRIBERS = 1000


def _input(path: Path) -> tuple[str, list[tuple[str, int, str]]]:
    """3,000 rows: 1,000 subscribers x 3 subscriptions, 30 re-sent in another letter case, 1 invalid row."""
    rows = [
        (f"part{i}@example.com", 101 + j, "UNSUBSCRIBED" if (i + j) % 3 else "NOT_SPECIFIED")
        for i in range(SUBSCRIBERS)
        for j in range(3)
    ]
    rows += [(f"  PART{i}@Example.COM ", 101, "NOT_SPECIFIED") for i in range(0, 300, 10)]  # same keys: last wins
    rows.append(("not-an-address", 101, "UNSUBSCRIBED"))
    with path.open("w", newline="", encoding="utf-8") as fh:
        out = csv.writer(fh)
        out.writerow(["subscriberIdString", "subscriptionId", "statusState"])
        out.writerows(rows)
    return str(path), rows


def _run(fake: Any, monkeypatch: pytest.MonkeyPatch, conf: dict[str, Any]) -> dict[int, tuple[str, Any]]:
    """Run the DAG once; return ``{map_index: (state, summary)}``."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    monkeypatch.setenv("AIRFLOW_CONN_HUBCOMM_DEFAULT", fake.connection_json(requests_per_10s=10_000, max_retries=2))
    spec = importlib.util.spec_from_file_location(f"part_{time.monotonic_ns()}", TEST_DAGS / "test_ops_partition.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    dr = module.dag.test(run_conf=conf)
    with create_session() as session:
        states = {ti.map_index: str(ti.state) for ti in dr.get_task_instances(session=session)}
        xcoms = session.query(XComModel).filter_by(dag_id=dr.dag_id, run_id=dr.run_id, key="return_value").all()
        values = {x.map_index: x.value for x in xcoms}
    out = {}
    for index, state in states.items():
        value = values.get(index)
        out[index] = (state, json.loads(value) if isinstance(value, str | bytes) else value)
    return out


def test_mapped_partitions_split_the_rows_keep_one_state_each_and_rerun_for_free(
    hubcomm_fake: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path, rows = _input(tmp_path / "in.csv")
    conf = {"path": path, "state": str(tmp_path / "state"), "out": str(tmp_path / "out")}
    first = _run(hubcomm_fake, monkeypatch, conf)

    assert sorted(first) == list(range(PARTITIONS))
    assert {state for state, _ in first.values()} == {"success"}
    summaries = {i: summary for i, (_, summary) in first.items()}
    for i, s in summaries.items():
        assert s["partition"] == {"index": i, "count": PARTITIONS, "rows_outside": len(rows) - s["rows_read"]}
        assert s["written"] + s["failed"] + s["skipped"] == s["rows_read"]
        assert 0.15 * len(rows) < s["rows_read"] < 0.35 * len(rows)  # a stable hash spreads them
    # every input row handled by exactly one partition: the counts add up to the input ...
    assert sum(s["rows_read"] for s in summaries.values()) == len(rows)
    assert sum(s["written"] + s["failed"] + s["skipped"] for s in summaries.values()) == len(rows)
    assert sum(s["skipped_by_reason"]["duplicate"] for s in summaries.values()) == 30
    assert sum(s["skipped_by_reason"]["invalid"] for s in summaries.values()) == 1
    # ... and each written row sits in the partition its subscriber hashes to, in no other
    written_rows = [(i, w) for i, s in summaries.items() for w in s["written_rows"]]
    assert len(written_rows) == 3 * SUBSCRIBERS
    assert len({w["row"] for _, w in written_rows}) == len(written_rows)
    assert all(partition_of(w["subscriberIdString"], PARTITIONS) == i for i, w in written_rows)
    assert len(hubcomm_fake.snapshot()) == 3 * SUBSCRIBERS
    # one state folder per partition: partitions never write the same files
    folders = sorted(p.name for p in (tmp_path / "state").iterdir())
    assert folders == [f"partition-{i:04d}-of-{PARTITIONS:04d}" for i in range(PARTITIONS)]
    assert all((tmp_path / "state" / f / "state.parquet").exists() for f in folders)

    hubcomm_fake.reset_counters()
    again = _run(hubcomm_fake, monkeypatch, conf)
    assert {state for state, _ in again.values()} == {"success"}
    assert hubcomm_fake.request_log == []  # an unchanged re-run: no HubSpot request from any partition
    for i, (_, s) in again.items():
        assert (s["written"], s["requests"], s["rows_read"]) == (0, 0, summaries[i]["rows_read"])
        assert s["unchanged"] == summaries[i]["written"]
