"""Throughput of the fake HubSpot server: small requests per second on loopback.

The fake runs in this process exactly as tests use it (``FakeHubSpot`` on a background thread). The load
comes from a separate process, so client work does not share the server's GIL:

* ``--client raw`` (default): asyncio keep-alive connections speaking minimal HTTP/1.1 (measures the server);
* ``--client httpx``: threads each with a keep-alive ``httpx.Client`` (what a hook would do).

Each request is one of: ``GET /definitions``, ``GET /statuses/{id}?channel=EMAIL``, or a 10-input
``POST /statuses/batch/write``, in rotation. Prints requests/s of each run and the median::

    .venv/bin/python benchmarks/fake_throughput.py --runs 3 --duration 3
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import statistics
import threading
import time
from typing import Any

from airflow_provider_hubcomm.testing import FakeHubSpot

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


def run_once(fake: FakeHubSpot, client: str, conns: int, duration: float, processes: int) -> tuple[float, int, int]:
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    target = _raw_client if client == "raw" else _httpx_client
    procs = [
        ctx.Process(target=target, args=("127.0.0.1", fake.port, fake.token, conns, duration, out))
        for _ in range(processes)
    ]
    for proc in procs:
        proc.start()
    results = [out.get(timeout=duration + 60) for _ in procs]
    for proc in procs:
        proc.join()
    ok = sum(r[0] for r in results)
    bad = sum(r[1] for r in results)
    return (ok + bad) / max(r[2] for r in results), ok, bad


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per run")
    parser.add_argument("--connections", type=int, default=8, help="connections (threads for httpx) per process")
    parser.add_argument("--processes", type=int, default=1, help="client processes")
    parser.add_argument("--client", choices=("raw", "httpx"), default="raw")
    args = parser.parse_args()
    rates = []
    with FakeHubSpot() as fake:
        for i in range(args.runs):
            rate, ok, bad = run_once(fake, args.client, args.connections, args.duration, args.processes)
            rates.append(rate)
            print(f"run {i + 1}: {rate:,.0f} requests/s ({ok} ok, {bad} other)", flush=True)
        counters = fake.counters
    print(
        f"median of {args.runs}: {statistics.median(rates):,.0f} requests/s "
        f"(client={args.client}, {args.processes} process(es) x {args.connections} connections, "
        f"{args.duration:g}s per run)"
    )
    print(f"server counters: {json.dumps(counters, sort_keys=True)}")


if __name__ == "__main__":
    main()
