"""Throughput of the fake HubSpot server: small requests per second on loopback, and server CPU per request.

Each fake runs as its own process, exactly as the CLI runs it (``python -m airflow_provider_hubcomm.testing``:
``FakeHubSpot`` on a background thread), with ``PYTHONPATH`` set to a source tree, so two versions of the
fake can be measured side by side in one run (``--tree old --tree new``; runs alternate between the trees).
The load comes from separate processes, so client work does not share the server's GIL:

* ``--client raw`` (default): asyncio keep-alive connections speaking minimal HTTP/1.1 (measures the server);
* ``--client httpx``: threads each with a keep-alive ``httpx.Client`` (what a hook would do).

Each request is one of: ``GET /definitions``, ``GET /statuses/{id}?channel=EMAIL``, or a 10-input
``POST /statuses/batch/write``, in rotation. Prints requests/s and server CPU per request of each run, then the
medians (and the ratio of the last tree to the first)::

    .venv/bin/python benchmarks/fake_throughput.py --runs 3 --duration 3
    git worktree add --detach /tmp/fake-before <old commit>
    .venv/bin/python benchmarks/fake_throughput.py --tree /tmp/fake-before --tree . --runs 5
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import shlex
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

PREFIX = "/communication-preferences/2026-03"


def _batch_body(worker: int, n: int) -> bytes:
    inputs = [
        {
            "channel": "EMAIL",
            "statusState": "SUBSCRIBED" if (n + i) % 2 else "UNSUBSCRIBED",
            "subscriptionId": 101 + i % 3,
            "subscriberIdString": f"user{worker}-{(n * 10 + i) % 5000}@example.com",
            "legalBasis": "CONSENT_WITH_NOTICE",
            "legalBasisExplanation": "benchmark",
        }
        for i in range(10)
    ]
    return json.dumps({"inputs": inputs}).encode()


def _request(worker: int, n: int, host: str, token: str) -> tuple[str, str, bytes]:
    kind = n % 3
    if kind == 0:
        return "GET", f"{PREFIX}/definitions", b""
    if kind == 1:
        return "GET", f"{PREFIX}/statuses/user{worker}-{n % 5000}%40example.com?channel=EMAIL", b""
    return "POST", f"{PREFIX}/statuses/batch/write", _batch_body(worker, n)


async def _raw_conn(host: str, port: int, token: str, worker: int, stop_at: float, counts: list[int]) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    n = 0
    try:
        while time.monotonic() < stop_at:
            method, path, body = _request(worker, n, host, token)
            head = (
                f"{method} {path} HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: Bearer {token}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
            )
            writer.write(head.encode() + body)
            header = await reader.readuntil(b"\r\n\r\n")
            status = int(header[9:12])
            length = 0
            for line in header.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            await reader.readexactly(length)
            counts[0 if status in (200, 207) else 1] += 1
            n += 1
    finally:
        writer.close()


def _raw_client(host: str, port: int, token: str, conns: int, duration: float, out: Any) -> None:
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    counts = [0, 0]

    async def run() -> None:
        stop_at = time.monotonic() + duration
        await asyncio.gather(*(_raw_conn(host, port, token, w, stop_at, counts) for w in range(conns)))

    start = time.monotonic()
    asyncio.run(run())
    out.put((counts[0], counts[1], time.monotonic() - start))


def _httpx_client(host: str, port: int, token: str, conns: int, duration: float, out: Any) -> None:
    import httpx

    counts = [0, 0]
    lock = threading.Lock()
    stop_at = time.monotonic() + duration

    def work(worker: int) -> None:
        ok = bad = 0
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        with httpx.Client(base_url=f"http://{host}:{port}", headers=headers) as client:
            n = 0
            while time.monotonic() < stop_at:
                method, path, body = _request(worker, n, host, token)
                resp = client.request(method, path, content=body or None)
                if resp.status_code in (200, 207):
                    ok += 1
                else:
                    bad += 1
                n += 1
        with lock:
            counts[0] += ok
            counts[1] += bad

    start = time.monotonic()
    threads = [threading.Thread(target=work, args=(w,)) for w in range(conns)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    out.put((counts[0], counts[1], time.monotonic() - start))


class ServedFake:
    """The fake of one source tree, running as the ``hubcomm-fake`` CLI in its own process.

    :param tree: the source tree put first on ``PYTHONPATH``.
    """

    def __init__(self, tree: Path) -> None:
        self.tree = tree
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(tree), os.environ.get("PYTHONPATH")]))}
        cmd = [sys.executable, "-m", "airflow_provider_hubcomm.testing", "--seed", "1"]
        # cwd=tree: ``python -m`` puts the working directory first on sys.path, before PYTHONPATH.
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env, cwd=tree)
        assert self.proc.stdout is not None
        self.url = self.proc.stdout.readline().strip()
        conn = json.loads(shlex.split(self.proc.stdout.readline())[1].partition("=")[2])
        self.token: str = conn["password"]
        self.port = int(self.url.rsplit(":", 1)[1])
        probe = "import airflow_provider_hubcomm.testing as t, os; print(os.path.dirname(t.__file__))"
        self.module_dir = subprocess.run(
            [sys.executable, "-c", probe], env=env, cwd=tree, capture_output=True, text=True, check=True
        ).stdout.strip()

    def cpu_seconds(self) -> float:
        """User + system CPU seconds the fake's process used so far (Linux ``/proc``)."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def run_once(fake: ServedFake, client: str, conns: int, duration: float, processes: int) -> tuple[float, float, int]:
    """Load ``fake`` for ``duration`` seconds: ``(requests/s, server CPU µs per request, non-2xx answers)``."""
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    target = _raw_client if client == "raw" else _httpx_client
    procs = [
        ctx.Process(target=target, args=("127.0.0.1", fake.port, fake.token, conns, duration, out))
        for _ in range(processes)
    ]
    cpu_before = fake.cpu_seconds()
    for proc in procs:
        proc.start()
    results = [out.get(timeout=duration + 60) for _ in procs]
    for proc in procs:
        proc.join()
    cpu = fake.cpu_seconds() - cpu_before
    ok = sum(r[0] for r in results)
    bad = sum(r[1] for r in results)
    return (ok + bad) / max(r[2] for r in results), cpu / max(1, ok + bad) * 1e6, bad


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per run")
    parser.add_argument("--connections", type=int, default=8, help="connections (threads for httpx) per process")
    parser.add_argument("--processes", type=int, default=1, help="client processes")
    parser.add_argument("--client", choices=("raw", "httpx"), default="raw")
    parser.add_argument(
        "--tree",
        type=Path,
        action="append",
        help="source tree of the fake to measure; repeatable (default: this checkout)",
    )
    args = parser.parse_args()
    trees = [t.resolve() for t in args.tree or [Path(__file__).resolve().parent.parent]]
    fakes = [ServedFake(tree) for tree in trees]
    rates: dict[Path, list[float]] = {t: [] for t in trees}
    cpus: dict[Path, list[float]] = {t: [] for t in trees}
    try:
        print(
            f"client={args.client}, {args.processes} process(es) x {args.connections} connections, "
            f"{args.duration:g}s per run, {args.runs} runs per tree, machine: {os.cpu_count()} cores",
            flush=True,
        )
        for fake in fakes:
            print(f"tree {fake.tree}: fake from {fake.module_dir} at {fake.url}", flush=True)
        for i in range(args.runs):
            order = fakes if i % 2 == 0 else fakes[::-1]  # alternate, so drift in machine load hits both alike
            for fake in order:
                rate, cpu_us, bad = run_once(fake, args.client, args.connections, args.duration, args.processes)
                rates[fake.tree].append(rate)
                cpus[fake.tree].append(cpu_us)
                print(
                    f"run {i + 1} {fake.tree.name}: {rate:,.0f} requests/s, server CPU {cpu_us:,.0f} µs/request"
                    f" ({bad} non-2xx)",
                    flush=True,
                )
    finally:
        for fake in fakes:
            fake.stop()
    for tree in trees:
        print(
            f"median {tree}: {statistics.median(rates[tree]):,.0f} requests/s, "
            f"server CPU {statistics.median(cpus[tree]):,.0f} µs/request"
        )
    if len(trees) > 1:
        first, last = trees[0], trees[-1]
        ratio = statistics.median(rates[last]) / statistics.median(rates[first])
        print(f"ratio {last.name} / {first.name}: {ratio:.2f}x requests/s")


if __name__ == "__main__":
    main()
