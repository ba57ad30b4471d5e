"""``BatchUnsubscribeAllOperator`` end to end: ``dag.test()`` against the fake with faults, proven by the sensor."""

from __future__ import annotations

import csv
import importlib.util
import os
import random
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import TEST_DAGS

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("airflow_db")]

#: Rows of the fallback (single-call) run: 3,000 in CI; ``HUBCOMM_OPTOUT_FALLBACK_ROWS=100000`` runs the full size
#: (about six minutes of single calls on a 2-core machine).
FALLBACK_ROWS = int(os.environ.get("HUBCOMM_OPTOUT_FALLBACK_ROWS", "3000"))


def _erasure_list(path: Path, rows: int, seed: int = 11) -> tuple[set[str], int, int]:
    """Write a CSV erasure list; return (distinct valid addresses, invalid rows, duplicate rows)."""
    rng = random.Random(seed)
    seen: list[str] = []
    invalid = duplicates = 0
    with path.open("w", newline="", encoding="utf-8") as fh:
        out = csv.writer(fh)
        out.writerow(["email", "ticket"])
        for n in range(rows):
            draw = rng.random()
            if draw < 0.002:
                out.writerow([f"not-an-address-{n}", f"T{n}"])
                invalid += 1
            elif draw < 0.012 and seen:
                address = rng.choice(seen)
                out.writerow([address.upper() if n % 2 else address, f"T{n}"])
                duplicates += 1
            else:
                address = f"erase{n}.{rng.randrange(10**6)}@example.com"
                seen.append(address)
                out.writerow([address, f"T{n}"])
    return set(seen), invalid, duplicates


def _run(fake: Any, monkeypatch: pytest.MonkeyPatch, conf: dict[str, Any]) -> tuple[Any, dict[str, Any], Any]:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    monkeypatch.setenv(
        "AIRFLOW_CONN_HUBCOMM_DEFAULT",
        fake.connection_json(requests_per_10s=10_000, max_retries=5, business_unit_ids=[7]),
    )
    spec = importlib.util.spec_from_file_location(f"optout_{time.monotonic_ns()}", TEST_DAGS / "test_ops_optout.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    dr = module.dag.test(run_conf=conf)
    with create_session() as session:
        states = {ti.task_id: str(ti.state) for ti in dr.get_task_instances(session=session)}
        rows = session.query(XComModel).filter_by(dag_id=dr.dag_id, run_id=dr.run_id, key="return_value").all()
        values = {row.task_id: XComModel.deserialize_value(row) for row in rows}
    return states, values.get("erase") or {}, values.get("prove")


@pytest.mark.parametrize(
    ("mode", "rows", "knobs"),
    [
        pytest.param(
            "batch",
            100_000,
            {"error_rate_5xx": 0.02, "drop_after_write_rate": 0.01, "error_rate_429": 0.01},
            marks=pytest.mark.slow,
        ),
        pytest.param(
            "single",
            FALLBACK_ROWS,
            {"batch_scopes": False, "error_rate_5xx": 0.02, "drop_after_write_rate": 0.01},
            marks=pytest.mark.slow,
        ),
    ],
)
def test_erasure_list_converges_and_is_proven(
    mode: str,
    rows: int,
    knobs: dict[str, Any],
    hubcomm_fake_factory: Any,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    fake = hubcomm_fake_factory(subscriptions=[101, {"id": 701, "businessUnitId": 7}], seed=5, **knobs)
    addresses, invalid, duplicates = _erasure_list(tmp_path / "erase.csv", rows)
    conf = {"inputs": str(tmp_path / "erase.csv"), "brand": 7, "out": str(tmp_path / "out")}
    states, summary, proof = _run(fake, monkeypatch, conf)
    assert states == {"erase": "success", "prove": "success"}, states
    assert summary["mode"] == mode
    assert summary["rows_read"] == rows
    assert summary["written"] + summary["failed"] + summary["skipped"] == rows
    assert (summary["written"], summary["failed"]) == (len(addresses), 0)
    assert summary["skipped_by_reason"] == {"invalid": invalid, "duplicate": duplicates, "dry_run": 0}
    assert summary["retries"] > 0, "the faults were not met"
    for address in list(addresses)[:: max(1, len(addresses) // 200)]:
        assert fake.opted_out_of_all(address, business_unit_id=7), address
        assert not fake.opted_out_of_all(address, business_unit_id=0), address
    assert proof["rows_verified"] == proof["rows_matching"] == min(1000, len(addresses))
    assert proof["pending"] == proof["mismatch_count"] == 0
