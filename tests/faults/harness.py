"""Fault-run harness shared by ``tests/faults`` (50k rows in CI) and ``scripts/fault_run.py`` (1M rows).

A *scenario* is a set of :class:`~airflow_provider_hubcomm.testing.FakeHubSpot` knobs, connection extras
and optional chaos actions taken while the run goes (forced access-token expiry, a 429 burst, a refresh
token revoked, a SIGKILL). :func:`run_dag` runs DAG ``test_faults_batch_write`` (``tests/dags``) once,
in process with ``dag.test()`` or as a subprocess ``airflow dags test``, and :func:`check` compares what
the run *reported* (XCom summary, failed-rows file, written-rows manifest) with what the fake *holds*.

"Lost" rows are the ones that matter: a row not reported failed (nor skipped on purpose) whose state in
the fake is not the intended one. It must always be 0.

Rows for the unknown subscription (:data:`UNKNOWN_SUBSCRIPTION`) are accepted either failed with HubSpot's
per-input error, or skipped with reason ``unknown_subscription`` before any write (the engine's definitions
preflight, with the fault DAG's ``on_invalid="skip"``).
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow_provider_hubcomm.testing import FakeHubSpot

DAG_ID = "test_faults_batch_write"
TASK_ID = "write_statuses"
CONN_ID = "hubcomm_faults"
CONN_ENV = f"AIRFLOW_CONN_{CONN_ID.upper()}"
#: Subscriptions the fake knows; rows for :data:`UNKNOWN_SUBSCRIPTION` fail per input (HubSpot's 207), or are
#: skipped with reason :data:`UNKNOWN_REASON` by the engine's definitions preflight.
KNOWN = (101, 102, 103)
UNKNOWN_SUBSCRIPTION = 999
UNKNOWN_REASON = "unknown_subscription"
#: Forced expiry spares access tokens younger than this (seconds): a 401 on a token refreshed a moment ago
#: must stay what it is with HubSpot (whose fresh tokens live 30 minutes), a real authentication failure.
#: 1 s was too short on a loaded 2-core machine: a request's resend with the token refreshed for it reached
#: the fake 1.14 s after the refresh, met a forced expiry and (rightly) failed the run; 3 s leaves room.
MIN_TOKEN_AGE = 3.0
STATES = ("UNSUBSCRIBED", "UNSUBSCRIBED", "UNSUBSCRIBED", "NOT_SPECIFIED", "SUBSCRIBED")
#: The client's retry budget in these runs. Faults are drawn per attempt (about 13 % of attempts in
#: ``all_together``, 70 % during its 429 storm), so a request can meet more faults in a row than it may retry:
#: with 5 retries, six in a row (two in the storm, four after it) failed a 500-row chunk once in 4 repeated runs
#: of the fault suite (seen 2026-12-02). With 8 such a run is about a million times rarer; the client's own
#: default budget is not what these runs test.
MAX_RETRIES = 8

Key = tuple[str, int]


# -- input data --------------------------------------------------------------------------------------------


@dataclass
class Dataset:
    """One input file and what a correct run must leave behind.

    :param path: the CSV file.
    :param rows: data rows in it.
    :param intended: key -> state of the key's last row (the row that must win), unknown subscriptions excluded.
    :param last_row: key -> number of that row.
    :param unknown_rows: rows for a subscription the fake does not know (must be reported failed, or
        skipped with reason ``unknown_subscription``).
    :param unknown_superseded: unknown-subscription rows replaced by a later row of the same key (skipped as
        duplicates, or as ``unknown_subscription`` when a preflight looks at them first).
    :param superseded: rows replaced by a later row of the same key (must be skipped as duplicates).
    :param preset: state the fake holds before the run (set by :func:`preload`).
    :param guarded: keys preset ``UNSUBSCRIBED`` whose last row says ``SUBSCRIBED``: the re-subscribe guard
        must leave them ``UNSUBSCRIBED``.
    """

    path: Path
    rows: int
    intended: dict[Key, str] = field(default_factory=dict)
    last_row: dict[Key, int] = field(default_factory=dict)
    unknown_rows: set[int] = field(default_factory=set)
    unknown_superseded: set[int] = field(default_factory=set)
    superseded: int = 0
    preset: dict[Key, str] = field(default_factory=dict)
    guarded: set[Key] = field(default_factory=set)


def make_dataset(path: Path, rows: int, seed: int = 7) -> Dataset:
    """Write a realistic CSV extract: mixed states, legal bases, duplicates, odd case, unknown subscriptions.

    About 1 % of the rows repeat an earlier key (sometimes in another letter case) with a random state, 0.2 %
    target an unknown subscription, 0.5 % of the keys are preset to their intended state in the fake, and
    about 0.3 % of the keys whose last row says ``SUBSCRIBED`` are preset ``UNSUBSCRIBED`` (the re-subscribe
    guard must hold them).

    :param path: where to write the CSV.
    :param rows: number of data rows.
    :param seed: seed of the generator (the same seed gives the same file).
    """
    rng = random.Random(seed)
    ds = Dataset(path=path, rows=rows)
    keys: list[tuple[str, int]] = []
    with path.open("w", newline="", encoding="utf-8") as fh:
        out = csv.writer(fh)
        out.writerow(["subscriberIdString", "subscriptionId", "statusState", "legalBasis", "legalBasisExplanation"])
        for n in range(1, rows + 1):
            draw = rng.random()
            if draw < 0.01 and keys:
                email, sid = keys[rng.randrange(len(keys))]
                if rng.random() < 0.5:
                    email = email.upper()
            else:
                email, sid = f"contact{n}.{rng.randrange(10**6)}@example.com", KNOWN[n % 3]
                if draw > 0.998:
                    sid = UNKNOWN_SUBSCRIPTION
                keys.append((email, sid))
            # SUBSCRIBED rows (which make a chunk read current statuses first: the re-subscribe guard) come
            # in one block of 2,500 rows out of five, as in an extract sorted by segment: the guard's reads
            # meet the faults too, without doubling the cost of every chunk.
            state = STATES[rng.randrange(len(STATES) if (n // 2500) % 5 == 0 else len(STATES) - 1)]
            basis = ("LEGITIMATE_INTEREST_CLIENT", f"import {n}") if state == "UNSUBSCRIBED" and n % 4 else ("", "")
            out.writerow([email, sid, state, *basis])
            key = (email.lower(), sid)
            if key in ds.last_row:
                ds.superseded += 1
                if sid == UNKNOWN_SUBSCRIPTION:
                    ds.unknown_rows.discard(ds.last_row[key])
                    ds.unknown_superseded.add(ds.last_row[key])
            ds.last_row[key] = n
            if sid == UNKNOWN_SUBSCRIPTION:
                ds.unknown_rows.add(n)
            else:
                ds.intended[key] = state
    for key, state in ds.intended.items():
        draw = rng.random()
        if draw < 0.005:
            ds.preset[key] = state
        elif draw < 0.008 and state == "SUBSCRIBED":
            ds.preset[key] = "UNSUBSCRIBED"
            ds.guarded.add(key)
    return ds


def preload(fake: FakeHubSpot, ds: Dataset) -> None:
    """Put the dataset's preset states into the fake (as if contacts had clicked links before the run).

    :param fake: the fake.
    :param ds: the dataset.
    """
    for (email, sid), state in ds.preset.items():
        fake.set_state(email, sid, state)


# -- scenarios ---------------------------------------------------------------------------------------------


@dataclass
class Scenario:
    """Faults of one run.

    :param name: short name for tables and test ids.
    :param knobs: ``FakeHubSpot`` knobs.
    :param auth: connection auth mode (``private_app`` or ``oauth``).
    :param extra: connection extras (``timeout``, ``max_retries`` …).
    :param expire_every: force every OAuth access token to expire this often (seconds): 401s mid-run.
    :param burst: ``(fraction_of_rows_written, knobs, seconds)``: switch these knobs on for a while.
    :param time_bound: the run must end within this many seconds (excluding Airflow's one-off start-up).
    """

    name: str
    knobs: dict[str, Any] = field(default_factory=dict)
    auth: str = "private_app"
    extra: dict[str, Any] = field(default_factory=dict)
    expire_every: float | None = None
    burst: tuple[float, dict[str, Any], float] | None = None
    time_bound: float = 90.0

    def connection_json(self, fake: FakeHubSpot) -> str:
        """Return the connection (JSON form) of this scenario to ``fake``.

        :param fake: the fake.
        """
        extra = {"requests_per_10s": 10_000, "max_retries": MAX_RETRIES, **self.extra}
        return fake.connection_json(auth=self.auth, **extra)  # type: ignore[arg-type]


def scenarios(ci: bool) -> list[Scenario]:
    """Return the fault scenarios: each fault alone, then all together.

    :param ci: ``True`` for the 50k-row CI sizes (10 s token TTL), ``False`` for the 1M-row script (60 s).
        The client refreshes a token when 20 % of its life is left, and at least half of it with short
        lives (a 10 s token at 5 s): forced expiry, which spares tokens younger than :data:`MIN_TOKEN_AGE`,
        then still meets tokens in use (3 to 5 s old). ``oauth_expiry`` answers each request 0.35 s late so
        that its run (at least 11 s of sending) crosses several forced expiries on a fast machine too; forced expiry
        is tried every second (a token dies within 1 s of reaching :data:`MIN_TOKEN_AGE`).
    """
    ttl = 10.0 if ci else 60.0
    expire_every = 1.0 if ci else 20.0
    # The 429 answers carry X-HubSpot-RateLimit-* headers only when the fake has a budget: a huge one here,
    # with a 1 s window, so a 429 without Retry-After makes the client wait the 1 s interval, not 10 s.
    headers = {"requests_per_window": 1_000_000, "window_seconds": 1.0}
    storm = (0.3, {"error_rate_429": 0.7}, 1.5)
    # A spike (4 s) outlasts the client's attempt deadline (2 s) by far. The deadline itself leaves room for a
    # loaded machine: at 0.5 s, ordinary answers to 500-row chunks timed out at load 10-28 on 2 cores and one
    # request met six failures in a row (a chunk reported failed, 1 of 2 repeated runs).
    spikes = {"latency": 0.002, "latency_spike_rate": 0.02, "latency_spike_seconds": 4.0}
    attempt_deadline = {"timeout": 2.0}
    return [
        Scenario("5xx", {"error_rate_5xx": 0.05}),
        Scenario("drop_after_write", {"drop_after_write_rate": 0.01}),
        Scenario("oauth_expiry", {"token_ttl": ttl, "latency": 0.35}, auth="oauth", expire_every=expire_every),
        Scenario("429_retry_after", {**headers, "error_rate_429": 0.05, "send_retry_after": True}, burst=storm),
        Scenario("429_no_retry_after", {**headers, "error_rate_429": 0.05, "send_retry_after": False}, burst=storm),
        Scenario("latency_spikes", spikes, extra=attempt_deadline),
        Scenario(
            "all_together",
            {
                **headers,
                **spikes,
                "error_rate_5xx": 0.05,
                "drop_after_write_rate": 0.01,
                "error_rate_429": 0.05,
                "token_ttl": ttl,
            },
            auth="oauth",
            extra=attempt_deadline,
            expire_every=expire_every,
            burst=storm,
            time_bound=150.0,
        ),
    ]


# -- chaos while the run goes ------------------------------------------------------------------------------


def expire_old_access_tokens(fake: FakeHubSpot, min_age: float = MIN_TOKEN_AGE) -> int:
    """Expire the fake's OAuth access tokens issued at least ``min_age`` seconds ago; return how many.

    ``FakeHubSpot.expire_all_access_tokens`` also expires a token issued a millisecond ago: the client
    would then meet a 401 on a freshly refreshed token, which it rightly treats as an authentication
    failure (a real HubSpot token lives 30 minutes). This reaches into the fake's token registry
    (``testing/_auth.py``: token -> ``(client_id, monotonic expiry)``, expiry = issue + ``token_ttl``).

    :param fake: the fake.
    :param min_age: the youngest token age (seconds) that may be expired.
    """
    registry = fake._app.tokens
    ttl = float(fake.config.token_ttl)
    now = time.monotonic()
    expired = 0
    with registry._lock:
        tokens = {}
        for token, (client, expiry) in registry._access.items():
            if expiry > now and expiry - ttl <= now - min_age:
                expiry = now
                expired += 1
            tokens[token] = (client, expiry)
        registry._access = tokens
    return expired


class Chaos:
    """Background thread acting on the fake while a run goes: token expiry, 429 bursts, revocation, kill.

    :param fake: the fake.
    :param scenario: what to do.
    :param rows: rows of the run (for progress fractions).
    :param at_progress: ``(fraction, callback)`` pairs: call ``callback()`` once when that fraction of the
        rows has been applied by the fake (``writes_applied`` counter, relative to the start).
    """

    def __init__(
        self,
        fake: FakeHubSpot,
        scenario: Scenario,
        rows: int,
        at_progress: list[tuple[float, Any]] | None = None,
    ) -> None:
        self.fake = fake
        self.scenario = scenario
        self.rows = rows
        self.actions = sorted(at_progress or [], key=lambda a: a[0])
        if scenario.burst is not None:
            fraction, knobs, seconds = scenario.burst
            self.actions.append((fraction, lambda: self._burst(knobs, seconds)))
            self.actions.sort(key=lambda a: a[0])
        if scenario.expire_every:
            # Also expire at fixed progress points: a fast machine may finish before the timer fires twice,
            # and the scenario must cross several expiries whatever the speed.
            self.actions.extend((fraction, self._expire) for fraction in (0.25, 0.5, 0.75))
            self.actions.sort(key=lambda a: a[0])
        self.expiries = 0
        self.bursts = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="fault-chaos", daemon=True)
        self._base = fake.counters.get("writes_applied", 0)

    def _expire(self) -> None:
        if expire_old_access_tokens(self.fake):
            self.expiries += 1

    def _burst(self, knobs: dict[str, Any], seconds: float) -> None:
        before = {k: getattr(self.fake.config, k) for k in knobs}
        self.fake.configure(**knobs)
        self.bursts += 1
        self._stop.wait(seconds)
        self.fake.configure(**before)

    def _loop(self) -> None:
        every = self.scenario.expire_every
        next_expiry = time.monotonic() + every if every else None
        pending = list(self.actions)
        while not self._stop.is_set():
            applied = self.fake.counters.get("writes_applied", 0) - self._base
            while pending and applied >= pending[0][0] * self.rows:
                pending.pop(0)[1]()
            if next_expiry is not None and time.monotonic() >= next_expiry:
                self._expire()
                next_expiry += every  # type: ignore[operator]
            self._stop.wait(0.05)

    def __enter__(self) -> Chaos:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


# -- running the DAG ---------------------------------------------------------------------------------------


@dataclass
class RunResult:
    """What one DAG run reported and how long it took."""

    state: str
    seconds: float
    summary: dict[str, Any] | None
    xcoms: dict[str, Any]
    run_id: str | None = None
    output: str = ""


def run_conf(ds: Dataset, workdir: Path) -> dict[str, str]:
    """Return the run's ``conf``: input file, output directory and failed-rows file.

    :param ds: the dataset.
    :param workdir: directory of the run's outputs.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    return {"inputs": str(ds.path), "output_dir": str(workdir), "failed_rows_path": str(workdir / "failed.jsonl")}


def read_xcoms(run_id: str) -> dict[str, Any]:
    """Return every XCom of the batch task in one run, by key (values decoded).

    :param run_id: the DAG run.
    """
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    out: dict[str, Any] = {}
    with create_session() as session:
        query = session.query(XComModel).filter(XComModel.dag_id == DAG_ID, XComModel.run_id == run_id)
        for row in query:
            value = row.value
            if isinstance(value, str | bytes):
                with contextlib.suppress(ValueError):
                    value = json.loads(value)
            out[row.key] = value
    return out


def dag_test(ds: Dataset, workdir: Path, task_options: dict[str, Any] | None = None) -> RunResult:
    """Run the DAG in process with ``dag.test()`` (the connection comes from ``AIRFLOW_CONN_HUBCOMM_FAULTS``).

    :param ds: the dataset.
    :param workdir: directory of the run's outputs.
    :param task_options: attributes to set on the batch task before the run (``batch_size`` …).
    """
    from tests.dags.test_faults_batch import dag

    task = dag.get_task(TASK_ID)
    saved = {name: getattr(task, name) for name in task_options or {}}
    for name, value in (task_options or {}).items():
        setattr(task, name, value)
    try:
        start = time.monotonic()
        dr = dag.test(run_conf=run_conf(ds, workdir))
        seconds = time.monotonic() - start
    finally:
        for name, value in saved.items():
            setattr(task, name, value)
    xcoms = read_xcoms(dr.run_id)
    summary = xcoms.get("return_value") or xcoms.get("summary")
    return RunResult(str(dr.state), seconds, summary, xcoms, dr.run_id)


def airflow_dags_test(
    ds: Dataset,
    workdir: Path,
    *,
    env: dict[str, str],
    kill_when: Any = None,
    timeout: float = 600.0,
) -> RunResult:
    """Run ``airflow dags test`` in a subprocess; SIGKILL it (and its children) once ``kill_when()`` is true.

    :param ds: the dataset.
    :param workdir: directory of the run's outputs and of the subprocess's output file.
    :param env: environment of the subprocess (Airflow home, connection …).
    :param kill_when: callable polled every 50 ms; ``None`` lets the run finish.
    :param timeout: give up (and kill) after this many seconds.
    """
    import psutil

    conf = json.dumps(run_conf(ds, workdir))
    log_path = workdir / "airflow-dags-test.out"
    start = time.monotonic()
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "airflow", "dags", "test", DAG_ID, "-c", conf],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        state = "running"
        try:
            while proc.poll() is None:
                if time.monotonic() - start > timeout or (kill_when is not None and kill_when()):
                    children = psutil.Process(proc.pid).children(recursive=True)
                    proc.send_signal(signal.SIGKILL)
                    for child in children:
                        with contextlib.suppress(psutil.NoSuchProcess):
                            child.send_signal(signal.SIGKILL)
                    proc.wait()
                    state = "killed"
                    break
                time.sleep(0.05)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    seconds = time.monotonic() - start
    if state != "killed":
        state = "success" if proc.returncode == 0 else f"exit {proc.returncode}"
    return RunResult(state, seconds, None, {}, output=log_path.read_text(errors="replace"))


# -- checking ----------------------------------------------------------------------------------------------


def read_jsonl(path: str | Path | None) -> list[dict[str, Any]]:
    """Return the records of a JSON-lines file (``[]`` for ``None`` or a missing file).

    :param path: the file.
    """
    if not path or not Path(path).exists():
        return []
    with Path(path).open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def injected_faults(fake: FakeHubSpot, timeout: float | None) -> dict[str, int]:
    """Count the faults the fake injected, from its counters (and its request log for slow answers).

    Latency spikes are counted when the fake decides them: a spiked answer (4 s) may still be on its way when
    a fast run has ended (the client gave up on it after its 2 s deadline), so the request log, written when
    an answer completes, can miss it (seen: 3 retries for "0 faults" in a 4.1 s run on a quiet machine).

    :param fake: the fake.
    :param timeout: the client's attempt deadline; other answers slower than this (a loaded machine) count too.
    """
    counters = fake.counters
    faults = {
        "5xx": counters.get("injected_5xx", 0),
        "dropped_after_write": counters.get("dropped_after_write", 0),
        "429_injected": counters.get("injected_429", 0),
        "429_rate_limited": counters.get("rate_limited", 0),
        "401_expired": counters.get("unauthorized", 0),
        "latency_spikes": counters.get("latency_spikes", 0),
        "slow_answers": 0,
    }
    if timeout is not None:
        # Completed answers slower than the deadline (spiked ones that completed are counted twice: lenient).
        faults["slow_answers"] = sum(
            1 for e in fake.request_log if e["endpoint"] != "token" and e["duration_ms"] >= timeout * 1000
        )
    return faults


def check(
    ds: Dataset,
    fake: FakeHubSpot,
    result: RunResult,
    scenario: Scenario,
    *,
    chaos: Chaos | None = None,
    expect_failed_run: bool = False,
    exact: bool = True,
) -> dict[str, Any]:
    """Compare what the run reported with the fake's state; return the figures, raise on any violation.

    Checked: the run's end state; ``written + failed + skipped == rows_read == rows in the file``; every
    failed row in the failed-rows file with a reason; duplicates skipped exactly; every row not reported
    failed holds its intended state (guarded keys stay ``UNSUBSCRIBED``), nothing else was written;
    written-rows manifest consistent; retries within the policy; the time bound.

    :param ds: the dataset.
    :param fake: the fake.
    :param result: the run.
    :param scenario: its faults.
    :param chaos: the chaos thread of the run (forced expiries, bursts), for the figures.
    :param expect_failed_run: the run is meant to fail (revoked token): the summary is under key ``summary``.
    :param exact: also require that no row failed except the unknown-subscription ones.
    """
    problems: list[str] = []
    summary = result.summary
    if summary is None:
        raise AssertionError(f"{scenario.name}: no summary XCom (run state {result.state})")
    wanted_state = "failed" if expect_failed_run else "success"
    if result.state != wanted_state:
        problems.append(f"run state {result.state}, expected {wanted_state}")

    written, failed, skipped = summary["written"], summary["failed"], summary["skipped"]
    if summary["rows_read"] != ds.rows:
        problems.append(f"rows_read {summary['rows_read']} != rows in the file {ds.rows}")
    if written + failed + skipped != summary["rows_read"]:
        problems.append(f"written {written} + failed {failed} + skipped {skipped} != rows_read")

    failed_file = read_jsonl(summary["failed_rows_path"])
    failed_lines = [r for r in failed_file if r["outcome"] == "failed"]
    skipped_lines = [r for r in failed_file if r["outcome"] == "skipped"]
    if len(failed_lines) != failed:
        problems.append(f"failed-rows file lists {len(failed_lines)} failed rows, summary says {failed}")
    no_reason = [r["row"] for r in failed_lines if not (r.get("message") or "").strip()]
    if no_reason:
        problems.append(f"{len(no_reason)} failed rows without a reason, e.g. rows {no_reason[:5]}")
    failed_rows = {r["row"] for r in failed_lines}
    skipped_rows = {r["row"] for r in skipped_lines}
    unknown_skips = {r["row"] for r in skipped_lines if r.get("reason") == UNKNOWN_REASON}
    wrongly_unknown = unknown_skips - ds.unknown_rows - ds.unknown_superseded
    if wrongly_unknown:
        problems.append(f"{len(wrongly_unknown)} rows skipped {UNKNOWN_REASON} for a known subscription")
    if summary["skipped_by_reason"].get(UNKNOWN_REASON, 0) != len(unknown_skips):
        problems.append(f"skipped_by_reason[{UNKNOWN_REASON!r}] does not match the failed-rows file")
    # A superseded unknown-subscription row is skipped either as a duplicate or, by a preflight, as unknown.
    duplicates = summary["skipped_by_reason"].get("duplicate", 0) + len(unknown_skips & ds.unknown_superseded)
    if duplicates != ds.superseded:
        problems.append(f"duplicates skipped {duplicates} != {ds.superseded}")
    missing_unknown = ds.unknown_rows - failed_rows - unknown_skips
    if missing_unknown:
        problems.append(f"{len(missing_unknown)} unknown-subscription rows neither failed nor skipped {UNKNOWN_REASON}")
    spurious = failed_rows - ds.unknown_rows
    if exact and not expect_failed_run and spurious:
        reasons = Counter(r["message"][:120] for r in failed_lines if r["row"] in spurious)
        problems.append(f"{len(spurious)} rows failed beyond the unknown-subscription ones: {dict(reasons)}")

    snapshot = fake.snapshot()
    lost: list[tuple[Key, str, str | None]] = []
    for key, state in ds.intended.items():
        row = ds.last_row[key]
        if row in failed_rows:
            continue
        want = "UNSUBSCRIBED" if key in ds.guarded else state
        if snapshot.get(key) != want:
            lost.append((key, want, snapshot.get(key)))
    allowed_keys = set(ds.intended) | set(ds.preset)
    stray = [k for k in snapshot if k not in allowed_keys]
    if lost:
        problems.append(f"{len(lost)} rows LOST (not reported failed, wrong state in HubSpot), e.g. {lost[:3]}")
    if stray:
        problems.append(f"{len(stray)} keys written that no input row asked for, e.g. {stray[:3]}")
    guard_skips = [r for r in skipped_lines if r.get("reason") == "resubscribe_not_allowed"]
    if any(
        r["row"] != ds.last_row.get((r["input"]["subscriberIdString"].lower(), r["input"]["subscriptionId"]))
        for r in guard_skips
    ):
        problems.append("a re-subscribe skip is not the last row of its key")
    guarded_rows = {ds.last_row[k] for k in ds.guarded}
    unexplained_skips = skipped_rows - guarded_rows - unknown_skips
    if unexplained_skips:
        problems.append(f"{len(unexplained_skips)} rows skipped in the failed-rows file without being guarded")

    manifest = read_jsonl(summary["written_rows_path"])
    if len(manifest) != written:
        problems.append(f"written-rows manifest has {len(manifest)} lines, summary says {written}")
    wrong_written = [
        m["row"]
        for m in manifest
        if snapshot.get((m["subscriberIdString"].lower(), m["subscriptionId"])) != m["statusState"]
    ]
    if wrong_written:
        problems.append(f"{len(wrong_written)} rows reported written do not hold their state, e.g. {wrong_written[:5]}")

    timeout = scenario.extra.get("timeout")
    faults = injected_faults(fake, timeout)
    n_faults = sum(v for k, v in faults.items() if k != "401_expired")
    counters = fake.counters
    api_attempts = counters.get("requests", 0) - counters.get("endpoint:token", 0)
    retries = summary["retries"]
    logical = max(api_attempts - retries, 1)
    if retries > 2 * n_faults + 2:
        problems.append(f"retry storm: {retries} retries for {n_faults} injected faults")
    if retries > logical * MAX_RETRIES:
        problems.append(f"{retries} retries > {logical} requests x max_retries {MAX_RETRIES}")
    token_requests = counters.get("endpoint:token", 0)
    if scenario.auth == "oauth" and not expect_failed_run:
        ttl = float(scenario.knobs.get("token_ttl", 1800.0))
        expiries = chaos.expiries if chaos else 0
        bound = 2 + expiries + int(result.seconds / (ttl / 2)) + 1
        if token_requests > bound:
            problems.append(f"{token_requests} token requests, more than {bound} (refresh loop?)")
    if result.seconds > scenario.time_bound:
        problems.append(f"run took {result.seconds:.1f} s, more than {scenario.time_bound} s")

    figures = {
        "scenario": scenario.name,
        "rows": ds.rows,
        "written": written,
        "failed": failed,
        "skipped": skipped,
        "faults": n_faults,
        "fault_detail": {k: v for k, v in faults.items() if v},
        "retries": retries,
        "requests": summary["requests"],
        "token_requests": token_requests,
        "forced_expiries": chaos.expiries if chaos else 0,
        "seconds": round(result.seconds, 1),
        "lost": len(lost),
    }
    if problems:
        raise AssertionError(f"{scenario.name}: " + "; ".join(problems) + f"\nfigures: {figures}")
    return figures


def subprocess_env(extra: dict[str, str]) -> dict[str, str]:
    """Return the environment of an ``airflow dags test`` subprocess: this process's plus ``extra``.

    :param extra: variables to add (the connection …).
    """
    return {**os.environ, **extra}
