"""Issue 9: unattended batch runs against a throttling, flapping, connection-dropping HubSpot.

Every test runs ``BatchWriteStatusesOperator`` through a real ``dag.test()`` (DAG ``test_faults_batch_write``
in ``tests/dags``) against the bundled fake, and checks with :func:`tests.faults.harness.check` that the run
converged and told the truth: final state, row accounting, reasons, retries within the policy, time bound.

Sizes: ``HUBCOMM_FAULT_ROWS`` rows (50,000 by default, the CI size); ``scripts/fault_run.py`` runs the same
scenarios with 1,000,000 rows. ``HUBCOMM_FAULT_FIGURES=<file>`` appends each run's figures as JSON lines.
"""

from __future__ import annotations

import json
import os
import tempfile
from typing import TYPE_CHECKING, Any

import pytest

from tests.faults import harness
from tests.faults.harness import CONN_ENV, Chaos, Scenario, check, dag_test, make_dataset, preload

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = [pytest.mark.faults, pytest.mark.integration, pytest.mark.usefixtures("airflow_db")]

ROWS = int(os.environ.get("HUBCOMM_FAULT_ROWS", "50000"))
SCENARIOS = {s.name: s for s in harness.scenarios(ci=True)}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> harness.Dataset:
    return make_dataset(tmp_path_factory.mktemp("fault-input") / "consent.csv", ROWS)


def record(figures: dict[str, Any]) -> None:
    print(f"\nFAULT FIGURES {json.dumps(figures)}")
    target = os.environ.get("HUBCOMM_FAULT_FIGURES")
    if target:
        with open(target, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(figures) + "\n")


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_converges_and_tells_the_truth(
    name: str,
    dataset: harness.Dataset,
    hubcomm_fake_factory: Any,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    scenario = SCENARIOS[name]
    fake = hubcomm_fake_factory(**scenario.knobs)
    preload(fake, dataset)
    monkeypatch.setenv(CONN_ENV, scenario.connection_json(fake))
    with Chaos(fake, scenario, dataset.rows) as chaos:
        result = dag_test(dataset, tmp_path)
    figures = check(dataset, fake, result, scenario, chaos=chaos)
    record(figures)
    if name != "oauth_expiry":
        assert figures["faults"] > 0, "the scenario injected no fault"
    else:
        assert figures["token_requests"] >= 3, "the run did not cross several token expiries"
        assert figures["fault_detail"].get("401_expired", 0) > 0, "no request met an expired token"


def test_revoked_refresh_token_fails_clearly_without_a_loop(
    dataset: harness.Dataset,
    hubcomm_fake_factory: Any,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
) -> None:
    scenario = Scenario("revoked_refresh_token", {"token_ttl": 2.0}, auth="oauth", time_bound=60.0)
    fake = hubcomm_fake_factory(**scenario.knobs)
    preload(fake, dataset)
    monkeypatch.setenv(CONN_ENV, scenario.connection_json(fake))
    refresh_token = fake.oauth_client["refresh_token"]
    seen: dict[str, int] = {}

    def revoke() -> None:
        assert fake.revoke_refresh_token(refresh_token)
        fake.expire_all_access_tokens()
        seen["token_requests"] = fake.counters.get("endpoint:token", 0)

    with Chaos(fake, scenario, dataset.rows, at_progress=[(0.3, revoke)]) as chaos:
        result = dag_test(dataset, tmp_path)
    assert seen, "the run ended before the refresh token was revoked"
    figures = check(dataset, fake, result, scenario, chaos=chaos, expect_failed_run=True, exact=False)
    summary = result.summary
    assert summary is not None
    # Clear failure: the task failed on the refresh, the summary names it, the rows not sent say why.
    assert any("BAD_REFRESH_TOKEN" in key or "refresh" in key.lower() for key in summary["failed_by_reason"])
    assert any(key.startswith("not sent: run aborted") for key in summary["failed_by_reason"])
    assert 0 < summary["written"] < dataset.rows
    out = capfd.readouterr()
    log = out.out + out.err
    assert "OAuth refresh for connection 'hubcomm_faults' failed" in log
    assert "BatchAbortedError" in log or "Batch run aborted" in log
    # No loop: after the revocation, at most one refresh attempt per worker thread and chunk in flight.
    after = fake.counters.get("endpoint:token", 0) - seen["token_requests"]
    assert 1 <= after <= 8, f"{after} token requests after the revocation"
    assert fake.counters.get("token_refused", 0) == after
    figures["token_requests_after_revocation"] = after
    record(figures)


def test_killed_mid_run_then_rerun_converges(
    dataset: harness.Dataset,
    hubcomm_fake_factory: Any,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    scenario = SCENARIOS["all_together"]
    fake = hubcomm_fake_factory(**scenario.knobs)
    preload(fake, dataset)
    conn = scenario.connection_json(fake)
    monkeypatch.setenv(CONN_ENV, conn)
    # Both runs' temp dir: a SIGKILL gives the first run no chance to remove its work folder (its valid rows,
    # e-mail addresses included); the rerun must remove it.
    temp = tmp_path / "temp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))

    def part_way() -> bool:
        return fake.counters.get("writes_applied", 0) >= 0.3 * dataset.rows

    with Chaos(fake, scenario, dataset.rows):
        killed = harness.airflow_dags_test(
            dataset,
            tmp_path / "killed",
            env=harness.subprocess_env({CONN_ENV: conn, "TMPDIR": str(temp)}),
            kill_when=part_way,
        )
    assert killed.state == "killed", f"the first run was not killed part-way: {killed.state}\n{killed.output[-3000:]}"
    left = sorted(p.name for p in temp.glob("hubcomm-*"))
    assert left, "the killed run left no work folder: the check below would prove nothing"
    applied = fake.counters.get("writes_applied", 0)
    assert 0.3 * dataset.rows <= applied < dataset.rows, applied
    before_rerun = fake.snapshot()
    assert any(fake_state != dataset.intended.get(k) for k, fake_state in before_rerun.items()) or len(
        before_rerun
    ) < len(dataset.intended), "the killed run had already finished"

    fake.reset_counters()  # the figures below are the rerun's (the state is kept)
    with Chaos(fake, scenario, dataset.rows) as chaos:
        rerun = dag_test(dataset, tmp_path / "rerun")
    figures = check(dataset, fake, rerun, scenario, chaos=chaos)
    remaining = sorted(p.name for p in temp.glob("hubcomm-*"))
    assert not remaining, f"work folders left after the rerun: {remaining} (the killed run's: {left})"
    figures["scenario"] = "killed_then_rerun"
    figures["killed_after_seconds"] = round(killed.seconds, 1)
    figures["applied_before_kill"] = applied
    record(figures)
