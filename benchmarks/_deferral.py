"""Item 5 of ``benchmarks/run.py``: a deferred BatchStatusSensor holds no worker slot, shown on a real Airflow.

``dag.test()`` runs triggers inline, so this starts a real deployment on 127.0.0.1 in a temporary
``AIRFLOW_HOME`` (SQLite, LocalExecutor): ``api-server``, ``scheduler``, ``dag-processor`` and ``triggerer``,
each in its own session so that every child (LocalExecutor workers, task supervisors) can be stopped by
process group. The fake HubSpot runs in ``batch_mode="delayed"``: batch writes answer ``PENDING`` and show up
``batch_delay`` seconds later, so the sensor has to wait.

The DAGs (``benchmarks/dags/hubcomm_deferral_bench.py``) put ``write``, ``verify`` (the sensor, highest
priority) and ``other`` (a 2 s task) into a pool of ONE slot. Both DAGs run at the same time, each with its
own pool: the deferrable one and the poke-mode control. The task-instance states are polled through the
REST API every ``poll`` seconds.

Run alone: ``.venv/bin/python benchmarks/_deferral.py`` (prints JSON).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _fakeproc import FakeProcess  # noqa: E402

DAG_IDS = ("hubcomm_deferral_bench", "hubcomm_deferral_bench_poke")
COMPONENTS = (
    ("api-server", ["api-server", "--host", "127.0.0.1", "--port", "{port}", "--workers", "1"]),
    ("scheduler", ["scheduler"]),
    ("dag-processor", ["dag-processor"]),
    ("triggerer", ["triggerer"]),
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Deployment:
    """The four Airflow components in their own process groups; ``stop()`` ends exactly those groups."""

    def __init__(self, home: Path, env: dict[str, str], port: int) -> None:
        self.home, self.env, self.port = home, env, port
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def airflow(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(Path(sys.executable).parent / "airflow"), *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def start(self) -> None:
        airflow = str(Path(sys.executable).parent / "airflow")
        for name, args in COMPONENTS:
            log = open(self.home / f"{name}.log", "wb")  # noqa: SIM115 - closed with the process
            self.procs[name] = subprocess.Popen(
                [airflow, *(a.format(port=self.port) for a in args)],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # own process group: stop() reaches its workers too
            )

    def alive(self) -> dict[str, bool]:
        return {name: p.poll() is None for name, p in self.procs.items()}

    def stop(self) -> dict[str, Any]:
        """SIGTERM each component's process group, then SIGKILL what is left after 15 s."""
        pgids = {name: p.pid for name, p in self.procs.items()}  # session leader: pgid == pid
        for pgid in pgids.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGTERM)
        deadline = time.monotonic() + 15
        for p in self.procs.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(max(0.1, deadline - time.monotonic()))
        killed = []
        for name, pgid in pgids.items():
            try:
                os.killpg(pgid, 0)
            except ProcessLookupError:
                continue
            killed.append(name)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGKILL)
        for p in self.procs.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(5)
        return {"sigkilled_groups": killed}


def _api(port: int) -> httpx.Client:
    return httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)


def _wait(what: str, check: Any, timeout: float, interval: float = 1.0) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
            if last:
                return last
        except Exception as exc:  # not up yet
            last = exc
        time.sleep(interval)
    raise TimeoutError(f"{what} not ready after {timeout:.0f} s (last: {last!r})")


def _epoch(value: str | None) -> float | None:
    if not value:
        return None
    from datetime import datetime

    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def run(*, batch_delay: float = 20.0, rows: int = 300, poll: float = 1.0, keep_home: bool = False) -> dict[str, Any]:
    """Run both DAGs once on a fresh deployment; return the timelines and the verdict."""
    t_start = time.monotonic()
    home = Path(tempfile.mkdtemp(prefix="hubcomm-airflow-"))
    port = _free_port()
    venv_bin = str(Path(sys.executable).parent)
    out: dict[str, Any] = {"airflow_home": str(home), "api_port": port, "batch_delay": batch_delay, "rows": rows}
    fake = FakeProcess(batch_mode="delayed", batch_delay=batch_delay)
    deployment: Deployment | None = None
    try:
        env = {
            **os.environ,
            "PATH": f"{venv_bin}:{os.environ.get('PATH', '')}",
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(HERE / "dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": "4",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
            "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(32),
            "AIRFLOW__API__SECRET_KEY": secrets.token_hex(32),
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
            "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": "1",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
            "AIRFLOW_CONN_HUBCOMM_DEFAULT": fake.connection_json(),
            "HUBCOMM_BENCH_ROWS": str(rows),
            "HUBCOMM_BENCH_POKE_INTERVAL": "3",
        }
        env.pop("AIRFLOW__CORE__UNIT_TEST_MODE", None)
        deployment = Deployment(home, env, port)
        t = time.monotonic()
        migrated = deployment.airflow("db", "migrate")
        out["db_migrate_s"] = round(time.monotonic() - t, 1)
        if migrated.returncode != 0:
            raise RuntimeError(f"airflow db migrate failed: {migrated.stderr[-2000:]}")
        deployment.start()
        api = _api(port)
        t = time.monotonic()
        _wait("api-server", lambda: api.get("/api/v2/monitor/health").status_code == 200, 180)
        out["api_ready_s"] = round(time.monotonic() - t, 1)
        token = api.get("/auth/token").json()["access_token"]
        api.headers["Authorization"] = f"Bearer {token}"
        for dag_id in DAG_IDS:
            r = api.post("/api/v2/pools", json={"name": f"{dag_id}_pool", "slots": 1, "include_deferred": False})
            if r.status_code not in (200, 201, 409):
                raise RuntimeError(f"pool creation failed: {r.status_code} {r.text}")
        out["pools"] = [
            {k: p.get(k) for k in ("name", "slots", "include_deferred")}
            for p in api.get("/api/v2/pools").json()["pools"]
            if p["name"].startswith("hubcomm_deferral")
        ]
        t = time.monotonic()
        for dag_id in DAG_IDS:
            _wait(f"DAG {dag_id} parsed", lambda d=dag_id: api.get(f"/api/v2/dags/{d}").status_code == 200, 180)
            api.patch(f"/api/v2/dags/{dag_id}", json={"is_paused": False}).raise_for_status()
        out["dags_parsed_s"] = round(time.monotonic() - t, 1)
        runs: dict[str, str] = {}
        for dag_id in DAG_IDS:
            r = api.post(f"/api/v2/dags/{dag_id}/dagRuns", json={"logical_date": None})
            r.raise_for_status()
            runs[dag_id] = r.json()["dag_run_id"]
        t0 = time.time()
        timeline: dict[str, list[dict[str, Any]]] = {d: [] for d in DAG_IDS}
        last: dict[tuple[str, str], str | None] = {}
        final: dict[str, dict[str, Any]] = {}
        deadline = time.monotonic() + batch_delay + 240
        while time.monotonic() < deadline:
            done = True
            for dag_id, run_id in runs.items():
                tis = api.get(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances").json()["task_instances"]
                now = round(time.time() - t0, 1)
                for ti in tis:
                    key = (dag_id, ti["task_id"])
                    if last.get(key) != ti["state"]:
                        last[key] = ti["state"]
                        timeline[dag_id].append({"t": now, "task": ti["task_id"], "state": ti["state"]})
                dr = api.get(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}").json()
                if dr["state"] not in ("success", "failed"):
                    done = False
                else:
                    final[dag_id] = {"run_state": dr["state"], "tis": tis}
            if done:
                break
            time.sleep(poll)
        out["run_wall_s"] = round(time.time() - t0, 1)
        out["timeline"] = timeline
        out["components_alive_at_end"] = deployment.alive()
        out["dags"] = {}
        for dag_id in DAG_IDS:
            info = final.get(dag_id)
            if info is None:
                out["dags"][dag_id] = {"run_state": "not finished"}
                continue
            tis = {
                ti["task_id"]: {
                    "state": ti["state"],
                    "start": _epoch(ti.get("start_date")),
                    "end": _epoch(ti.get("end_date")),
                    "try_number": ti.get("try_number"),
                    "pool": ti.get("pool"),
                    "pool_slots": ti.get("pool_slots"),
                }
                for ti in info["tis"]
            }
            rel = {
                task: {k: (round(v - t0, 1) if isinstance(v, float) else v) for k, v in ti.items()}
                for task, ti in tis.items()
            }
            v, o = tis.get("verify", {}), tis.get("other", {})
            deferred_seen = any(e["task"] == "verify" and e["state"] == "deferred" for e in timeline[dag_id])
            other_before = bool(o.get("end") and v.get("end") and o["end"] < v["end"])
            other_start_after_verify_end = bool(o.get("start") and v.get("end") and o["start"] >= v["end"])
            out["dags"][dag_id] = {
                "run_state": info["run_state"],
                "tasks": rel,
                "sensor_deferred_seen": deferred_seen,
                "other_ended_before_sensor": other_before,
                "other_started_after_sensor_ended": other_start_after_verify_end,
            }
        states = deployment.airflow("tasks", "states-for-dag-run", DAG_IDS[0], runs[DAG_IDS[0]], "-o", "plain")
        out["states_for_dag_run_cli"] = states.stdout.strip().splitlines()[-6:]
        fake_counts = fake.counters()
        out["fake_counters"] = {k: v for k, v in fake_counts.items() if not k.startswith("endpoint:")}
        d, p = out["dags"].get(DAG_IDS[0], {}), out["dags"].get(DAG_IDS[1], {})
        out["verdict"] = bool(
            d.get("run_state") == "success"
            and d.get("sensor_deferred_seen")
            and d.get("other_ended_before_sensor")
            and p.get("run_state") == "success"
            and p.get("other_started_after_sensor_ended")
        )
    finally:
        if deployment is not None:
            out["stop"] = deployment.stop()
        fake.stop()
        out["total_s"] = round(time.monotonic() - t_start, 1)
        if not keep_home and not os.environ.get("HUBCOMM_BENCH_KEEP_HOME"):
            out["logs_tail"] = {}
            if not out.get("verdict"):
                for log in home.glob("*.log"):
                    out["logs_tail"][log.name] = log.read_text(errors="replace")[-3000:]
            shutil.rmtree(home, ignore_errors=True)
    return out


if __name__ == "__main__":
    print(json.dumps(run(), indent=2, default=str))
