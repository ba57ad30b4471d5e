"""Where the CPU of "validate + serialise" goes, and what a columnar send pass could reach (issue 18).

Usage::

    python benchmarks/serialise_floor.py [--rows 1000000] [--repeat 5] [--batch-size 100]

One process, one input (``client_cpu.py``'s rows as a Parquet file), one spool, every step timed on the same
data (process CPU, best of ``--repeat``; the garbage collector frozen as in ``client_cpu.py``):

1. ``validate``: the vectorised validation pass (``columnar.validate_parquet``), what a run does.
2. ``read back``: the spool streamed back as ``(row, WriteRow, superseded)`` records (``ParquetSpool.records``),
   what the send pass consumes today: one Python object per row and field.
3. ``bodies, per row``: the request bodies from those records with ``WriteRow.to_json``, as ``send_chunk``
   builds them (after the read back).
4. ``bodies, Arrow fragments``: each row's JSON built column-wise by ``pyarrow.compute`` from the spool file,
   then one Python string per row joined per request (no ``WriteRow``).
5. ``bodies, Arrow only``: the same fragments joined per request inside Arrow (a list view over the fragments,
   ``binary_join``): one Python object per request, none per row. The floor of a send pass without per-row
   objects; the accounting of such a pass would have to be per request as well.

Steps 4 and 5 are checked to give the bodies of step 3 byte for byte (rows whose text needs JSON escaping,
none in this input, would be built by the row path). Nothing here is used by the provider: it is the
measurement behind "validate + serialise <= 1 s needs a send pass without per-row Python objects".
"""

from __future__ import annotations

import argparse
import gc
import shutil
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import client_cpu  # noqa: E402  (the benchmark's rows and input files)

#: Text that needs no JSON escaping (ASCII, printable, no quote or backslash): the fragments copy it as is.
_PLAIN = r"^[\x20\x21\x23-\x5b\x5d-\x7e]*$"


def best(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    """Return the least process CPU of ``repeat`` calls of ``fn``, and its last result."""
    least, result = float("inf"), None
    for _ in range(repeat):
        start = time.process_time()
        result = fn()
        least = min(least, time.process_time() - start)
    return least, result


def fragments(batch: Any) -> Any:
    """Return each row's batch-write input as JSON text, built column-wise (the row's ``to_json``)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    col = batch.column
    for name in ("sb", "ex"):
        plain = pc.all(pc.match_substring_regex(pc.fill_null(col(name), ""), _PLAIN)).as_py()
        if not plain:
            raise SystemExit(f"column {name} needs JSON escaping: not covered by this measurement")
    basis = pc.binary_join_element_wise(',"legalBasis":"', col("lb"), '"', "")
    explanation = pc.binary_join_element_wise(',"legalBasisExplanation":"', col("ex"), '"', "")
    return pc.binary_join_element_wise(
        '{"subscriberIdString":"',
        col("sb"),
        '","subscriptionId":',
        pc.cast(col("s"), pa.string()),
        ',"statusState":"',
        col("st"),
        '","channel":"',
        col("ch"),
        '"',
        basis,
        explanation,
        "}",
        "",
        null_handling="skip",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=100)
    args = parser.parse_args()

    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from airflow_provider_hubcomm.batch.columnar import validate_parquet
    from airflow_provider_hubcomm.batch.parquet import parquet_batches
    from airflow_provider_hubcomm.batch.rows import RowValidator

    n, size = args.rows, args.batch_size
    folder = tempfile.mkdtemp(prefix="bench-floor-")
    path = client_cpu._parquet_input(client_cpu.make_rows(n), folder)
    gc.collect()
    gc.freeze()
    spools: list[Any] = []

    def validate() -> Any:
        checked = validate_parquet(parquet_batches(path), RowValidator(), stop_at_invalid=True)
        spools.append(checked.spool)
        return checked

    t_validate, checked = best(validate, args.repeat)
    for spool in spools[:-1]:
        spool.close()
    spool = checked.spool
    assert checked.valid == n, checked.valid

    t_read, _ = best(lambda: deque(spool.records(), maxlen=0), args.repeat)  # streamed, as the send pass reads
    records = list(spool.records())
    assert not any(superseded for _, _, superseded in records)

    def per_row() -> list[bytes]:
        return [
            ('{"inputs":[' + ",".join([w.to_json() for _, w, _ in records[i : i + size]]) + "]}").encode()
            for i in range(0, len(records), size)
        ]

    t_rows, expected = best(per_row, args.repeat)
    columns = ["r", "sb", "s", "st", "ch", "lb", "ex"]
    # Batches a multiple of the request size, so no request spans two batches.
    batch_rows = (65536 // size) * size

    def arrow_fragments() -> list[bytes]:
        out: list[bytes] = []
        for batch in pq.ParquetFile(str(spool.path)).iter_batches(batch_size=batch_rows, columns=columns):
            texts = fragments(batch).to_pylist()
            out.extend(
                ('{"inputs":[' + ",".join(texts[i : i + size]) + "]}").encode() for i in range(0, len(texts), size)
            )
        return out

    def arrow_only() -> list[bytes]:
        out: list[bytes] = []
        for batch in pq.ParquetFile(str(spool.path)).iter_batches(batch_size=batch_rows, columns=columns):
            texts = fragments(batch)
            offsets = pa.array([*range(0, len(texts), size), len(texts)], pa.int32())
            joined = pc.binary_join(pa.ListArray.from_arrays(offsets, texts), ",")
            bodies = pc.binary_join_element_wise('{"inputs":[', joined, "]}", "")
            out.extend(bodies.cast(pa.binary()).to_pylist())
        return out

    t_fragments, got = best(arrow_fragments, args.repeat)
    assert got == expected, "Arrow fragments differ from WriteRow.to_json"
    t_arrow, got = best(arrow_only, args.repeat)
    assert got == expected, "Arrow-only bodies differ from WriteRow.to_json"
    spool.close()
    shutil.rmtree(folder, ignore_errors=True)

    scale = 1_000_000 / n
    body_bytes = sum(map(len, expected))
    print(f"rows {n:,}, batch size {size}, {len(expected):,} bodies, {body_bytes:,} bytes; CPU s per 1M rows")
    print(f"  1. validate (vectorised pass)             {t_validate * scale:6.2f}")
    print(f"  2. read back into WriteRows               {t_read * scale:6.2f}")
    print(f"  3. bodies, per row (WriteRow.to_json)     {t_rows * scale:6.2f}")
    print(f"  4. bodies, Arrow fragments, join per body {t_fragments * scale:6.2f}")
    print(f"  5. bodies, Arrow only                     {t_arrow * scale:6.2f}")
    print(f"  today's path, 1+2+3                       {(t_validate + t_read + t_rows) * scale:6.2f}")
    print(f"  a columnar send pass, 1+5                 {(t_validate + t_arrow) * scale:6.2f}")


if __name__ == "__main__":
    main()
