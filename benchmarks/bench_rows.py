"""Benchmark the input side of BatchWriteStatusesOperator: validate + serialise one million rows.

Usage::

    python benchmarks/bench_rows.py [--rows 1000000] [--repeat 3]

Two figures, each measured in its own child process (so one case's memory does not inflate the other's
peak RSS):

* ``dicts``: rows generated in memory (not timed), then ``RowValidator.validate`` and, per chunk of 100,
  ``json.dumps([row.to_api() for row in chunk])`` (and, second figure, ``WriteRow.to_json`` joined).
  CPU seconds (``time.process_time``), best of ``--repeat``.
* ``csv``: the same rows written to a temporary CSV file (not timed), then read back through
  ``iter_rows`` and validated + serialised the same way. CPU seconds, and peak RSS of that process
  (``resource.getrusage``); memory must stay flat whatever the row count.

Half of the rows carry a legal basis pair (6 API fields), half do not (4 fields), 1 % are invalid.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from airflow_provider_hubcomm.batch.rows import RowValidator, WriteRow
from airflow_provider_hubcomm.batch.sources import iter_rows

CHUNK = 100
FIELDS = ("subscriberIdString", "subscriptionId", "statusState", "channel", "legalBasis", "legalBasisExplanation")


def generate(count: int) -> Iterator[dict[str, Any]]:
    states = ("SUBSCRIBED", "unsubscribed", "NOT_SPECIFIED")
    for i in range(count):
        row: dict[str, Any] = {
            "subscriberIdString": f"user{i}@example.com" if i % 100 else f"broken-{i}",
            "subscriptionId": 100 + i % 7,
            "statusState": states[i % 3],
            "channel": "EMAIL",
        }
        if i % 2:
            row["legalBasis"] = "CONSENT_WITH_NOTICE"
            row["legalBasisExplanation"] = "Opted in on the web form"
        yield row


def serialise_dumps(chunk: list[WriteRow]) -> str:
    return json.dumps([row.to_api() for row in chunk])


def serialise_to_json(chunk: list[WriteRow]) -> str:
    return "[" + ",".join([row.to_json() for row in chunk]) + "]"


SERIALISERS = {"to_api+json.dumps": serialise_dumps, "to_json": serialise_to_json}


def validate_and_serialise(
    rows: Iterable[tuple[int, Mapping[str, Any]]], serialise: Callable[[list[WriteRow]], str]
) -> tuple[int, int, int]:
    """The engine's hot loop, minus HTTP: returns (valid, invalid, characters serialised)."""
    validate = RowValidator().validate
    chunk: list[Any] = []
    valid = invalid = size = 0
    for number, raw in rows:
        result = validate(number, raw)
        if result.__class__ is list:
            invalid += 1
            continue
        valid += 1
        chunk.append(result)
        if len(chunk) == CHUNK:
            size += len(serialise(chunk))
            chunk = []
    if chunk:
        size += len(serialise(chunk))
    return valid, invalid, size


def best_of(repeat: int, make_rows: Callable[[], Iterable[tuple[int, Mapping[str, Any]]]]) -> dict[str, Any]:
    """Best CPU time per serialiser, and the outcome counts."""
    times: dict[str, float] = {}
    outcome: tuple[int, int, int] = (0, 0, 0)
    for _ in range(repeat):
        for name, serialise in SERIALISERS.items():
            start = time.process_time()
            outcome = validate_and_serialise(make_rows(), serialise)
            times[name] = min(times.get(name, float("inf")), time.process_time() - start)
    return {"cpu_s": {k: round(v, 3) for k, v in times.items()}, "valid": outcome[0], "invalid": outcome[1]}


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def case_dicts(count: int, repeat: int) -> dict[str, Any]:
    rows = list(generate(count))
    return {"case": "dicts", "rows": count, **best_of(repeat, lambda: enumerate(rows, 1))}


def case_csv(count: int, repeat: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "rows.csv")
        with open(path, "w", encoding="utf-8", newline="") as handle:
            handle.write(",".join(FIELDS) + "\n")
            for row in generate(count):
                handle.write(",".join(str(row.get(f, "")) for f in FIELDS) + "\n")
        file_mb = os.path.getsize(path) / 2**20
        rss_before = peak_rss_mb()
        result = best_of(repeat, lambda: iter_rows(path))
    return {
        "case": "csv",
        "rows": count,
        **result,
        "file_mb": round(file_mb, 1),
        "peak_rss_mb_before_reading": round(rss_before, 1),
        "peak_rss_mb": round(peak_rss_mb(), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--case", choices=("dicts", "csv"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:
        run = case_dicts if args.case == "dicts" else case_csv
        print(json.dumps(run(args.rows, args.repeat)))
        return
    for case in ("dicts", "csv"):
        command = [sys.executable, __file__, "--case", case, "--rows", str(args.rows), "--repeat", str(args.repeat)]
        result = json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout)
        cpu = result["cpu_s"]
        line = f"{case:5s}: {result['rows']:,} rows ({result['valid']:,} valid, {result['invalid']:,} invalid)"
        line += " validated + serialised, CPU s: " + ", ".join(f"{k} {v:.2f}" for k, v in cpu.items())
        if case == "csv":
            line += f"; CSV {result['file_mb']} MB, peak RSS {result['peak_rss_mb']} MB"
            line += f" ({result['peak_rss_mb_before_reading']} MB before reading)"
        print(line)


if __name__ == "__main__":
    main()
