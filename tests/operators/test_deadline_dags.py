"""Issue 17.4 through real ``dag.test()`` runs: a server dripping its answers cannot hold a task or a trigger."""

from __future__ import annotations

import importlib.util
import json
import time
from typing import Any

import pytest

from tests.conftest import TEST_DAGS

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("airflow_db")]


def test_a_dripping_server_cannot_hold_a_write_or_a_trigger(hubcomm_fake_factory: Any, monkeypatch) -> None:
    from airflow.utils.session import create_session

    # Every answer's body arrives one byte per second: a per-read timeout never fires, a total one does.
    fake = hubcomm_fake_factory(drip_interval=1.0)
    monkeypatch.setenv("AIRFLOW_CONN_HUBCOMM_DEFAULT", fake.connection_json(timeout=2, max_retries=1))
    rows = [
        {"subscriberIdString": f"d{i}@example.com", "subscriptionId": 101, "statusState": "UNSUBSCRIBED"}
        for i in range(3)
    ]
    summary = {"conn_id": "hubcomm_default", "channel": "EMAIL", "written": 3, "written_rows": rows}
    spec = importlib.util.spec_from_file_location(f"deadline_{time.monotonic_ns()}", TEST_DAGS / "test_ops_deadline.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

    started = time.monotonic()
    dr = module.dag.test(run_conf={"email": "slow@example.com", "summary": json.dumps(summary)})
    seconds = time.monotonic() - started
    with create_session() as session:
        tis = {ti.task_id: ti for ti in dr.get_task_instances(session=session)}
    # Both tasks fail (the write gets no usable answer; the read-back times out), and neither waited for the
    # drip: an answer of a few hundred bytes at one byte per second would take minutes.
    assert {k: str(v.state) for k, v in tis.items()} == {"set_one": "failed", "verify": "failed"}
    assert (tis["set_one"].end_date - tis["set_one"].start_date).total_seconds() < 45
    assert (tis["verify"].end_date - tis["verify"].start_date).total_seconds() < 60
    assert seconds < 150, f"the run took {seconds:.0f} s"
    assert fake.counters.get("requests", 0) >= 2  # the answers were requested, and dripped
