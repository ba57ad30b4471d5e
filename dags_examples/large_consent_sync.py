"""Sync a large consent extract with dynamic task mapping and a sync state, inside one HubSpot rate budget.

What this example shows:

1. ``extract``: streams the warehouse table (``fetchmany``, never through XCom) into one CSV file; only its
   path goes through XCom.
2. ``write_partition``: ``BatchWriteStatusesOperator.partial(..., partitions=N).expand(partition=range(N))``,
   one mapped task per partition. Each task reads the whole file and keeps the rows whose e-mail hashes to its
   partition (a stable hash of the lower-cased address, so all rows of a contact meet in one partition and
   "the newest row wins" still holds); the others are counted in its summary's ``partition`` block. With
   ``state_path`` each partition keeps its own sync state (``<state_path>/partition-0001-of-0004``): the next
   run sends only what changed, per partition. Changing ``HUBCOMM_PARTITIONS`` starts new state folders: the
   first run after the change resends every row once.
3. ``verify_partition``: ``BatchStatusSensor.partial(...).expand(batch=<summaries>)`` reads a sample of each
   partition back.
4. ``report``: adds the partitions up and checks that no row was lost (rows read by the writers ==
   rows extracted, every input row handled by exactly one partition, and written + failed + skipped == rows
   read).

**One rate budget for many tasks.** HubSpot's burst limit (100 requests per 10 s for a Free/Starter private
app, 190 for Pro/Enterprise) belongs to the *account*, but every mapped task runs in its own process with
its own client-side limiter, which cannot see the others. Two settings keep the sum under the budget:

* the Airflow pool ``hubspot_api`` caps how many HubSpot tasks run at once (all of them: give every task
  that calls HubSpot, in every DAG, ``pool="hubspot_api"``). Create it once::

      airflow pools set hubspot_api 4 "HubSpot API: tasks sharing the account's rate budget"

* each task's limiter gets ``rate_limit_share=1 / pool slots`` of the budget: the connection's
  ``requests_per_10s`` extra, or what HubSpot's rate-limit headers announce. ``HUBCOMM_POOL_SLOTS`` must
  equal the pool's slots (a DAG file cannot read the pool at parse time).

If the numbers are off anyway (another integration uses the same app, or the pool has more slots than the
share assumes), the hook's limiter also sees the others' usage in HubSpot's ``X-HubSpot-RateLimit-Remaining``
headers: it then caps and paces its own requests to a fair part of what is left, and honours ``Retry-After``
on a 429. Without any share configured, 4 to 16 tasks at once meet under 1 % of 429 answers
(``benchmarks/shared_budget.py``); the pool and the share keep it at none.

**Size.** Seed the demo table with ``python scripts/seed_warehouse.py --db <file> --large-rows 20000`` (what
the tests use). 1,000,000 rows work the same way. Measured with ``airflow dags test`` on a 2-core VM
against the bundled fake (1,000 requests per 10 s, ``HUBCOMM_BATCH_SIZE=1000``): 4 min 24 s wall, 310 MB peak
RSS, 1,460 requests. Each chunk costs two requests, a read (``only_changes`` and the re-subscribe guardrail)
and a write. Against HubSpot's 100 requests per 10 s the budget is the bottleneck, whatever the partition
count: about 2.5 minutes of budget at batch size 1,000, and ten times that at the default of 100.

Environment variables (all optional): ``HUBCOMM_CONN_ID`` (``hubcomm_default``), ``HUBCOMM_POOL_SLOTS`` (``4``),
``HUBCOMM_STATE_PATH`` (the sync state's folder, a local path or URL such as ``s3://conn@bucket/hubcomm/state``;
default ``<HUBCOMM_WORK_DIR>/large_consent_sync/sync-state``),
``WAREHOUSE_CONN_ID`` (``warehouse_default``), ``HUBCOMM_LARGE_TABLE`` (``contact_consent_large``),
``HUBCOMM_PARTITIONS`` (``4``), ``HUBCOMM_POOL`` (``hubspot_api``), ``HUBCOMM_BATCH_SIZE`` (``100``), and at
run time ``HUBCOMM_WORK_DIR`` / ``HUBCOMM_REPORT_DIR`` (see ``consent_sync_from_warehouse``).
"""

from __future__ import annotations

import csv
import json
import os
import re
import tempfile
from contextlib import ExitStack, closing
from datetime import datetime
from pathlib import Path
from typing import Any

from airflow.sdk import DAG, BaseHook, get_current_context, task
from airflow.sdk.exceptions import AirflowFailException

from airflow_provider_hubcomm.operators import BatchWriteStatusesOperator
from airflow_provider_hubcomm.sensors import BatchStatusSensor

DAG_ID = "large_consent_sync"
HUBCOMM_CONN_ID = os.environ.get("HUBCOMM_CONN_ID", "hubcomm_default")
WAREHOUSE_CONN_ID = os.environ.get("WAREHOUSE_CONN_ID", "warehouse_default")
LARGE_TABLE = os.environ.get("HUBCOMM_LARGE_TABLE", "contact_consent_large")
PARTITIONS = int(os.environ.get("HUBCOMM_PARTITIONS", "4"))
POOL = os.environ.get("HUBCOMM_POOL", "hubspot_api")
POOL_SLOTS = int(os.environ.get("HUBCOMM_POOL_SLOTS", "4"))
BATCH_SIZE = int(os.environ.get("HUBCOMM_BATCH_SIZE", "100"))

if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?", LARGE_TABLE):
    raise ValueError(f"HUBCOMM_LARGE_TABLE must be a plain [schema.]table name, got {LARGE_TABLE!r}")

EXTRACT_SQL = f"""
SELECT email, subscription_id, consent_status, legal_basis, legal_basis_explanation
FROM {LARGE_TABLE}
ORDER BY updated_at, id
"""
COLUMN_MAP = {
    "email": "subscriberIdString",
    "subscription_id": "subscriptionId",
    "consent_status": "statusState",
    "legal_basis": "legalBasis",
    "legal_basis_explanation": "legalBasisExplanation",
}
FETCH_ROWS = 10_000
WORK_DIR = Path(os.environ.get("HUBCOMM_WORK_DIR") or Path(tempfile.gettempdir()) / "hubcomm")
#: One state per partition lives below it; a local folder here, shared storage (``s3://...``) in production.
STATE_PATH = os.environ.get("HUBCOMM_STATE_PATH") or str(WORK_DIR / DAG_ID / "sync-state")


# [START howto_hubcomm_shared_rate_budget]
#: Up to POOL_SLOTS HubSpot tasks run at once, each in its own process with its own limiter: each uses
#: 1 / POOL_SLOTS of the budget (configured on the connection, or learned from HubSpot's headers).
RATE_LIMIT_SHARE = 1 / POOL_SLOTS
# [END howto_hubcomm_shared_rate_budget]


def run_dir(base_env: str, default: Path) -> Path:
    """Return ``<base>/<dag_id>/<run_id>`` for the current task, created, with a file-system-safe run id.

    :param base_env: environment variable naming the base directory.
    :param default: base directory when the variable is unset.
    """
    context = get_current_context()
    run_id = re.sub(r"[^A-Za-z0-9_.-]+", "_", context["run_id"])
    path = Path(os.environ.get(base_env) or default) / context["dag"].dag_id / run_id
    path.mkdir(parents=True, exist_ok=True)
    return path


with DAG(
    dag_id=DAG_ID,
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["example", "hubspot"],
    doc_md=__doc__,
) as dag:
    # [START howto_hubcomm_extract]
    @task
    def extract() -> str:
        """Stream the table into one CSV file (warehouse order: the newest row of a contact comes last)."""
        out = run_dir("HUBCOMM_WORK_DIR", WORK_DIR)
        connection = BaseHook.get_connection(WAREHOUSE_CONN_ID)
        path = out / "extract.csv"
        count = 0
        with ExitStack() as stack:
            conn = stack.enter_context(closing(connection.get_hook().get_conn()))
            # psycopg downloads a whole result on execute() unless the cursor is named (server-side).
            server_side = connection.conn_type == "postgres"
            cur = stack.enter_context(closing(conn.cursor(name="hubcomm_extract") if server_side else conn.cursor()))
            cur.execute(EXTRACT_SQL)
            batch = cur.fetchmany(FETCH_ROWS)  # a named cursor knows its columns only after the first fetch
            writer = csv.writer(stack.enter_context(path.open("w", newline="", encoding="utf-8")))
            writer.writerow([d[0] for d in cur.description])
            while batch:
                writer.writerows(batch)
                count += len(batch)
                batch = cur.fetchmany(FETCH_ROWS)
        get_current_context()["ti"].xcom_push(key="rows_extracted", value=count)
        print(f"Extracted {count:,} rows of {LARGE_TABLE} into {path}")
        return str(path)

    extracted = extract()
    # [END howto_hubcomm_extract]

    # [START howto_hubcomm_mapped_batch_write]
    write = BatchWriteStatusesOperator.partial(
        task_id="write_partition",
        inputs=extracted,  # every partition reads the whole file and keeps its own rows
        state_path=STATE_PATH,  # one sync state per partition, below this folder
        partitions=PARTITIONS,
        pool=POOL,  # at most POOL_SLOTS HubSpot tasks at once, each with 1 / POOL_SLOTS of the budget
        rate_limit_share=RATE_LIMIT_SHARE,
        hubcomm_conn_id=HUBCOMM_CONN_ID,
        column_map=COLUMN_MAP,
        on_invalid="skip",
        only_changes=True,
        batch_size=BATCH_SIZE,
        max_concurrency=2,
        max_failed_ratio=0.05,
    ).expand(partition=list(range(PARTITIONS)))
    # [END howto_hubcomm_mapped_batch_write]

    verify = BatchStatusSensor.partial(
        task_id="verify_partition",
        pool=POOL,
        rate_limit_share=RATE_LIMIT_SHARE,
        hubcomm_conn_id=HUBCOMM_CONN_ID,
        verify="sample",
        sample_size=250,
        poke_interval=10,
        timeout=60 * 60,
    ).expand(batch=write.output)

    # [START howto_hubcomm_mapped_report]
    @task(trigger_rule="all_done")
    def report(summaries: Any, verifications: Any) -> dict[str, Any]:
        """Add up the partitions, check that no row was lost, print and save the totals."""
        ti = get_current_context()["ti"]
        extracted = ti.xcom_pull(task_ids="extract", key="rows_extracted")
        parts = [s for s in summaries or [] if s]
        checks = [v for v in verifications or [] if v]
        keys = ("rows_read", "written", "failed", "skipped", "unchanged", "requests", "retries")
        totals: dict[str, Any] = {k: sum(int(s.get(k) or 0) for s in parts) for k in keys}
        for field in ("skipped_by_reason", "failed_by_reason"):
            merged: dict[str, int] = {}
            for s in parts:
                for reason, n in (s.get(field) or {}).items():
                    merged[reason] = merged.get(reason, 0) + n
            totals[field] = {k: v for k, v in merged.items() if v}
        totals.update(
            partitions=len(parts),
            rows_extracted=extracted,
            rows_verified=sum(int(v.get("rows_verified") or 0) for v in checks),
            rows_matching=sum(int(v.get("rows_matching") or 0) for v in checks),
            verified_partitions=sum(1 for v in checks if not v.get("pending") and not v.get("mismatch_count")),
        )
        lines = [f"Large consent sync: {len(parts)} partitions, {extracted:,} rows extracted"]
        for i, s in enumerate(parts):
            lines.append(
                f"  partition {i}: read {s['rows_read']:>9,}  written {s['written']:>9,}  failed {s['failed']:>6,}  "
                f"skipped {s['skipped']:>7,}  ({s.get('requests', 0):,} requests, {s.get('duration_seconds', 0):.1f} s)"
            )
        lines.append(
            f"  total:       read {totals['rows_read']:>9,}  written {totals['written']:>9,}  "
            f"failed {totals['failed']:>6,}  skipped {totals['skipped']:>7,}  (unchanged {totals['unchanged']:,})"
        )
        lines.append(f"  skipped by reason: {totals['skipped_by_reason']}")
        lines.append(f"  failed by reason:  {totals['failed_by_reason']}")
        lines.append(
            f"  verification: {totals['verified_partitions']} of {len(parts)} partitions OK, "
            f"{totals['rows_matching']:,} of {totals['rows_verified']:,} sampled rows read back as written"
        )
        text = "\n".join(lines)
        out = run_dir(
            "HUBCOMM_REPORT_DIR", Path(os.environ.get("AIRFLOW_HOME", "~/airflow")).expanduser() / "hubcomm_reports"
        )
        (out / "report.txt").write_text(text + "\n", encoding="utf-8")
        (out / "totals.json").write_text(json.dumps(totals, indent=2), encoding="utf-8")
        print(text)
        print(f"Report saved in {out}")
        problems = []
        outside = [int((s.get("partition") or {}).get("rows_outside", -1)) for s in parts]
        if any(n + int(s["rows_read"]) != extracted for n, s in zip(outside, parts, strict=True)):
            problems.append("a partition did not see every extracted row (its rows + rows outside != extracted)")
        if totals["rows_read"] != extracted:
            problems.append(f"the writers read {totals['rows_read']:,} rows but {extracted:,} were extracted")
        if totals["written"] + totals["failed"] + totals["skipped"] != totals["rows_read"]:
            problems.append("written + failed + skipped != rows read")
        if totals["verified_partitions"] != len(parts):
            problems.append(f"only {totals['verified_partitions']} of {len(parts)} partitions verified")
        if problems:
            raise AirflowFailException("; ".join(problems) + f" (see {out / 'report.txt'})")
        return {"report_dir": str(out), **totals}

    done = report(write.output, verify.output)
    # [END howto_hubcomm_mapped_report]

    extracted >> write >> verify >> done
