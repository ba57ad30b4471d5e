"""Benchmark the input side of BatchWriteStatusesOperator: validate + serialise one million rows.

Usage::

    python benchmarks/bench_rows.py [--rows 1000000] [--repeat 3]

Two figures, each measured in its own child process (so one case's memory does not inflate the other's
peak RSS):

* ``dicts``: rows generated in memory (not timed), then ``RowValidator.validate`` + ``json.dumps`` of
  ``[row.to_api() for row in chunk]`` per chunk of 100. CPU seconds (``time.process_time``), best of
  ``--repeat``. The generated list is moved out of the garbage collector's sight (``gc.freeze``): a real run
  streams its rows, so the collector never scans a million live input dicts.
* ``csv``: the same rows written to a temporary CSV file (not timed), then read back through
  ``iter_rows`` and validated + serialised the same way. CPU seconds, and peak RSS of that process
  (``resource.getrusage``); memory must stay flat whatever the row count.

Half of the rows carry a legal basis pair (6 API fields), half do not (4 fields), 1 % are invalid.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from airflow_provider_hubcomm.batch.rows import RowValidator
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


def validate_and_serialise(rows: Iterable[tuple[int, Mapping[str, Any]]]) -> tuple[int, int, int]:
    """The engine's hot loop, minus HTTP: returns (valid, invalid, bytes serialised)."""
    validate = RowValidator().validate
    dumps = json.dumps
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
            size += len(dumps([row.to_api() for row in chunk]))
            chunk = []
    if chunk:
        size += len(dumps([row.to_api() for row in chunk]))
    return valid, invalid, size


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def case_dicts(count: int, repeat: int) -> dict[str, Any]:
    rows = list(generate(count))
    gc.collect()
    gc.freeze()
    best = float("inf")
    outcome: tuple[int, int, int] = (0, 0, 0)
    for _ in range(repeat):
        start = time.process_time()
        outcome = validate_and_serialise(enumerate(rows, 1))
        best = min(best, time.process_time() - start)
    return {"case": "dicts", "rows": count, "cpu_s": round(best, 3), "valid": outcome[0], "invalid": outcome[1]}


def case_csv(count: int, repeat: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "rows.csv")
        with open(path, "w", encoding="utf-8", newline="") as handle:
            handle.write(",".join(FIELDS) + "\n")
            for row in generate(count):
                handle.write(",".join(str(row.get(f, "")) for f in FIELDS) + "\n")
        file_mb = os.path.getsize(path) / 2**20
        rss_before = peak_rss_mb()
        best = float("inf")
        outcome: tuple[int, int, int] = (0, 0, 0)
        for _ in range(repeat):
            start = time.process_time()
            outcome = validate_and_serialise(iter_rows(path))
            best = min(best, time.process_time() - start)
    return {
        "case": "csv",
        "rows": count,
        "cpu_s": round(best, 3),
        "valid": outcome[0],
        "invalid": outcome[1],
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
        rate = result["rows"] / result["cpu_s"]
        line = f"{case:5s}: {result['rows']:,} rows validated + serialised in {result['cpu_s']:.2f} s CPU"
        line += f" ({rate:,.0f} rows/s; {result['valid']:,} valid, {result['invalid']:,} invalid)"
        if case == "csv":
            line += f"; CSV {result['file_mb']} MB, peak RSS {result['peak_rss_mb']} MB"
        print(line)


if __name__ == "__main__":
    main()
