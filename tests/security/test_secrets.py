"""No secret leaves the provider: not in task logs, XCom, exceptions, reprs, output files or the request log.

The fake runs in echo mode: its error answers quote the request's ``Authorization`` header (and the token
endpoint's the posted form), as a careless proxy would, so every secret reaches the provider in server text.

Secrets: the private-app token, the OAuth client secret, the refresh token, every access token the fake
issued (``oat-fake-…``) and every rotated refresh token (``rt-fake-…``). They are unique strings, so a plain
substring search is exact. Searched, after real ``dag.test()`` runs (success, per-row failures, retries,
token expiries, a failing refresh and a 401 abort) and direct hook calls:

* the task logs: ``dag.test()`` runs tasks in process and writes their logs to this process's stdout/stderr
  (captured with ``capfd``); plus every file under ``AIRFLOW_HOME`` (``logs/`` if Airflow wrote any, and the
  SQLite metadata database itself, which holds XComs, rendered template fields, run confs and task states);
* the XComs of every run (decoded), read from the metadata database;
* the text and ``repr`` of every exception raised, and the reprs of hook, config, auth flow and operator;
* the failed-rows files and written-rows manifests;
* the fake's request log and counters.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_hubcomm.exceptions import HubCommAuthError
from airflow_provider_hubcomm.hooks.hubcomm import HubCommHook
from airflow_provider_hubcomm.models import StatusUpdate
from tests.faults import harness
from tests.faults.harness import CONN_ENV, Chaos, Scenario, dag_test, make_dataset, read_xcoms

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("airflow_db")]

PAT = "pat-na1-SECRETPAT-7f3a9c61e2"
CLIENT_SECRET = "cs-SECRETCLIENT-51be0c44"
REFRESH = "rf-SECRETREFRESH-90d2b7aa"
ACCESS_PREFIX = "oat-fake-"  # every access token the fake issues starts so
ROTATED_PREFIX = "rt-fake-"  # every rotated refresh token too
SECRETS = (PAT, CLIENT_SECRET, REFRESH, ACCESS_PREFIX, ROTATED_PREFIX)


def find_secrets(name: str, text: str | bytes) -> list[str]:
    data = text.encode("utf-8", "replace") if isinstance(text, str) else text
    return [f"{s!r} in {name}" for s in SECRETS if s.encode() in data]


def write_input(path: Path, rows: int) -> harness.Dataset:
    """A dataset (with rows for an undefined subscription) plus rows that fail validation (skipped)."""
    ds = make_dataset(path, rows, seed=11)
    with path.open("a", encoding="utf-8") as fh:
        fh.write("not-an-email,101,UNSUBSCRIBED,,\n")
        # Not a name (no letter): a name would make validation read the definitions, and an auth failure
        # there ends the run before the engine's accounting (no summary XCom to search).
        fh.write("x@example.com,-5,UNSUBSCRIBED,,\n")
        fh.write("y@example.com,101,MAYBE,,\n")
    return ds


def test_no_secret_in_logs_xcom_errors_reprs_files_or_request_log(
    hubcomm_fake_factory: Any,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    fake = hubcomm_fake_factory(
        private_app_tokens=[PAT],
        oauth_clients=[{"client_id": "cid-public", "client_secret": CLIENT_SECRET, "refresh_token": REFRESH}],
        token_ttl=2.0,
        rotate_refresh_tokens=True,
        error_rate_5xx=0.05,
        # GDPR settings on: HubSpot refuses (per input) the rows without a legal basis, so HubSpot's error
        # answers reach the failed-rows files (the undefined subscription's rows are skipped by the preflight).
        require_legal_basis=True,
        # A careless proxy: every error answer quotes the Authorization header, the token endpoint the form.
        echo_secrets=True,
    )
    ds = write_input(tmp_path / "in.csv", 3000)
    options = {"on_invalid": "skip", "batch_size": 50}
    runs: list[harness.RunResult] = []

    # 1. Private app: retries, per-row failures, skipped invalid rows.
    monkeypatch.setenv(CONN_ENV, fake.connection_json(auth="private_app", requests_per_10s=10_000))
    runs.append(dag_test(ds, tmp_path / "run-private", options))
    # 2. OAuth: access tokens expire and refresh tokens rotate during the run.
    monkeypatch.setenv(CONN_ENV, fake.connection_json(auth="oauth", requests_per_10s=10_000))
    expired: list[bool] = []

    def expire() -> None:
        fake.expire_all_access_tokens()
        expired.append(True)

    # About half the rows are refused (no legal basis): expire once a quarter of the rows were applied.
    with Chaos(fake, Scenario("secrets"), ds.rows, at_progress=[(0.25, expire)]):
        runs.append(dag_test(ds, tmp_path / "run-oauth", options))
    # 3. The same connection again: its refresh token was rotated away, so the refresh fails.
    runs.append(dag_test(ds, tmp_path / "run-refresh-fails", options))
    # 4. A wrong private-app token (a secret too): 401, the run aborts.
    monkeypatch.setenv(CONN_ENV, json.dumps({**json.loads(fake.connection_json()), "password": PAT + "-wrong"}))
    runs.append(dag_test(ds, tmp_path / "run-401", options))

    assert [r.state for r in runs] == ["success", "success", "failed", "failed"]
    assert runs[0].summary
    assert runs[0].summary["retries"] > 0
    assert runs[0].summary["failed"] > 0
    assert any("legalBasis" in reason for reason in runs[0].summary["failed_by_reason"])
    assert runs[0].summary["skipped_by_reason"]["unknown_subscription"] > 0
    assert runs[1].summary
    assert runs[1].summary["skipped_by_reason"]["invalid"] == 3
    assert expired
    assert fake.counters["token_issued"] >= 2  # before and after the forced expiry
    assert fake.refresh_tokens
    assert REFRESH not in fake.refresh_tokens

    # Direct hook calls: an exception with a refused refresh, one with a 401, reprs after a refresh.
    errors: list[BaseException] = []
    monkeypatch.setenv(CONN_ENV, fake.connection_json(auth="oauth"))
    with pytest.raises(HubCommAuthError) as refused:
        HubCommHook(harness.CONN_ID).get_definitions()
    errors.append(refused.value)
    live_refresh = next(iter(fake.refresh_tokens))
    conn = json.loads(fake.connection_json(auth="oauth"))
    conn["extra"]["refresh_token"] = live_refresh
    monkeypatch.setenv(CONN_ENV, json.dumps(conn))
    hook = HubCommHook(harness.CONN_ID, retry_sleep=lambda _s: None)
    update = StatusUpdate.model_validate(
        {
            "subscriptionId": 101,
            "statusState": "UNSUBSCRIBED",
            "legalBasis": "LEGITIMATE_INTEREST_CLIENT",  # the fake requires one (GDPR settings on)
            "legalBasisExplanation": "asked support",
        }
    )
    hook.set_status("someone@example.com", update)
    fake.expire_all_access_tokens()
    hook.get_statuses("someone@example.com")
    reprs = [repr(hook), repr(hook.config), str(hook.config), repr(hook.auth), str(hook.stats)]
    reprs += [repr(hook.retry_policy), repr(hook.rate_limiter), repr(hook.client)]
    hook.close()
    from tests.dags.test_faults_batch import dag

    reprs.append(repr(dag.get_task(harness.TASK_ID)))

    found: list[str] = []
    searched: dict[str, int] = {}

    def search(name: str, text: str | bytes) -> None:
        searched[name] = len(text)
        found.extend(find_secrets(name, text))

    out = capfd.readouterr()
    search("task logs (stdout)", out.out)
    search("task logs (stderr)", out.err)
    search("python log records", caplog.text)
    home = Path(os.environ["AIRFLOW_HOME"])
    for path in sorted(p for p in home.rglob("*") if p.is_file()):
        search(f"AIRFLOW_HOME/{path.relative_to(home)}", path.read_bytes())
    for n, run in enumerate(runs, 1):
        assert run.run_id
        xcoms = read_xcoms(run.run_id)
        assert xcoms, f"run {n} pushed no XCom"
        search(f"XComs of run {n}", json.dumps(xcoms, default=str))
    for path in sorted(tmp_path.rglob("*.jsonl")):
        search(f"output file {path.relative_to(tmp_path)}", path.read_bytes())
    for n, err in enumerate(errors, 1):
        search(f"exception {n} str", str(err))
        search(f"exception {n} repr", repr(err))
        search(f"exception {n} args", repr(err.args))
    for n, text in enumerate(reprs, 1):
        search(f"repr {n}", text)
    search("fake request log", json.dumps(fake.request_log))
    search("fake counters", json.dumps(fake.counters))

    print("searched:", json.dumps(searched, indent=1))
    # The searches found what they should have found: the logs are there, the failure is explained.
    assert searched["task logs (stdout)"] > 10_000
    assert "OAuth refresh for connection 'hubcomm_faults' failed" in out.out + out.err
    assert any(name.startswith("AIRFLOW_HOME/") and name.endswith(".db") for name in searched)
    assert any(name.startswith("output file") and "failed" in name for name in searched)
    # Echo mode really put secrets into server text the provider received: 5xx, 401 and token-endpoint answers.
    echoed = sum(fake.counters.get(k, 0) for k in ("injected_5xx", "unauthorized", "token_refused"))
    assert echoed > 0, fake.counters
    assert found == []
