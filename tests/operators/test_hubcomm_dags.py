"""The operators in real ``dag.test()`` runs against the bundled fake HubSpot (DAG files in ``tests/dags``)."""

from __future__ import annotations

import csv
import importlib.util
import json
import stat
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import TEST_DAGS

pytestmark = pytest.mark.integration


class Run:
    """Task states and XComs (``return_value`` and ``summary``) of one DAG run."""

    def __init__(self, dr: Any, seconds: float) -> None:
        from airflow.models.xcom import XComModel
        from airflow.utils.session import create_session

        self.seconds = seconds
        with create_session() as session:
            self.states = {ti.task_id: ti.state for ti in dr.get_task_instances(session=session)}
            rows = session.query(XComModel).filter_by(dag_id=dr.dag_id, run_id=dr.run_id).all()
            self.xcom = {(row.task_id, row.key): _value(row.value) for row in rows}

    def result(self, task_id: str) -> Any:
        return self.xcom[(task_id, "return_value")]


def _value(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str | bytes) else value


@pytest.fixture
def run_dag(airflow_db: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Return ``run(fake, dag_file, conf) -> Run``: load the DAG file and ``dag.test()`` it against ``fake``."""

    def run(fake: Any, name: str, conf: dict[str, Any]) -> Run:
        extra = {"requests_per_10s": 10_000, "max_retries": 3}
        monkeypatch.setenv("AIRFLOW_CONN_HUBCOMM_DEFAULT", fake.connection_json(**extra))
        spec = importlib.util.spec_from_file_location(f"{name}_{time.monotonic_ns()}", TEST_DAGS / f"{name}.py")
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        started = time.monotonic()
        dr = module.dag.test(run_conf=conf)
        return Run(dr, time.monotonic() - started)

    return run


def adds_up(summary: dict[str, Any]) -> bool:
    return (
        summary["written"] + summary["failed"] + summary["skipped"] == summary["rows_read"]
        and sum(summary["skipped_by_reason"].values()) == summary["skipped"]
        and sum(summary["failed_by_reason"].values()) == summary["failed"]
    )


def test_xcom_input_and_single_contact_operators(run_dag: Any, hubcomm_fake: Any, tmp_path: Path) -> None:
    hubcomm_fake.set_state("gone@example.com", 101, "UNSUBSCRIBED")
    conf = {"rows": 10, "out": str(tmp_path), "email": "single@example.com", "subscription": 102}
    run = run_dag(hubcomm_fake, "test_ops_xcom", {**conf, "opted_out": "gone@example.com"})
    assert run.states == {
        "produce": "success",
        "write": "success",
        "set_one": "success",
        "unsubscribe_all": "success",
        "resubscribe_refused": "failed",
    }

    summary = run.result("write")
    assert adds_up(summary)
    assert (summary["rows_read"], summary["written"], summary["failed"], summary["skipped"]) == (12, 10, 0, 2)
    assert summary["skipped_by_reason"]["duplicate"] == 1
    # Subscription 999 is not defined: the preflight skips its row before any write.
    assert summary["skipped_by_reason"]["unknown_subscription"] == 1
    assert summary["failed_by_reason"] == {}
    assert summary["requests"] == 4  # one definitions read, then 10 rows in 3 chunks of at most 4
    snapshot = hubcomm_fake.snapshot()
    assert snapshot[("xcom0@example.com", 101)] == "NOT_SPECIFIED"  # the later duplicate won
    assert all(snapshot[(f"xcom{i}@example.com", 101)] == "UNSUBSCRIBED" for i in range(1, 10))
    assert len(summary["written_rows"]) == 10
    (skipped,) = [json.loads(line) for line in Path(summary["failed_rows_path"]).read_text().splitlines()]
    assert (skipped["outcome"], skipped["reason"]) == ("skipped", "unknown_subscription")
    assert skipped["input"]["subscriberIdString"] == "unknown-sub@example.com"
    assert not any(sub == "unknown-sub@example.com" for sub, _ in hubcomm_fake.snapshot())
    assert Path(summary["failed_rows_path"]).parent == tmp_path

    one = run.result("set_one")
    assert one["results"][0]["status"] == "UNSUBSCRIBED"
    assert one["results"][0]["setStatusSuccessReason"] == "REQUESTED_CHANGE_OCCURRED"
    assert hubcomm_fake.status("single@example.com", 102)["legalBasis"] == "LEGITIMATE_INTEREST_CLIENT"
    assert run.result("unsubscribe_all")["results"]  # verbose: the statuses it changed
    assert hubcomm_fake.opted_out_of_all("single@example.com")
    assert hubcomm_fake.status("gone@example.com", 101)["status"] == "UNSUBSCRIBED"


N_ROWS = 100_000
N_DUP = 1_000


def _key(i: int) -> int:
    """Rows of the last ``N_DUP`` repeat the keys of rows 49,000-49,999 (same subscriber and subscription)."""
    return i - 50_000 if i >= N_ROWS - N_DUP else i


def _write_csv(path: Path) -> None:
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["subscriberIdString", "subscriptionId", "statusState"])
        for i in range(N_ROWS):
            k = _key(i)
            sid = 999 if k % 50 == 0 else 101 + k % 3  # 999: not defined; the preflight skips it
            # Mostly opt-outs; SUBSCRIBED rows (odd k below 4,000) make their chunks read current statuses first.
            state = "maybe" if i % 200 == 7 else ("subscribed" if k % 2 and k < 4_000 else "UNSUBSCRIBED")
            writer.writerow([f"User{k}@Example.com", sid, state])


@pytest.mark.slow
def test_100k_row_file_with_injected_failures(run_dag: Any, hubcomm_fake_factory: Any, tmp_path: Path) -> None:
    fake = hubcomm_fake_factory(error_rate_5xx=0.02, drop_after_write_rate=0.01, seed=5)
    # Contacts who opted out in HubSpot while the warehouse still says SUBSCRIBED (odd k below 2,000).
    opted_out = [k for k in range(1, 2_000, 2) if k % 200 != 7]
    for k in opted_out:
        fake.set_state(f"user{k}@example.com", 101 + k % 3, "UNSUBSCRIBED")
    path = tmp_path / "rows.csv"
    _write_csv(path)
    failed_path = tmp_path / "reports" / "failed.jsonl"
    run = run_dag(fake, "test_ops_file", {"path": str(path), "failed": str(failed_path), "out": str(tmp_path)})
    assert run.states == {"write": "success"}
    summary = run.result("write")
    print(
        json.dumps({k: v for k, v in summary.items() if k != "written_rows"}, indent=1),
        f"\ndag.test {run.seconds:.1f} s",
    )

    invalid, duplicates, unknown = 500, N_DUP - 5, 1_980
    assert adds_up(summary)
    assert summary["rows_read"] == N_ROWS
    assert summary["skipped_by_reason"] == {
        "invalid": invalid,
        "duplicate": duplicates,
        "unchanged": 0,
        "resubscribe_not_allowed": len(opted_out),
        "unknown_subscription": unknown,  # 999 is not defined: skipped by the preflight, never sent
        "inactive_subscription": 0,
        "dry_run": 0,
    }
    assert (summary["failed"], summary["failed_by_reason"]) == (0, {})  # every injected fault was retried
    assert summary["written"] == N_ROWS - invalid - duplicates - unknown - len(opted_out)
    assert summary["retries"] > 0  # injected 5xx answers and dropped connections were retried
    assert summary["requests"] < summary["plan"]["chunks"] + 20  # status reads only for the few SUBSCRIBED chunks
    assert summary["written_rows"] is None  # too many to inline: read the manifest

    snapshot = fake.snapshot()
    written = 0
    with Path(summary["written_rows_path"]).open() as fh:
        for line in fh:
            row = json.loads(line)
            written += 1
            assert snapshot[(row["subscriberIdString"].lower(), row["subscriptionId"])] == row["statusState"]
    assert written == summary["written"]
    assert all(snapshot[(f"user{k}@example.com", 101 + k % 3)] == "UNSUBSCRIBED" for k in opted_out)
    lines = [json.loads(line) for line in failed_path.read_text().splitlines()]
    by_outcome = {(line["outcome"], line.get("reason")) for line in lines}
    assert by_outcome == {
        ("skipped", "invalid"),
        ("skipped", "resubscribe_not_allowed"),
        ("skipped", "unknown_subscription"),
    }
    assert len(lines) == unknown + invalid + len(opted_out)


def test_modes(run_dag: Any, hubcomm_fake_factory: Any, tmp_path: Path) -> None:
    # The account's GDPR settings are on: HubSpot itself fails (per input) a write without a legal basis, the
    # one kind of row only HubSpot can refuse (an undefined subscription is skipped by the preflight).
    hubcomm_fake = hubcomm_fake_factory(require_legal_basis=True)

    def rows(prefix: str, n: int, state: str = "UNSUBSCRIBED", basis: bool = True) -> list[dict[str, Any]]:
        legal = {"legalBasis": "LEGITIMATE_INTEREST_CLIENT", "legalBasisExplanation": "asked support"}
        return [
            {
                "subscriberIdString": f"{prefix}{i}@example.com",
                "subscriptionId": 101,
                "statusState": state,
                **(legal if basis else {}),
            }
            for i in range(n)
        ]

    dry = tmp_path / "dry.jsonl"
    dry.write_text("".join(json.dumps(r) + "\n" for r in [*rows("dry", 6), rows("dry", 1)[0]]))
    hubcomm_fake.set_state("same0@example.com", 101, "UNSUBSCRIBED")
    hubcomm_fake.set_state("same1@example.com", 101, "UNSUBSCRIBED")
    bad = {"subscriberIdString": "bad@example.com", "subscriptionId": 101, "statusState": "OPTED_OUT"}
    conf = {
        "out": str(tmp_path),
        "dry_run": str(dry),
        "only_changes": rows("same", 4),
        "threshold": [*rows("thr", 2), *rows("thr-nobasis", 2, basis=False)],
        "invalid_fail": [*rows("fail", 3), bad],
        "invalid": [*rows("skip", 3), bad],
    }
    run = run_dag(hubcomm_fake, "test_ops_modes", conf)
    assert run.states == {
        "dry_run": "success",
        "only_changes": "success",
        "threshold": "failed",
        "invalid_fail": "failed",
        "invalid_skip": "success",
    }
    snapshot = hubcomm_fake.snapshot()

    dry_summary = run.result("dry_run")
    assert adds_up(dry_summary)
    assert dry_summary["plan"]["rows_to_send"] == 6
    assert dry_summary["plan"]["chunks"] == 2
    assert dry_summary["requests"] == 1  # a dry run preflights (one definitions read); it writes nothing
    assert dry_summary["skipped_by_reason"]["duplicate"] == 1
    assert not any(sub.startswith("dry") for sub, _ in snapshot)

    changes = run.result("only_changes")
    assert adds_up(changes)
    assert (changes["written"], changes["unchanged"]) == (2, 2)
    assert changes["requests"] == 3  # one definitions read, one batch read, one batch write

    threshold = run.xcom[("threshold", "summary")]
    assert ("threshold", "return_value") not in run.xcom
    assert (threshold["written"], threshold["failed"]) == (2, 2)  # the writes happened, then the task failed
    assert set(threshold["failed_by_reason"]) == {
        "VALIDATION_ERROR: legalBasis and legalBasisExplanation are required: "
        "this account's data privacy (GDPR) settings are on"
    }
    assert snapshot[("thr0@example.com", 101)] == "UNSUBSCRIBED"
    assert not any(sub.startswith("thr-nobasis") for sub, _ in snapshot)

    assert not any(sub.startswith("fail") for sub, _ in snapshot)  # validation failed: nothing sent
    skipped = run.result("invalid_skip")
    assert adds_up(skipped)
    assert (skipped["written"], skipped["skipped_by_reason"]["invalid"]) == (3, 1)
    (line,) = [json.loads(x) for x in Path(skipped["failed_rows_path"]).read_text().splitlines()]
    assert line["errors"][0]["field"] == "statusState"
    assert "SUBSCRIBED" in line["errors"][0]["allowed"]


def test_default_outputs_go_to_a_private_run_folder(
    run_dag: Any, hubcomm_fake: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 17.7: without ``output_dir``, e-mail addresses land in ``<tmp>/hubcomm/<dag>/<run>/<task>`` (0700)."""
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    rows = [{"subscriberIdString": "bad", "subscriptionId": 101, "statusState": "UNSUBSCRIBED"}]
    rows += [
        {"subscriberIdString": f"u{i}@example.com", "subscriptionId": 101, "statusState": "UNSUBSCRIBED"}
        for i in range(5)
    ]
    run = run_dag(hubcomm_fake, "test_ops_outputs", {"rows": rows})
    assert run.states == {"write": "success"}
    summary = run.result("write")
    assert (summary["written"], summary["skipped"]) == (5, 1)
    (run_folder,) = (tmp_path / "hubcomm" / "test_ops_outputs").iterdir()
    task_folder = run_folder / "write"
    assert run_folder.name.startswith("manual__")
    for level in (tmp_path / "hubcomm", tmp_path / "hubcomm" / "test_ops_outputs", run_folder, task_folder):
        assert stat.S_IMODE(level.stat().st_mode) == 0o700, level
    files = sorted(p.name for p in task_folder.iterdir())
    assert summary["failed_rows_path"] == str(task_folder / next(f for f in files if "-failed-" in f))
    assert not [f for f in files if f.endswith(".partial")]
    lines = [json.loads(x) for x in Path(summary["failed_rows_path"]).read_text().splitlines()]
    assert [(line["row"], line["outcome"]) for line in lines] == [(1, "skipped")]
    assert all("-test_ops_outputs-write-manual__" in f and "-try1-" in f for f in files), files
