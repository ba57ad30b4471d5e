"""Many task processes, one HubSpot burst budget, no share configured: how many requests are answered 429?

One bundled fake (the ``hubcomm-fake`` CLI, in its own process) enforces a rolling budget (default 190
requests per 10 s) and sends HubSpot's ``X-HubSpot-RateLimit-*`` headers. For each N (default 4, 8, 16), N
worker processes start at the same moment, each with its own ``HubCommHook`` (its own ``RateLimiter``, no
``rate_limit_share``, no ``requests_per_10s``: the budget is learned from the headers) and ``--threads``
threads sending 10-input batch writes through ``hook.batch_write`` (the path a batch task takes), for
``--duration`` seconds. Each worker reports its hook's counters; the table shows requests, 429 answers, their
share, and the requests HubSpot accepted per 10 s against the budget: over the whole run (the first window
may hold a whole burst, so a client that saturates the budget scores about ``(duration + 10) / duration``), and
after the first third of the run, once the limiters have learned (calls completed in that span).

``--tree`` (repeatable) runs the workers with ``PYTHONPATH`` set to each source tree in turn, so "before" and
"after" are measured side by side in one run; the fake always runs from this checkout.

    python benchmarks/shared_budget.py --tree /tmp/before --tree . --workers 4,8,16 --duration 75

Worker mode (internal): ``python benchmarks/shared_budget.py --worker '<json>'`` prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def _worker(spec: dict[str, Any]) -> None:
    """Run one task process's traffic: ``threads`` threads sharing one hook, until ``stop_at``."""
    os.environ["AIRFLOW_CONN_HUBCOMM_DEFAULT"] = spec["conn"]
    from airflow_provider_hubcomm.hooks.hubcomm import HubCommHook

    hook = HubCommHook(max_retries=20)
    hook.prepare()
    failures = [0]
    accepted_at: list[float] = []
    lock = threading.Lock()

    def loop(thread: int) -> None:
        n = 0
        while time.time() < spec["stop_at"]:
            inputs = [
                {
                    "subscriberIdString": f"w{spec['index']}t{thread}n{n}i{i}@example.com",
                    "subscriptionId": 101,
                    "statusState": "UNSUBSCRIBED",
                    "channel": "EMAIL",
                }
                for i in range(10)
            ]
            n += 1
            try:
                hook.batch_write(inputs)
            except Exception:  # an exhausted retry budget: counted, the loop goes on
                with lock:
                    failures[0] += 1
            else:
                with lock:
                    accepted_at.append(time.time())

    print("ready", flush=True)
    spec.update(json.loads(sys.stdin.readline()))
    while time.time() < spec["start_at"]:
        time.sleep(min(0.05, max(0.0, spec["start_at"] - time.time())))
    threads = [threading.Thread(target=loop, args=(t,)) for t in range(spec["threads"])]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    counters = hook.counters()
    hook.close()
    totals = {"requests": counters.get("requests", 0), "http_429": counters.get("http_429", 0), "failed": failures[0]}
    print(json.dumps({**totals, "start_at": spec["start_at"], "accepted_at": accepted_at}))


class Fake:
    """The bundled fake as a CLI subprocess, stopped by its own pid."""

    def __init__(self, budget: int, window: float, latency: float) -> None:
        self.state_file = Path(tempfile.mkdtemp(prefix="shared-budget-")) / "state.json"
        cmd = [
            sys.executable,
            "-m",
            "airflow_provider_hubcomm.testing",
            "--seed",
            "1",
            "--requests-per-window",
            str(budget),
            "--window-seconds",
            str(window),
            "--latency",
            str(latency),
            "--state-file",
            str(self.state_file),
        ]
        env = {**os.environ, "PYTHONPATH": str(HERE.parent)}
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env, cwd=HERE.parent)
        assert self.proc.stdout is not None
        self.url = self.proc.stdout.readline().strip()
        self.conn = shlex.split(self.proc.stdout.readline())[1].partition("=")[2]

    def stop(self) -> dict[str, int]:
        self.proc.terminate()
        self.proc.wait(20)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        try:
            return dict(json.loads(self.state_file.read_text())["counters"])
        except (OSError, ValueError, KeyError):
            return {}


def run_case(tree: Path, workers: int, args: argparse.Namespace) -> dict[str, Any]:
    """Start one fresh fake and ``workers`` worker processes from ``tree``; return the totals."""
    fake = Fake(args.budget, args.window, args.latency)
    try:
        spec = {"conn": fake.conn, "threads": args.threads}
        env = {**os.environ, "PYTHONPATH": str(tree)}
        procs = [
            subprocess.Popen(
                [sys.executable, str(HERE / "shared_budget.py"), "--worker", json.dumps({**spec, "index": i})],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
                env=env,
                cwd=tree,
            )
            for i in range(workers)
        ]
        for p in procs:  # every worker has imported the provider and built its hook
            assert p.stdout is not None
            while (line := p.stdout.readline()) and line.strip() != "ready":
                pass
            if not line:
                raise RuntimeError("a worker did not start")
        start_at = time.time() + args.warmup
        go = json.dumps({"start_at": start_at, "stop_at": start_at + args.duration}) + "\n"
        results = []
        for p in procs:
            assert p.stdin is not None
            p.stdin.write(go)
            p.stdin.flush()
        for p in procs:
            out, _ = p.communicate(timeout=args.duration + args.warmup + 120)
            results.append(json.loads(out.strip().splitlines()[-1]))
    finally:
        server = fake.stop()
    # steady state: the calls that succeeded after the first third of the run (the limiters have learned)
    steady_from = start_at + args.duration / 3
    steady = sum(1 for r in results for t in r.get("accepted_at", ()) if steady_from <= t < start_at + args.duration)
    requests = sum(r["requests"] for r in results)
    throttled = sum(r["http_429"] for r in results)
    accepted = requests - throttled
    per_window = accepted / args.duration * args.window
    return {
        "tree": str(tree),
        "workers": workers,
        "requests": requests,
        "http_429": throttled,
        "pct_429": 100.0 * throttled / requests if requests else 0.0,
        "per_window": per_window,
        "use_pct": 100.0 * per_window / args.budget,
        "failed_calls": sum(r["failed"] for r in results),
        "server_rate_limited": server.get("rate_limited"),
        "per_worker_accepted": [r["requests"] - r["http_429"] for r in results],
        "steady_use_pct": 100.0 * steady / (args.duration * 2 / 3) * args.window / args.budget,
    }


def main() -> None:
    """Parse the arguments and run every (tree, N) case, printing one table row each."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--tree", action="append", type=Path, help="source tree for the workers (repeatable)")
    parser.add_argument("--workers", default="4,8,16", help="comma-separated process counts (default 4,8,16)")
    parser.add_argument("--budget", type=int, default=190, help="fake's requests per window (default 190)")
    parser.add_argument("--window", type=float, default=10.0, help="fake's window in seconds (default 10)")
    parser.add_argument("--duration", type=float, default=75.0, help="seconds of traffic per case (default 75)")
    parser.add_argument(
        "--warmup", type=float, default=0.5, help="seconds between the go signal and the start (default 0.5)"
    )
    parser.add_argument("--threads", type=int, default=2, help="threads per worker sharing its hook (default 2)")
    parser.add_argument("--latency", type=float, default=0.05, help="fake's answer latency in seconds (default 0.05)")
    args = parser.parse_args()
    if args.worker:
        _worker(json.loads(args.worker))
        return
    trees = [t.resolve() for t in (args.tree or [HERE.parent])]
    counts = [int(n) for n in args.workers.split(",")]
    print(
        f"budget {args.budget} per {args.window:g} s, {args.duration:g} s per case, {args.threads} threads per "
        f"worker, fake latency {args.latency:g} s"
    )
    print(
        "| tree | workers | requests | 429 | 429 % | accepted per window | budget used | used after the first third "
        "| per-worker accepted |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for n in counts:
        for tree in trees:
            r = run_case(tree, n, args)
            spread = f"{min(r['per_worker_accepted'])}-{max(r['per_worker_accepted'])}"
            print(
                f"| {tree} | {n} | {r['requests']} | {r['http_429']} | {r['pct_429']:.2f} % | "
                f"{r['per_window']:.1f} | {r['use_pct']:.0f} % | {r['steady_use_pct']:.0f} % | {spread} |",
                flush=True,
            )
            if r["failed_calls"]:
                print(f"  ({r['failed_calls']} calls gave up after their retries)", flush=True)


if __name__ == "__main__":
    main()
