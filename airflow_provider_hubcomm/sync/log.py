"""The sync log: per run, one Parquet file next to the state with one row per input row and its outcome.

Like a reverse-ETL tool's sync changelog, it answers "when did we last set X for this contact, and why" with a
warehouse or DuckDB query. Layout (Hive-style, partitioned by the day the run ended, in UTC)::

    <state_path>/log/date=2026-12-02/run-<run id>-try-<n>-<ns>.parquet

Columns (:data:`COLUMNS`): when the run ended (``synced_at``), which task run it was (``dag_id``, ``task_id``,
``run_id``, ``try_number``; ``NULL`` outside Airflow), the input ``row``, what was sent or would have been sent
(``subscriber`` as given, ``subscription_id``, ``status_state``, ``channel``, ``legal_basis``,
``legal_basis_explanation``), the ``outcome`` (``written``, ``failed`` or ``skipped``), the ``reason``
(HubSpot's error category for a failed row, ``NULL`` when there is none, e.g. a row not sent after a fatal
error; the skip reason such as ``unchanged``, ``duplicate``, ``invalid``
or ``resubscribe_not_allowed``; ``NULL`` for a written row), the ``message`` (the detail, as in the
failed-rows file, already redacted by the hook) and, for written rows, HubSpot's ``operation_status``
(``COMPLETE``, or ``PENDING``/``PROCESSING`` when not confirmed yet).

No second pass over the rows in Python: DuckDB joins what the run already produced, by input row number:
the diff's export of the valid rows and its verdicts (``s`` to send, ``d`` a superseded duplicate; a row
without a verdict is unchanged), the written-rows manifest and the failed-rows file (failed rows, invalid rows and the
skips that need attention, with their reasons). A valid row with a verdict to send that is in neither file
was skipped as ``unchanged`` by the ``only_changes`` read. The file is written under a ``.tmp`` name and
renamed, like the journal's segments.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Final

from airflow_provider_hubcomm.sync.duck import connect, q

if TYPE_CHECKING:
    from airflow_provider_hubcomm.sync.state import SyncState

__all__ = ["COLUMNS", "LOG_DIR", "write_log"]

LOG_DIR: Final = "log"
#: The log's columns, in order (the ``date`` partition comes from the folder name).
COLUMNS: Final = (
    "synced_at",
    "dag_id",
    "task_id",
    "run_id",
    "try_number",
    "row",
    "subscriber",
    "subscription_id",
    "status_state",
    "channel",
    "legal_basis",
    "legal_basis_explanation",
    "outcome",
    "reason",
    "message",
    "operation_status",
)

_UNSAFE: Final = re.compile(r"[^A-Za-z0-9._-]+")
_COPY_BUFFER: Final = 4 * 1024 * 1024
_EMPTY_WRITTEN: Final = "SELECT NULL::BIGINT AS r, NULL::VARCHAR AS os WHERE false"
_EMPTY_FAILED: Final = (
    "SELECT NULL::BIGINT AS r, NULL::VARCHAR AS outcome, NULL::VARCHAR AS reason, NULL::VARCHAR AS category, "
    "NULL::VARCHAR AS message, NULL::JSON AS input WHERE false"
)


def _local(location: str | None, workdir: Path, name: str) -> str | None:
    """Return a local path of an output file of the run (copied from object storage when it is a URL)."""
    if location is None:
        return None
    if "://" not in location:
        return location if os.path.exists(location) else None
    from airflow.sdk import ObjectStoragePath

    source = ObjectStoragePath(location)
    if source.protocol in ("file", "local"):
        return source.path
    target = workdir / name
    with source.open("rb") as src, target.open("wb") as dst:
        shutil.copyfileobj(src, dst, _COPY_BUFFER)
    return str(target)


def _text(value: object) -> str:
    return "NULL" if value is None else q(value)


def file_name(task_run: tuple[str, str, str, int] | None) -> str:
    """Return the log file's name: ``run-<run id>-try-<n>-<ns>.parquet`` (``run-<ns>.parquet`` outside Airflow).

    :param task_run: ``(dag_id, task_id, run_id, try_number)``, or ``None``.
    """
    stamp = f"{time.time_ns():020d}"
    if task_run is None:
        return f"run-{stamp}.parquet"
    run_id = _UNSAFE.sub("_", task_run[2]).strip("._")[:120] or "_"
    return f"run-{run_id}-try-{int(task_run[3])}-{stamp}.parquet"


def write_log(
    state: SyncState,
    workdir: Path,
    rows: str,
    verdicts: Path,
    written: str | None,
    failed: str | None,
    task_run: tuple[str, str, str, int] | None,
    memory_limit: str,
) -> tuple[str, int]:
    """Write the run's sync log under ``<state>/log/date=<day>/``; return its location and its row count.

    :param state: the sync state (the log goes next to it).
    :param workdir: the run's private work folder.
    :param rows: SQL of the diff's input rows (:attr:`~airflow_provider_hubcomm.sync.diff.DiffResult.rows`).
    :param verdicts: the diff's verdicts.
    :param written: the written-rows manifest's location (``None``: no row was written).
    :param failed: the failed-rows file's location (``None``: no row failed or needed attention).
    :param task_run: ``(dag_id, task_id, run_id, try_number)`` of the task run, or ``None``.
    :param memory_limit: DuckDB's memory limit.
    """
    from_diff = f"({rows})"
    written_local = _local(written, workdir, "written.jsonl")
    failed_local = _local(failed, workdir, "failed.jsonl")
    wr = (
        _EMPTY_WRITTEN
        if written_local is None
        else f'SELECT "row" AS r, operationStatus AS os FROM read_json({q(written_local)}, '
        "format='newline_delimited', columns={row: 'BIGINT', operationStatus: 'VARCHAR'})"
    )
    fl = (
        _EMPTY_FAILED
        if failed_local is None
        else f'SELECT "row" AS r, outcome, reason, category, message, input FROM read_json({q(failed_local)}, '
        "format='newline_delimited', columns={row: 'BIGINT', outcome: 'VARCHAR', reason: 'VARCHAR', "
        "category: 'VARCHAR', message: 'VARCHAR', input: 'JSON'})"
    )
    ended = datetime.now(UTC)
    dag_id, task_id, run_id, try_number = task_run if task_run is not None else (None, None, None, None)
    run = (
        f"TIMESTAMPTZ {q(ended.isoformat())} AS synced_at, {_text(dag_id)}::VARCHAR AS dag_id, "
        f"{_text(task_id)}::VARCHAR AS task_id, {_text(run_id)}::VARCHAR AS run_id, "
        f"{'NULL' if try_number is None else int(try_number)}::INTEGER AS try_number"
    )

    def field(name: str) -> str:
        return f"json_extract_string(f.input, '$.{name}')"

    query = f"""
        WITH inp AS (SELECT * FROM {from_diff}),
        ver AS (SELECT * FROM read_csv({q(verdicts)}, header=false, auto_detect=false,
                                      columns={{'r': 'BIGINT', 'v': 'VARCHAR'}})),
        wr AS ({wr}),
        fl AS ({fl})
        SELECT {run}, i.r AS "row", coalesce(i.sb, i.k) AS subscriber, i.s AS subscription_id,
               i.st AS status_state, i.ch AS channel, i.lb AS legal_basis, i.ex AS legal_basis_explanation,
               CASE WHEN w.r IS NOT NULL THEN 'written' WHEN f.r IS NOT NULL THEN f.outcome ELSE 'skipped' END
                   AS outcome,
               CASE WHEN w.r IS NOT NULL THEN NULL
                    WHEN f.r IS NOT NULL THEN coalesce(f.reason, f.category)
                    WHEN v.v = 'd' THEN 'duplicate'
                    WHEN v.v = 'r' THEN 'resubscribe_not_allowed'
                    ELSE 'unchanged' END AS reason,
               f.message, w.os AS operation_status
        FROM inp i LEFT JOIN ver v ON v.r = i.r LEFT JOIN wr w ON w.r = i.r LEFT JOIN fl f ON f.r = i.r
        UNION ALL
        SELECT {run}, f.r, {field("subscriberIdString")}, TRY_CAST({field("subscriptionId")} AS BIGINT),
               {field("statusState")}, {field("channel")}, {field("legalBasis")}, {field("legalBasisExplanation")},
               'skipped', 'invalid', f.message, NULL
        FROM fl f WHERE f.reason = 'invalid'
        ORDER BY "row"
    """
    out = workdir / "log.parquet"
    con = connect(workdir, memory_limit)
    try:
        con.execute(f"SET TimeZone = 'UTC'; COPY ({query}) TO {q(out)} (FORMAT parquet)")
        counted = con.execute(f"SELECT count(*) FROM read_parquet({q(out)})").fetchone()
    finally:
        con.close()
    target = state.root / LOG_DIR / f"date={ended.date().isoformat()}" / file_name(task_run)
    state.put(target, out)
    out.unlink()
    return str(target), int(counted[0]) if counted else 0
