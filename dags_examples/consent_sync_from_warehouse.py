"""Sync e-mail consent from a warehouse table into HubSpot, verify it landed, and report.

What this example shows:

1. ``extract_consent``: read the consent table through Airflow's common SQL layer (the ``warehouse_default``
   connection; SQLite in the demo, Postgres or any DB-API database in production) and **stream** the cursor
   (``fetchmany``) into a CSV file. Only the file's path goes through XCom, never the rows.
2. ``write_statuses``: :class:`~airflow_provider_hubcomm.operators.BatchWriteStatusesOperator` maps the
   warehouse columns to HubSpot's fields, skips invalid rows (counted by reason), skips rows whose status
   HubSpot already has (``only_changes``), never re-subscribes a contact who unsubscribed unless allowed,
   and writes the rest in rate-limited, retried batches.
3. ``verify_in_hubspot``: :class:`~airflow_provider_hubcomm.sensors.BatchStatusSensor` reads a sample of the
   written rows back until HubSpot shows them as written.
4. ``report``: prints a readable summary (written / failed / skipped / unchanged, failures and skips by
   reason, the verification result) and saves it, with the failed rows, under a report directory. It runs
   even when the write crossed ``max_failed_ratio`` or the verification failed (``trigger_rule="all_done"``),
   reports what happened, and then fails itself, so the run stays failed.

The warehouse table needs the columns ``email``, ``subscription_id``, ``consent_status``, ``legal_basis``,
``legal_basis_explanation`` and ``updated_at`` (``scripts/seed_warehouse.py`` creates a demo one). Rows are
read oldest first, so when a contact's subscription appears several times the newest row wins.

Environment variables (all optional): ``HUBCOMM_CONN_ID`` (``hubcomm_default``), ``WAREHOUSE_CONN_ID``
(``warehouse_default``), ``HUBCOMM_WAREHOUSE_TABLE`` (``contact_consent``), ``HUBCOMM_ALLOW_RESUBSCRIBE``
(``false``), ``HUBCOMM_MAX_FAILED_RATIO`` (``0.05``), and at run time ``HUBCOMM_WORK_DIR`` (extract files,
default ``<tmp>/hubcomm``) and ``HUBCOMM_REPORT_DIR`` (reports, default ``$AIRFLOW_HOME/hubcomm_reports``).
With several workers, point ``HUBCOMM_WORK_DIR`` at storage every worker can read.
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import tempfile
from contextlib import closing
from datetime import datetime
from pathlib import Path
from typing import Any

from airflow.sdk import DAG, BaseHook, get_current_context, task
from airflow.sdk.exceptions import AirflowFailException

from airflow_provider_hubcomm.operators import BatchWriteStatusesOperator
from airflow_provider_hubcomm.sensors import BatchStatusSensor

DAG_ID = "consent_sync_from_warehouse"
HUBCOMM_CONN_ID = os.environ.get("HUBCOMM_CONN_ID", "hubcomm_default")
WAREHOUSE_CONN_ID = os.environ.get("WAREHOUSE_CONN_ID", "warehouse_default")
WAREHOUSE_TABLE = os.environ.get("HUBCOMM_WAREHOUSE_TABLE", "contact_consent")
ALLOW_RESUBSCRIBE = os.environ.get("HUBCOMM_ALLOW_RESUBSCRIBE", "false").lower() in ("1", "true", "yes")
MAX_FAILED_RATIO = float(os.environ.get("HUBCOMM_MAX_FAILED_RATIO", "0.05"))

if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?", WAREHOUSE_TABLE):
    raise ValueError(f"HUBCOMM_WAREHOUSE_TABLE must be a plain [schema.]table name, got {WAREHOUSE_TABLE!r}")

# Plain SQL that SQLite, Postgres, MySQL, Snowflake and BigQuery all accept. Oldest first: on duplicates the
# operator keeps the last row of a (contact, subscription), so the newest consent wins.
EXTRACT_SQL = f"""
SELECT email, subscription_id, consent_status, legal_basis, legal_basis_explanation
FROM {WAREHOUSE_TABLE}
ORDER BY updated_at, id
"""

# [START howto_hubcomm_column_map]
COLUMN_MAP = {
    "email": "subscriberIdString",
    "subscription_id": "subscriptionId",
    "consent_status": "statusState",
    "legal_basis": "legalBasis",
    "legal_basis_explanation": "legalBasisExplanation",
}
# [END howto_hubcomm_column_map]

FETCH_ROWS = 10_000


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


def stream_query_to_csv(conn_id: str, sql: str, path: Path, fetch_rows: int = FETCH_ROWS) -> int:
    """Run ``sql`` on the DB-API connection ``conn_id`` and stream the result into the CSV file ``path``.

    Memory stays flat whatever the row count: rows are fetched ``fetch_rows`` at a time. On Postgres a
    named (server-side) cursor is used, because psycopg's default cursor downloads the whole result on
    ``execute``. SQL ``NULL`` becomes an empty cell, which the operator reads as "absent".

    :param conn_id: an Airflow connection whose hook is a ``DbApiHook`` (sqlite, postgres, mysql, ...).
    :param sql: the query.
    :param path: the CSV file to write (replaced atomically).
    :param fetch_rows: rows per ``fetchmany``.
    :return: the number of data rows written.
    """
    connection = BaseHook.get_connection(conn_id)
    hook = connection.get_hook()
    tmp = path.with_name(path.name + ".part")
    rows = 0
    with closing(hook.get_conn()) as conn:
        server_side = connection.conn_type == "postgres"
        with closing(conn.cursor(name="hubcomm_extract") if server_side else conn.cursor()) as cur:
            cur.execute(sql)
            batch = cur.fetchmany(fetch_rows)  # a named cursor knows its columns only after the first fetch
            with tmp.open("w", newline="", encoding="utf-8") as out:
                writer = csv.writer(out)
                writer.writerow([d[0] for d in cur.description])
                while batch:
                    writer.writerows(batch)
                    rows += len(batch)
                    batch = cur.fetchmany(fetch_rows)
    os.replace(tmp, path)
    return rows


def format_report(summary: dict[str, Any], verification: dict[str, Any] | None) -> str:
    """Render the batch summary and the sensor's result as a short, readable text report.

    :param summary: the XCom of ``BatchWriteStatusesOperator`` (see ``docs/dev/CONTRACTS.md``).
    :param verification: the XCom of ``BatchStatusSensor``, or ``None`` if it produced none.
    """
    lines = [
        f"HubSpot consent sync ({'dry run, ' if summary.get('dry_run') else ''}connection {summary.get('conn_id')})",
        f"  rows read      {summary['rows_read']:>9,}",
        f"  written        {summary['written']:>9,}",
        f"  failed         {summary['failed']:>9,}",
        f"  skipped        {summary['skipped']:>9,}   (of which unchanged in HubSpot: {summary['unchanged']:,})",
        f"  requests       {summary.get('requests', 0):>9,}   retries {summary.get('retries', 0):,}, "
        f"{summary.get('duration_seconds', 0):.1f} s, {summary.get('rows_per_second', 0):,.0f} rows/s",
    ]
    skipped = {k: v for k, v in (summary.get("skipped_by_reason") or {}).items() if v}
    if skipped:
        lines.append("  skipped by reason:")
        lines += [f"    {count:>7,}  {reason}" for reason, count in sorted(skipped.items(), key=lambda kv: -kv[1])]
    failed = summary.get("failed_by_reason") or {}
    if failed:
        lines.append("  failed by reason:")
        lines += [f"    {count:>7,}  {reason}" for reason, count in sorted(failed.items(), key=lambda kv: -kv[1])]
    if verification is None:
        lines.append("  verification:  no result (the sensor did not run or pushed nothing)")
    else:
        ok = not verification.get("pending") and not verification.get("mismatch_count")
        lines.append(
            f"  verification:  {'OK' if ok else 'NOT OK'} ({verification.get('verify')}): "
            f"{verification.get('rows_matching', 0):,} of {verification.get('rows_verified', 0):,} rows read back "
            f"as written, {verification.get('pending', 0):,} pending, {verification.get('mismatch_count', 0):,} "
            "changed behind the run's back"
        )
        for m in (verification.get("mismatches") or [])[:5]:
            lines.append(f"    mismatch: {m}")
    return "\n".join(lines)


with DAG(
    dag_id=DAG_ID,
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["example", "hubspot"],
    doc_md=__doc__,
    default_args={"hubcomm_conn_id": HUBCOMM_CONN_ID},
) as dag:
    # [START howto_hubcomm_extract_to_file]
    @task
    def extract_consent() -> str:
        """Stream the consent table into a CSV file; return its path (not the rows)."""
        path = run_dir("HUBCOMM_WORK_DIR", Path(tempfile.gettempdir()) / "hubcomm") / "consent.csv"
        rows = stream_query_to_csv(WAREHOUSE_CONN_ID, EXTRACT_SQL, path)
        print(f"Extracted {rows:,} rows from {WAREHOUSE_TABLE} ({WAREHOUSE_CONN_ID}) into {path}")
        return str(path)

    extract = extract_consent()
    # [END howto_hubcomm_extract_to_file]

    # [START howto_hubcomm_batch_write_from_warehouse]
    write = BatchWriteStatusesOperator(
        task_id="write_statuses",
        inputs=extract,
        column_map=COLUMN_MAP,
        on_invalid="skip",
        only_changes=True,
        allow_resubscribe=ALLOW_RESUBSCRIBE,
        max_failed_ratio=MAX_FAILED_RATIO,
    )
    # [END howto_hubcomm_batch_write_from_warehouse]

    # [START howto_hubcomm_batch_status_sensor]
    verify = BatchStatusSensor(
        task_id="verify_in_hubspot",
        batch=write.output,
        verify="sample",
        sample_size=1000,
        poke_interval=10,
        timeout=30 * 60,
    )
    # [END howto_hubcomm_batch_status_sensor]

    # [START howto_hubcomm_report]
    @task(trigger_rule="all_done")
    def report(summary: dict[str, Any] | None, verification: dict[str, Any] | None) -> dict[str, Any]:
        """Print the run's numbers, save them with the failed rows; fail if the write or the verification failed."""
        airflow_home = Path(os.environ.get("AIRFLOW_HOME", "~/airflow")).expanduser()
        out = run_dir("HUBCOMM_REPORT_DIR", airflow_home / "hubcomm_reports")
        write_failed = summary is None
        if summary is None:  # a run that aborted or crossed max_failed_* pushes its summary under "summary"
            summary = get_current_context()["ti"].xcom_pull(task_ids="write_statuses", key="summary")
        if summary is None:
            raise AirflowFailException("write_statuses produced no summary (it failed before writing); see its log")
        text = format_report(summary, verification)
        failed_rows = None
        source = summary.get("failed_rows_path")
        if source and "://" in str(source):  # object storage (output_dir="s3://..."): leave it there
            text += f"\n  failed rows:   {source}"
        elif source and Path(source).exists():
            failed_rows = out / "failed_rows.jsonl"
            shutil.copyfile(source, failed_rows)
            text += f"\n  failed rows:   {failed_rows}"
        (out / "report.txt").write_text(text + "\n", encoding="utf-8")
        (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str), encoding="utf-8")
        if verification is not None:
            (out / "verification.json").write_text(json.dumps(verification, indent=2, default=str), encoding="utf-8")
        print(text)
        print(f"Report saved in {out}")
        if write_failed:
            raise AirflowFailException(f"write_statuses failed (see its log); the report is in {out / 'report.txt'}")
        verified = bool(verification) and not verification["pending"] and not verification["mismatch_count"]
        if not verified:
            raise AirflowFailException(f"HubSpot did not confirm the write; see {out / 'report.txt'}")
        return {
            "report_dir": str(out),
            "failed_rows_file": None if failed_rows is None else str(failed_rows),
            "verified": verified,
            **{k: summary[k] for k in ("rows_read", "written", "failed", "skipped", "unchanged")},
        }

    done = report(write.output, verify.output)
    # [END howto_hubcomm_report]

    extract >> write >> verify >> done
