"""Client CPU of ONE 100-row batch write, per HTTP stack and through the hook, side by side (issue 18).

Usage::

    python benchmarks/http_cpu.py [--requests 2000] [--rounds 5] [--rows 100] [--only a,b,hook-before,hook]

The bundled fake HubSpot runs in its own process (``_fakeproc.FakeProcess``: no rate window, no latency), so
``time.process_time`` of this process is the client's CPU only. Every variant sends the same ready JSON body
(``{"inputs": [...]}`` of ``--rows`` rows, what the batch engine sends) to ``POST …/statuses/batch/write`` over
one keep-alive connection and reads the whole answer (~34 KB for 100 rows). A round is ``--requests`` requests
per variant, the variants taking turns every 100 requests (the machine is shared: a change of load lands on all
of them alike); the figure is the median, and the best, over ``--rounds`` rounds of CPU µs per request.

* ``a``: ``httpx.Client`` with its default transport (httpcore + h11);
* ``b``: ``httpx.Client`` with ``_urllib3_transport.Urllib3Transport`` (urllib3's pools under httpx: timeouts,
  attempt deadlines, TLS defaults, limits and exception mapping as httpx's; a measured prototype, not shipped);
* ``c``: urllib3 alone (``HTTPConnectionPool.urlopen``); ``d``: ``http.client`` alone (one connection);
* ``e``: ``httpx.Client`` over :class:`BareHTTPClientTransport` (``http.client``, one connection, nothing
  else): the least CPU any transport swap could reach, not a usable transport;
* ``hook-*``: ``HubCommHook.batch_write_serialized(body)`` (rate limiter, attempt deadline, retry policy, auth
  flow, answer parsed into ``BatchWriteAck``) with a transport (httpx's default as the hook builds it, urllib3,
  bare) and an answer parser: ``model_validate_json`` (before), the tree's ``parse_answer``
  (``pydantic_core.from_json`` + ``model_validate``) or ``orjson.loads`` + ``model_validate`` (if installed).

Then answer parsing alone, on one real answer: ``BatchWriteAck.model_validate_json``, ``json.loads`` +
``model_validate``, ``parse_answer``, and ``orjson.loads`` (+ ``model_validate``) when orjson is installed.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from _fakeproc import FakeProcess  # noqa: E402
from client_cpu import make_rows  # noqa: E402

PATH = "/communication-preferences/2026-03/statuses/batch/write"


def _body(rows: int) -> bytes:
    return json.dumps({"inputs": make_rows(rows)}, separators=(",", ":")).encode()


def _headers(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "Content-Type": "application/json", "Accept": "application/json"}


def _check(status: int, data: bytes) -> None:
    if status != 200 or len(data) < 100:
        raise RuntimeError(f"unexpected answer {status}: {data[:200]!r}")


def variant_httpx(url: str, token: str, body: bytes, transport: Any = None) -> tuple[Callable[[], None], Any]:
    import httpx

    client = httpx.Client(base_url=url, headers=_headers(token), transport=transport)

    def once() -> None:
        response = client.post(PATH, content=body)
        _check(response.status_code, response.content)

    return once, client.close


def variant_urllib3(url: str, token: str, body: bytes) -> tuple[Callable[[], None], Any]:
    import urllib3

    host, port = url.split("://", 1)[1].split(":")
    pool = urllib3.HTTPConnectionPool(host, int(port), maxsize=1)
    headers = _headers(token)

    def once() -> None:
        response = pool.urlopen("POST", PATH, body=body, headers=headers, retries=False, redirect=False)
        _check(response.status, response.data)

    return once, pool.close


def variant_http_client(url: str, token: str, body: bytes) -> tuple[Callable[[], None], Any]:
    host, port = url.split("://", 1)[1].split(":")
    conn = http.client.HTTPConnection(host, int(port))
    headers = _headers(token)

    def once() -> None:
        conn.request("POST", PATH, body=body, headers=headers)
        response = conn.getresponse()
        _check(response.status, response.read())

    return once, conn.close


class BareHTTPClientTransport:
    """Lower bound of any transport swap: ``http.client`` on one kept-alive connection, nothing else.

    No pool, no deadlines, no TLS, no error mapping: NOT a usable transport, only the least CPU an
    ``httpx.BaseTransport`` can add under ``httpx.Client`` for this request.
    """

    def __init__(self, url: str) -> None:
        host, port = url.split("://", 1)[1].split(":")
        self.conn = http.client.HTTPConnection(host, int(port))

    def handle_request(self, request: Any) -> Any:
        import httpx

        self.conn.request(
            request.method,
            request.url.raw_path.decode(),
            body=request.read(),
            headers=dict(request.headers.multi_items()),
        )
        answer = self.conn.getresponse()
        data = answer.read()
        return httpx.Response(
            answer.status,
            headers=answer.getheaders(),
            stream=httpx.ByteStream(data),
            extensions={"http_version": b"HTTP/1.1", "reason_phrase": answer.reason.encode()},
        )

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> BareHTTPClientTransport:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _model_validate_json(model: Any, content: bytes) -> Any:
    return model.model_validate_json(content)


def _orjson_then_validate(model: Any, content: bytes) -> Any:
    import orjson

    return model.model_validate(orjson.loads(content))


#: How a hook variant parses answers: the tree's own parser, or one of these (same validation, other parse).
PARSERS: dict[str, Callable[[Any, bytes], Any] | None] = {
    "tree": None,
    "model_validate_json": _model_validate_json,
    "orjson": _orjson_then_validate,
}


def variant_hook(fake: FakeProcess, body: bytes, transport: str, parse: str = "tree") -> tuple[Callable[[], None], Any]:
    """``HubCommHook.batch_write_serialized(body)`` with the given transport and answer parser.

    :param transport: ``default`` (httpx's, as the hook builds it: deadlines installed), ``urllib3`` or ``bare``.
    :param parse: a key of :data:`PARSERS`.
    """
    import logging

    from airflow_provider_hubcomm.hooks.hubcomm import HubCommHook

    parser = PARSERS[parse]

    class Hook(HubCommHook):
        if parser is not None:
            _parse = staticmethod(parser)

    logging.getLogger("httpx").setLevel(logging.WARNING)
    os.environ["AIRFLOW_CONN_HUBCOMM_DEFAULT"] = fake.connection_json(requests_per_10s=10_000)
    kwargs: dict[str, Any] = {}
    if transport == "urllib3":
        kwargs["transport"] = _urllib3_transport()
    elif transport == "bare":
        kwargs["transport"] = BareHTTPClientTransport(fake.url)
    hook = Hook(**kwargs)
    hook.prepare()

    def once() -> None:
        ack = hook.batch_write_serialized(body)
        if len(ack.results) < 1:
            raise RuntimeError("no results")

    return once, hook.close


def measure(
    variants: dict[str, Callable[[], None]], n: int, rounds: int, chunk: int = 100, pace: float | None = None
) -> dict[str, list[float]]:
    """Return the µs of CPU per request of every variant, one figure per round of ``n`` requests each.

    Within a round the variants take turns every ``chunk`` requests, so a change of the machine's load (it is
    shared) lands on all of them alike. ``pace``: requests per second (sleeping between them costs no CPU), as
    a run held to HubSpot's budget sends them: each request then meets cold caches, as in production.
    """
    out: dict[str, list[float]] = {name: [] for name in variants}
    for once in variants.values():  # warm-up: connections, caches
        for _ in range(50):
            once()
    for _ in range(rounds):
        spent = dict.fromkeys(variants, 0.0)
        for _ in range(max(n // chunk, 1)):
            for name, once in variants.items():
                t0 = time.process_time()
                due = time.monotonic()
                for _ in range(chunk):
                    once()
                    if pace:
                        due += 1 / pace
                        time.sleep(max(due - time.monotonic(), 0.0))
                spent[name] += time.process_time() - t0
        for name, seconds in spent.items():
            out[name].append(seconds / (max(n // chunk, 1) * chunk) * 1e6)
    return out


def measure_parsing(answer: bytes, n: int, rounds: int) -> dict[str, list[float]]:
    import pydantic_core

    from airflow_provider_hubcomm.hooks._exchange import parse_answer
    from airflow_provider_hubcomm.models import BatchWriteAck

    cases: dict[str, Callable[[], Any]] = {
        "model_validate_json": lambda: BatchWriteAck.model_validate_json(answer),
        "json.loads + model_validate": lambda: BatchWriteAck.model_validate(json.loads(answer)),
        "json.loads alone": lambda: json.loads(answer),
        "pydantic_core.from_json + model_validate (parse_answer)": lambda: parse_answer(BatchWriteAck, answer),
        "pydantic_core.from_json alone": lambda: pydantic_core.from_json(answer),
    }
    try:
        import orjson

        cases["orjson.loads + model_validate"] = lambda: BatchWriteAck.model_validate(orjson.loads(answer))
        cases["orjson.loads alone"] = lambda: orjson.loads(answer)
    except ImportError:
        print("(orjson not installed: its rows are left out)")
    return measure(cases, n, rounds)


def _row(name: str, values: list[float]) -> str:
    every = " ".join(f"{v:.0f}" for v in values)
    return f"| {name} | {statistics.median(values):.0f} | {min(values):.0f} | {every} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000, help="requests per variant per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--rows", type=int, default=100, help="rows per batch write")
    parser.add_argument("--only", default="", help="comma-separated variant keys (default: all)")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds the fake takes to answer (default 0)")
    parser.add_argument(
        "--pace", type=float, default=None, help="requests per second (19 = HubSpot's 190 per 10 s; default: flat out)"
    )
    args = parser.parse_args()
    body = _body(args.rows)
    load = os.getloadavg()
    print(
        f"{args.rows}-row batch write ({len(body):,} bytes), {args.requests} requests x {args.rounds} rounds, "
        f"{os.cpu_count()} CPUs, load {load[0]:.2f} {load[1]:.2f}"
    )
    print(f"fake latency {args.latency} s, pace {args.pace or 'flat out'} requests/s")
    with FakeProcess(requests_per_window=None, latency=args.latency) as fake:
        url, token = fake.url, fake.token
        import httpx

        builders: dict[str, Callable[[], tuple[Callable[[], None], Any]]] = {
            "a": lambda: variant_httpx(url, token, body),
            "b": lambda: variant_httpx(url, token, body, _urllib3_transport()),
            "c": lambda: variant_urllib3(url, token, body),
            "d": lambda: variant_http_client(url, token, body),
            "e": lambda: variant_httpx(url, token, body, BareHTTPClientTransport(url)),
            "hook-before": lambda: variant_hook(fake, body, "default", "model_validate_json"),
            "hook": lambda: variant_hook(fake, body, "default"),
            "hook-urllib3": lambda: variant_hook(fake, body, "urllib3", "model_validate_json"),
            "hook-orjson": lambda: variant_hook(fake, body, "default", "orjson"),
            "hook-bare": lambda: variant_hook(fake, body, "bare", "model_validate_json"),
            "hook-bare-tree": lambda: variant_hook(fake, body, "bare"),
        }
        names = {
            "a": "(a) httpx.Client, default transport",
            "b": "(b) httpx.Client, urllib3 transport",
            "c": "(c) urllib3 alone",
            "d": "(d) http.client alone",
            "e": "(e) httpx.Client, bare http.client transport (lower bound)",
            "hook-before": "hook, as before: httpx default transport, model_validate_json",
            "hook": "hook, this tree: httpx default transport, parse_answer (from_json + model_validate)",
            "hook-urllib3": "hook, urllib3 transport, model_validate_json",
            "hook-orjson": "hook, httpx default transport, orjson.loads + model_validate",
            "hook-bare": "hook, bare http.client transport (lower bound), model_validate_json",
            "hook-bare-tree": "hook, bare http.client transport (lower bound), parse_answer",
        }
        chosen = [k for k in builders if not args.only or k in args.only.split(",")]
        if not _has_orjson():
            chosen = [k for k in chosen if "orjson" not in k]
        closers: list[Any] = []
        variants: dict[str, Callable[[], None]] = {}
        for key in chosen:
            once, close = builders[key]()
            variants[names[key]] = once
            closers.append(close)
        results = measure(variants, args.requests, args.rounds, pace=args.pace)
        for close in closers:
            close()
        answer = httpx.post(f"{url}{PATH}", content=body, headers=_headers(token)).content
    print(f"\nanswer: {len(answer):,} bytes")
    print("\n| per request, CPU µs | median | best | every round | median vs hook before |\n|---|---|---|---|---|")
    before = results.get(names["hook-before"])
    for name, values in results.items():
        change = ""
        if before is not None and name.startswith("hook"):
            change = f" {100 * (statistics.median(values) / statistics.median(before) - 1):+.0f} % |"
        print(_row(name, values) + (change or " |"))
    parsing = measure_parsing(answer, max(args.requests // 2, 200), args.rounds)
    print("\n| parse one answer, CPU µs | median | best | every round |\n|---|---|---|---|")
    for name, values in parsing.items():
        print(_row(name, values))


def _has_orjson() -> bool:
    try:
        import orjson  # noqa: F401
    except ImportError:
        return False
    return True


def _urllib3_transport() -> Any:
    from _urllib3_transport import Urllib3Transport

    return Urllib3Transport()


if __name__ == "__main__":
    main()
