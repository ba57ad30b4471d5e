"""Client-side workloads of ``benchmarks/run.py``, each run in a fresh process so CPU and peak RSS are its own.

``python benchmarks/_client.py MODE '<json args>'`` prints one JSON line (the last line of stdout). Modes:

* ``batch``: ``BatchWriteStatusesOperator(...).execute(context)``, i.e. the path a DAG takes (operator ->
  ``HubCommHook.write_statuses`` -> engine -> ``hook.batch_write``), connection from
  ``AIRFLOW_CONN_HUBCOMM_DEFAULT``;
* ``sdk``: one request per contact with HubSpot's official SDK (``hubspot-api-client``), the way a user writes
  v4/2026-03 single statuses with it: ``client.api_request({...})`` (its ``communication_preferences`` API is
  v3-only);
* ``httpx``: one request per contact, a plain sequential keep-alive ``httpx.Client`` loop;
* ``hook``: one request per contact through this provider's ``HubCommHook.set_status`` (rate limited);
* ``cpu``: client CPU of validating and serialising N rows (the engine's own functions), and prototypes of
  the proposed fixes, side by side;
* ``profile``: cProfile of a whole batch run (top functions by own time).
"""

from __future__ import annotations

import gc
import json
import os
import resource
import statistics
import sys
import time
from typing import Any
from urllib.parse import quote

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

SINGLE_PATH = "/communication-preferences/2026-03/statuses/{}"
STATES = ("SUBSCRIBED", "UNSUBSCRIBED", "NOT_SPECIFIED")
SUBSCRIPTIONS = (101, 102, 103)


def row(i: int) -> dict[str, Any]:
    """Row ``i`` of every data set: unique (subscriber, subscription), states mixed, legal basis given."""
    return {
        "subscriberIdString": f"contact{i // 3}@example.com",
        "subscriptionId": SUBSCRIPTIONS[i % 3],
        "statusState": STATES[(i // 3 + i) % 3],
        "legalBasis": "LEGITIMATE_INTEREST_CLIENT",
        "legalBasisExplanation": "Consent sync from the CRM warehouse",
    }


def write_csv(path: str, n: int) -> None:
    """Write ``n`` rows (the :func:`row` sequence) as a CSV file with a header."""
    cols = ("subscriberIdString", "subscriptionId", "statusState", "legalBasis", "legalBasisExplanation")
    with open(path, "w", encoding="utf-8", newline="") as fh:
        fh.write(",".join(cols) + "\n")
        block: list[str] = []
        for i in range(n):
            r = row(i)
            block.append(",".join(str(r[c]) for c in cols))
            if len(block) == 10_000:
                fh.write("\n".join(block) + "\n")
                block.clear()
        if block:
            fh.write("\n".join(block) + "\n")


def _usage() -> dict[str, float]:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return {"cpu_user_s": ru.ru_utime, "cpu_sys_s": ru.ru_stime, "maxrss_mb": ru.ru_maxrss / 1024}


class _TI:
    """Stand-in for the task instance: the operator only pushes an XCom on failure."""

    def __init__(self) -> None:
        self.xcoms: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcoms[key] = value


# -- modes -----------------------------------------------------------------------------------------------------


def mode_batch(args: dict[str, Any]) -> dict[str, Any]:
    from airflow_provider_hubcomm.operators import BatchWriteStatusesOperator

    if args.get("proto"):
        from _protos import install

        install()
    if args.get("proto_e"):
        from _protos import install_observe_at_send_time

        install_observe_at_send_time()
    imported = _usage()
    op = BatchWriteStatusesOperator(
        task_id="bench_write",
        inputs=args["inputs"],
        batch_size=args["batch_size"],
        max_concurrency=args.get("max_concurrency"),
        allow_resubscribe=args.get("allow_resubscribe", False),
        dry_run=args.get("dry_run", False),
        output_dir=args.get("output_dir"),
    )
    started_epoch = time.time()
    t0 = time.monotonic()
    error = None
    try:
        summary = op.execute({"ti": _TI()})  # type: ignore[arg-type]
    except Exception as err:  # report, do not hide
        summary = getattr(err, "summary", None) or {}
        error = f"{type(err).__name__}: {str(err)[:500]}"
    wall = time.monotonic() - t0
    stats = dict(op.hook.stats) if "hook" in op.__dict__ else {}
    ops = summary.get("operations") or {}
    return {
        "wall_s": wall,
        "started_epoch": started_epoch,
        "error": error,
        "rows_read": summary.get("rows_read"),
        "written": summary.get("written"),
        "failed": summary.get("failed"),
        "skipped": summary.get("skipped"),
        "skipped_by_reason": summary.get("skipped_by_reason"),
        "failed_by_reason": summary.get("failed_by_reason"),
        "requests": summary.get("requests"),
        "retries": summary.get("retries"),
        "plan": summary.get("plan"),
        "first_requested_at": ops.get("first_requested_at"),
        "last_completed_at": ops.get("last_completed_at"),
        "hook_stats": stats,
        "rate_limiter": repr(op.hook.rate_limiter) if "hook" in op.__dict__ and not args.get("dry_run") else None,
        "import_usage": imported,
        **_usage(),
    }


def _per_contact(args: dict[str, Any], send: Any) -> dict[str, Any]:
    n = args["n"]
    offset = args.get("offset", 0)
    codes: dict[str, int] = {}
    t0 = time.monotonic()
    for i in range(offset, offset + n):
        r = row(i)
        code = send(r)
        codes[str(code)] = codes.get(str(code), 0) + 1
    wall = time.monotonic() - t0
    return {"n": n, "wall_s": wall, "rows_per_s": n / wall, "codes": codes, **_usage()}


def mode_sdk(args: dict[str, Any]) -> dict[str, Any]:
    import hubspot

    # The SDK's generic request path reads ``base_url`` from the client config (default api.hubapi.com).
    client = hubspot.Client.create(access_token=args["token"], base_url=args["url"])

    def send(r: dict[str, Any]) -> int:
        response = client.api_request(
            {
                "method": "POST",
                "path": SINGLE_PATH.format(quote(r["subscriberIdString"], safe="")),
                "body": {k: v for k, v in r.items() if k != "subscriberIdString"} | {"channel": "EMAIL"},
            }
        )
        return response.status_code

    import hubspot as _h

    return {**_per_contact(args, send), "sdk_version": getattr(_h, "__version__", None)}


def mode_httpx(args: dict[str, Any]) -> dict[str, Any]:
    import httpx

    headers = {"Authorization": f"Bearer {args['token']}"}
    with httpx.Client(base_url=args["url"], headers=headers, timeout=30) as client:

        def send(r: dict[str, Any]) -> int:
            body = {k: v for k, v in r.items() if k != "subscriberIdString"} | {"channel": "EMAIL"}
            path = SINGLE_PATH.format(quote(r["subscriberIdString"], safe=""))
            return client.post(path, json=body).status_code

        return _per_contact(args, send)


def mode_hook(args: dict[str, Any]) -> dict[str, Any]:
    from airflow_provider_hubcomm.hooks.hubcomm import HubCommHook
    from airflow_provider_hubcomm.models import StatusUpdate

    hook = HubCommHook()

    def send(r: dict[str, Any]) -> int:
        update = StatusUpdate.model_validate({k: v for k, v in r.items() if k != "subscriberIdString"})
        hook.set_status(r["subscriberIdString"], update)
        return 200

    try:
        return _per_contact(args, send)
    finally:
        hook.close()


# -- CPU of validation and serialisation -------------------------------------------------------------------------


def _timed(fn: Any, reps: int) -> tuple[float, list[float], Any]:
    times = []
    result = None
    for _ in range(reps):
        gc.collect()
        t = time.process_time()
        result = fn()
        times.append(time.process_time() - t)
    return statistics.median(times), times, result


def mode_cpu(args: dict[str, Any]) -> dict[str, Any]:
    """Median process CPU of each step over ``reps`` repetitions (inputs built beforehand, then frozen)."""
    import pickle
    from json.encoder import encode_basestring

    from airflow_provider_hubcomm.batch.rows import RowValidator, WriteRow
    from airflow_provider_hubcomm.batch.sources import iter_rows
    from airflow_provider_hubcomm.batch.spool import validate_rows

    try:  # what httpx does with ``json=`` (httpx 0.28: json.dumps(ensure_ascii=False, compact, allow_nan=False))
        from httpx._content import encode_json as _httpx_encode_json

        def encode(body: Any) -> bytes:
            return _httpx_encode_json(body)[1].__iter__().__next__()  # type: ignore[no-any-return]

        encode({"x": 1})
    except Exception:  # pragma: no cover - other httpx versions

        def encode(body: Any) -> bytes:
            return json.dumps(body, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()

    n, reps, batch = args["n"], args.get("reps", 3), args.get("batch_size", 1000)
    sub = max(1, reps - 1)  # repetitions of the breakdown and prototype figures
    rows = [row(i) for i in range(n)]
    gc.freeze()  # the input list stands for a stream: keep the collector from rescanning it
    validator = RowValidator()
    out: dict[str, Any] = {"n": n, "reps": reps, "batch_size": batch}

    def validation_pass() -> Any:
        return validate_rows(enumerate(rows, 1), validator, stop_at_invalid=True)

    out["validate_s"], out["validate_all"], checked = _timed(validation_pass, reps)
    spool = checked.spool

    def serialise_current() -> int:
        size = 0
        chunk: list[Any] = []
        for _, write, superseded in spool.records():
            if superseded:
                continue
            chunk.append(write)
            if len(chunk) == batch:
                size += len(encode({"inputs": [w.to_api() for w in chunk]}))
                chunk = []
        if chunk:
            size += len(encode({"inputs": [w.to_api() for w in chunk]}))
        return size

    out["serialise_s"], out["serialise_all"], size = _timed(serialise_current, reps)
    out["body_bytes"] = size
    out["total_s"] = out["validate_s"] + out["serialise_s"]

    # Steps of the send side, to show where the time goes.
    out["spool_records_s"], _, _ = _timed(lambda: sum(1 for _ in spool.records()), sub)
    send_rows = [w for _, w, _ in spool.records()]
    out["to_api_s"], _, apis = _timed(lambda: [w.to_api() for w in send_rows], sub)
    out["json_encode_s"], _, _ = _timed(
        lambda: sum(len(encode({"inputs": apis[i : i + batch]})) for i in range(0, n, batch)), sub
    )

    # Prototype A: serialise each row straight to its JSON text (no per-row dict, one join per request).
    def fragment(w: WriteRow) -> str:
        sub, sid, state, channel, basis, expl = w
        head = f'{{"subscriberIdString":{encode_basestring(sub)},"subscriptionId":{sid},"statusState":"{state}","channel":"{channel}"'  # noqa: E501
        if basis is None and expl is None:
            return head + "}"
        tail = ""
        if basis is not None:
            tail += f',"legalBasis":"{basis}"'
        if expl is not None:
            tail += f',"legalBasisExplanation":{encode_basestring(expl)}'
        return head + tail + "}"

    def serialise_fragments() -> int:
        size = 0
        chunk: list[str] = []
        for _, write, superseded in spool.records():
            if superseded:
                continue
            chunk.append(fragment(write))
            if len(chunk) == batch:
                size += len(('{"inputs":[' + ",".join(chunk) + "]}").encode())
                chunk = []
        if chunk:
            size += len(('{"inputs":[' + ",".join(chunk) + "]}").encode())
        return size

    if hasattr(WriteRow, "to_json"):  # the colleague's WriteRow.to_json is the same idea, already in rows.py
        fragment = WriteRow.to_json
        out["proto_fragments_uses"] = "WriteRow.to_json"
    else:
        out["proto_fragments_uses"] = "benchmark fragment()"
    out["proto_fragments_serialise_s"], _, size2 = _timed(serialise_fragments, sub)
    # Same bytes? (the fragment form must be byte-identical JSON to what httpx sends)
    first = next(spool.records())[1]
    out["proto_fragments_identical"] = fragment(first).encode() == encode(first.to_api())
    out["proto_fragments_body_bytes"] = size2

    # Prototype B: the spool keeps the hash computed in the validation pass; records() does not recompute it.
    def records_no_rehash() -> int:
        fh = spool._fh
        fh.seek(0)
        width = 1 + len(WriteRow._fields)
        count = 0
        make = tuple.__new__
        while True:
            try:
                block = pickle.load(fh)
            except EOFError:
                break
            for k in range(0, len(block), width):
                make(WriteRow, block[k + 1 : k + width])
                count += 1
        return count

    out["proto_records_no_rehash_s"], _, _ = _timed(records_no_rehash, sub)

    # From a CSV file: parse + validation pass (what a 1M-row CSV costs before the first request).
    if args.get("csv"):

        def csv_pass() -> Any:
            return validate_rows(iter_rows(args["csv"]), validator, stop_at_invalid=True)

        out["csv_validate_s"], out["csv_validate_all"], res = _timed(csv_pass, reps)
        out["csv_rows"] = res.rows_read
        out["csv_parse_only_s"], _, _ = _timed(lambda: sum(1 for _ in iter_rows(args["csv"])), sub)

    # Response side, per 1,000-row answer: parse HubSpot's answer (pydantic) and reconcile it with the rows.
    if args.get("response_file"):
        from airflow_provider_hubcomm.batch.chunk import reconcile
        from airflow_provider_hubcomm.models import BatchWriteResponse

        with open(args["response_file"], "rb") as fh:
            body = fh.read()
        answer = BatchWriteResponse.model_validate_json(body)
        sent = [(i + 1, validator.validate(i + 1, row(i))) for i in range(len(answer.results))]
        # A tenth of n rows' worth of answers, scaled to n (the per-answer cost does not depend on n).
        k = max(1, n // max(1, len(answer.results)) // 10)
        scale = n / (k * max(1, len(answer.results)))
        out["response_rows"] = len(answer.results)
        out["response_scale"] = scale
        t, _, _ = _timed(lambda: [BatchWriteResponse.model_validate_json(body) for _ in range(k)], sub)
        out["response_parse_s_per_n"] = t * scale
        t, _, _ = _timed(lambda: [reconcile(sent, answer) for _ in range(k)], sub)
        out["reconcile_s_per_n"] = t * scale
        # Prototype C: a slim answer model (only what the engine reads, extra="ignore").
        from _protos import SlimBatchWriteResponse

        slim = SlimBatchWriteResponse.model_validate_json(body)
        t, _, _ = _timed(lambda: [SlimBatchWriteResponse.model_validate_json(body) for _ in range(k)], sub)
        out["proto_slim_parse_s_per_n"] = t * scale
        out["proto_slim_reconcile_identical"] = reconcile(sent, slim) == reconcile(sent, answer)

    # Written-rows manifest, one line per written row: current RunAccount.write vs prototype D.
    import io

    from _protos import manifest_line

    from airflow_provider_hubcomm.batch.outputs import JsonLinesSink
    from airflow_provider_hubcomm.batch.write_account import RunAccount

    writes = [w for _, w, _ in spool.records()]

    def manifest_current() -> int:
        sink = JsonLinesSink(kind="written")
        sink._fh = io.StringIO()
        account = RunAccount(JsonLinesSink(kind="failed"), sink)
        for i, w in enumerate(writes, 1):
            account.write(i, w, i // batch, "COMPLETE")
        return len(sink._fh.getvalue())

    def manifest_proto() -> int:
        fh = io.StringIO()
        for i, w in enumerate(writes, 1):
            fh.write(manifest_line(i, w, i // batch, "COMPLETE"))
        return len(fh.getvalue())

    out["manifest_current_s"], _, n1 = _timed(manifest_current, sub)
    out["proto_manifest_s"], _, n2 = _timed(manifest_proto, sub)
    check = JsonLinesSink(kind="written")
    check._fh = io.StringIO()
    RunAccount(JsonLinesSink(kind="failed"), check).write(7, writes[0], 3, "COMPLETE")
    out["proto_manifest_identical"] = check._fh.getvalue() == manifest_line(7, writes[0], 3, "COMPLETE") and n1 == n2
    spool.close()
    return {**out, **_usage()}


def _top(stats: Any, n: int) -> tuple[float, list[dict[str, Any]]]:
    total = sum(v[2] for v in stats.stats.values())
    top = []
    for (file, line, func), (_cc, nc, tt, ct, _callers) in sorted(stats.stats.items(), key=lambda kv: -kv[1][2])[:n]:
        where = file.split("site-packages/")[-1].split("/work/main/")[-1].split("python3.11/")[-1]
        top.append({"func": f"{where}:{line}({func})", "calls": nc, "own_s": round(tt, 3), "cum_s": round(ct, 3)})
    return round(total, 3), top


def mode_profile(args: dict[str, Any]) -> dict[str, Any]:
    """Profile a batch run by thread CPU time: the task thread, and the chunk workers (aggregated)."""
    import cProfile
    import pstats
    import threading

    from airflow_provider_hubcomm.batch import engine

    lock = threading.Lock()
    worker_profiles: list[cProfile.Profile] = []
    original = engine.send_chunk

    def profiled_send_chunk(*a: Any, **k: Any) -> Any:
        prof = cProfile.Profile(time.thread_time)
        try:
            return prof.runcall(original, *a, **k)
        finally:
            with lock:
                worker_profiles.append(prof)

    engine.send_chunk = profiled_send_chunk  # type: ignore[assignment]
    main = cProfile.Profile(time.thread_time)
    main.enable()
    try:
        result = mode_batch(args)
    finally:
        main.disable()
        engine.send_chunk = original  # type: ignore[assignment]
    n = args.get("top", 25)
    main_total, main_top = _top(pstats.Stats(main), n)
    workers = pstats.Stats(worker_profiles[0])
    for prof in worker_profiles[1:]:
        workers.add(prof)
    worker_total, worker_top = _top(workers, n)
    return {
        **result,
        "profile_main_thread_cpu_s": main_total,
        "profile_main_top": main_top,
        "profile_workers_cpu_s": worker_total,
        "profile_workers_top": worker_top,
    }


MODES = {
    "batch": mode_batch,
    "sdk": mode_sdk,
    "httpx": mode_httpx,
    "hook": mode_hook,
    "cpu": mode_cpu,
    "profile": mode_profile,
}


def main() -> None:
    mode, raw = sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "{}"
    result = MODES[mode](json.loads(raw))
    sys.stdout.flush()
    os.write(1, (json.dumps(result, default=str) + "\n").encode())


if __name__ == "__main__":
    main()
