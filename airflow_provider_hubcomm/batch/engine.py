"""The batch-write engine behind ``BatchWriteStatusesOperator``: the operator builds it over a hook.

A run makes three passes over the data and holds no per-row state in memory:

1. **Validation pass** (:mod:`~airflow_provider_hubcomm.batch.spool`): every row is read once from the input
   (list, iterable, CSV/JSONL/JSON/Parquet file or object-storage path), validated, and, if valid, spooled
   to a temporary file while a compact index records duplicates. A subscription may be named by its name
   (:mod:`~airflow_provider_hubcomm.batch.preflight`). Nothing is sent before every row was validated: with
   ``on_invalid="fail"`` one bad row stops the run with an error naming row, field, value and allowed
   values; with ``"skip"`` bad rows are counted and listed in the failed-rows file. A Parquet, CSV or JSON
   lines file is validated column by column (:mod:`~airflow_provider_hubcomm.batch.columnar`,
   :mod:`~airflow_provider_hubcomm.batch.csvbatches`, :mod:`~airflow_provider_hubcomm.batch.jsonbatches`),
   with the row path's results.
2. **Definitions preflight**: the account's subscriptions are read once (per brand); every row's
   subscription is looked up before the first write, so unknown or inactive ids stop the run
   (``on_invalid="fail"``) or skip their rows (``"skip"``) up front. A dry run preflights too.
3. **Send pass** (:mod:`~airflow_provider_hubcomm.batch.pipeline`): the spool is streamed back; superseded
   duplicates are skipped (the last row for a subscriber and subscription wins); rows that need a status
   read first go through the brand-aware guard (:mod:`~airflow_provider_hubcomm.batch.guard`), the rest is
   cut into chunks of ``batch_size`` that a thread pool sends through the hook (rate limiting and retries
   live there). Each answer is reconciled row by row (:mod:`~airflow_provider_hubcomm.batch.chunk`).

A request-level failure (400, 404, 5xx or no answer after retries) fails that request's rows and the run
goes on. A fatal error (401/403, the ``DAILY`` 429, an unexpected exception) aborts: in-flight requests
finish, the remaining rows are counted failed ("not sent: run aborted: …") and :class:`BatchAbortedError`
carries the summary. A ``403 MISSING_SCOPES`` from a batch endpoint switches to single calls
(``on_missing_batch_scope="single"``, :mod:`~airflow_provider_hubcomm.batch.single`) or aborts
(``"fail"``); the summary's ``mode`` says which ran. Retrying the task is safe: every write *sets* a state,
so a rerun converges to the same result.

Incremental sync (``state_path``, :mod:`airflow_provider_hubcomm.sync`): between the validation pass and the
preflight, the valid rows are de-duplicated exactly and compared with the state of what HubSpot confirmed last
(DuckDB, out of core); unchanged rows are skipped as ``unchanged`` and cost no request. The account reports
every answered row to the state's journal, written in bounded checkpoints, and the state is compacted when the
send pass ends; then the sync log (one Parquet row per input row and its outcome) is written next to the state.
Rows that are sent go through the guard as usual: the state is never proof of consent.

Re-subscribe guardrail: a ``SUBSCRIBED`` row for a subscription HubSpot has ``UNSUBSCRIBED``, or for a
contact who opted out of all e-mail of the subscription's brand, would re-subscribe someone who opted out.
Unless ``allow_resubscribe=True`` such rows are skipped with reason ``resubscribe_not_allowed``; the reads
this needs are packed across chunks and sent with each subscription's brand (``businessUnitId``).
"""

from __future__ import annotations

import functools
import logging
import math
import time
from typing import TYPE_CHECKING, Any

from airflow_provider_hubcomm.batch.chunk import BatchSize
from airflow_provider_hubcomm.batch.guard import RESUBSCRIBE, needs_read, remembered_refusal
from airflow_provider_hubcomm.batch.header import check_header
from airflow_provider_hubcomm.batch.options import BatchWriteOptions
from airflow_provider_hubcomm.batch.outputs import JsonLinesSink
from airflow_provider_hubcomm.batch.pipeline import SendPass
from airflow_provider_hubcomm.batch.preflight import NamingValidator, Preflight, check_spool, refusal
from airflow_provider_hubcomm.batch.reasons import Reason, classify_error
from airflow_provider_hubcomm.batch.spool import Records, validate_rows
from airflow_provider_hubcomm.batch.summary import Progress, check_thresholds, log_summary, summary_text
from airflow_provider_hubcomm.batch.thresholds import check_validation
from airflow_provider_hubcomm.batch.write_account import RunAccount
from airflow_provider_hubcomm.exceptions import BatchAbortedError, HubCommValidationError
from airflow_provider_hubcomm.models import Channel

if TYPE_CHECKING:
    from airflow_provider_hubcomm.contracts import RunMode, RunSummary
    from airflow_provider_hubcomm.hooks._catalog import SubscriptionCatalog
    from airflow_provider_hubcomm.hooks.hubcomm import HubCommHook
    from airflow_provider_hubcomm.sync.partition import PartitionFilter
    from airflow_provider_hubcomm.sync.run import SyncRun

__all__ = ["BatchAbortedError", "BatchWriteEngine", "BatchWriteOptions", "summary_text"]

log = logging.getLogger(__name__)


class BatchWriteEngine:
    """Validate, de-duplicate, preflight, guard, chunk and send many status writes; return the run summary.

    :param hook: the hook whose public methods send the requests.
    :param options: the run's options (validated when built; default: every option's default).
    """

    def __init__(self, hook: HubCommHook, options: BatchWriteOptions | None = None) -> None:
        self.hook = hook
        self.options = options if options is not None else BatchWriteOptions()
        self._plan = {"rows_to_send": 0, "chunks": 0}
        self._mode: RunMode = "batch"

    # -- run ---------------------------------------------------------------------------------------------------

    def run(self, inputs: Any) -> RunSummary:
        """Run the batch and return its summary.

        :param inputs: rows (list or iterable of mappings), a file path, a URL or an ``ObjectStoragePath``.
        :raises HubCommValidationError: invalid rows or rows naming an unknown/inactive subscription with
            ``on_invalid="fail"`` (nothing was sent), or a bad ``column_map``/``defaults``.
        :raises BatchAbortedError: a fatal error stopped the run; ``.summary`` holds the accounting.
        :raises HubCommThresholdError: more rows failed than ``max_failed_rows``/``max_failed_ratio`` allow.
        """
        from airflow_provider_hubcomm.batch.parquet import parquet_batches
        from airflow_provider_hubcomm.batch.sources import iter_rows

        started = time.monotonic()
        options = self.options
        validator = NamingValidator(
            options.column_map, options.defaults, options.extra_columns, self.hook.subscription_catalog
        )
        output_dir, name = options.output_dir, options.output_name
        failed_sink = JsonLinesSink(options.failed_rows_path, output_dir=output_dir, kind="failed", name=name)
        written_sink = None if options.dry_run else JsonLinesSink(output_dir=output_dir, kind="written", name=name)
        sync = self._sync()
        account = RunAccount(failed_sink, written_sink, self.hook.redact, sync.journal if sync else None)
        skip = options.on_invalid == "skip"
        header_check = functools.partial(check_header, validator)
        requests0, retries0 = self._counters()
        size = BatchSize(options.batch_size)
        spool: Records | None = None
        aborted: BaseException | None = None
        part = self._partition(validator.subscriber_column)
        batches = parquet_batches(inputs, file_format=options.file_format, on_header=header_check)
        try:
            if batches is not None:  # a Parquet file: the vectorised pass
                from airflow_provider_hubcomm.batch.columnar import validate_parquet

                checked = validate_parquet(
                    batches,
                    validator,
                    stop_at_invalid=not skip,
                    on_invalid_row=account.skip_invalid if skip else None,
                    partition=part,
                )
            else:  # CSV or JSON lines: the vectorised pass too, unless only the row path reads it right
                from airflow_provider_hubcomm.batch.csvbatches import validate_csv
                from airflow_provider_hubcomm.batch.jsonbatches import validate_jsonl

                as_file = validate_csv(  # None: not a CSV file
                    inputs,
                    validator,
                    stop_at_invalid=not skip,
                    file_format=options.file_format,
                    on_header=header_check,
                    on_invalid_row=account.skip_invalid if skip else None,
                    partition=part,
                )
                if as_file is None:  # None: not a JSON lines file
                    as_file = validate_jsonl(
                        inputs,
                        validator,
                        stop_at_invalid=not skip,
                        file_format=options.file_format,
                        on_invalid_row=account.skip_invalid if skip else None,
                        partition=part,
                    )
                if as_file is not None:
                    checked = as_file
                else:
                    rows = iter_rows(inputs, file_format=options.file_format, on_header=header_check)
                    checked = validate_rows(
                        rows if part is None else part.filter(rows),
                        validator,
                        stop_at_invalid=not skip,
                        on_invalid_row=account.skip_invalid if skip else None,
                    )
            spool = checked.spool
            account.rows_read = checked.rows_read
            log.info(
                "Validated %d rows in %.1f s: %d valid, %d invalid%s.",
                checked.rows_read,
                time.monotonic() - started,
                checked.valid,
                checked.invalid,
                " (skipped)" if skip and checked.invalid else "",
            )
            try:
                check_validation(checked, on_invalid=options.on_invalid, max_invalid_ratio=options.max_invalid_ratio)
            except HubCommValidationError:
                failed_sink.discard()  # a refused run leaves no file of e-mail addresses behind
                raise
            assert spool is not None
            records: Records = spool
            if sync is not None:
                records = sync.prepare(spool)
                account.skipped["unchanged"] += sync.unchanged
                for row, write in sync.refused_rows():  # refused last time, unchanged: no read again
                    account.skip(row, write, RESUBSCRIBE, remembered_refusal(write), record=False)
            if sync is not None and sync.unchanged + sync.refused == sync.kept:  # nothing to send: no request
                account.skipped["duplicate"] += sum(1 for _ in records.records())
            else:
                aborted = self._send(records, account, size)
            if sync is not None:
                sync.finish()
        except BaseException:
            failed_sink.target = None  # do not leave an empty file behind a run that sent nothing
            raise
        finally:
            try:
                failed_path = failed_sink.close()
                written_path = written_sink.close() if written_sink is not None else None
                if sync is not None:
                    sync.write_log(written_path, failed_path)  # a finished run only (it may read the spool)
            finally:
                if spool is not None:
                    spool.close()
                if sync is not None:
                    sync.close()
        requests1, retries1 = self._counters()
        duration = time.monotonic() - started
        summary = account.summary(
            conn_id=self.hook.hubcomm_conn_id,
            channel=Channel.EMAIL.value,
            dry_run=options.dry_run,
            only_changes=options.only_changes,
            allow_resubscribe=options.allow_resubscribe,
            mode=self._mode,
            requests=requests1 - requests0,
            retries=retries1 - retries0,
            duration=duration,
            plan={
                "rows_to_send": self._plan["rows_to_send"],
                "chunks": self._plan["chunks"],
                "batch_size": options.batch_size,
                "max_concurrency": options.max_concurrency,
                "batch_size_used": size.current,
                "batch_size_reduced": size.reduced,
            },
            written_rows_path=written_path,
            failed_rows_path=failed_path,
        )
        if sync is not None:
            summary["state"] = sync.summary()
        if part is not None:
            summary["partition"] = part.summary()
        log_summary(summary)
        if aborted is not None:
            cause = self.hook.redact(f"{type(aborted).__name__}: {aborted}")
            message = f"Batch run aborted by {cause}\nSummary: {summary_text(summary)}"
            raise BatchAbortedError(message, summary) from aborted
        check_thresholds(summary, options.max_failed_rows, options.max_failed_ratio)
        return summary

    def _partition(self, subscriber_column: str | None) -> PartitionFilter | None:
        """Return the filter keeping this run's partition of the input (``None`` without ``partitions``)."""
        options = self.options
        if options.partitions is None or options.partition is None:
            return None
        from airflow_provider_hubcomm.sync.partition import PartitionFilter

        return PartitionFilter(options.partition, options.partitions, subscriber_column)

    def _sync(self) -> SyncRun | None:
        """Open the run's use of the sync state (``None`` without ``state_path``); imports DuckDB's side late.

        With partitions, each partition's state is a sub-folder of ``state_path`` (``partition-0003-of-0016``).
        """
        options = self.options
        if options.state_path is None:
            return None
        from airflow_provider_hubcomm.sync.run import SyncRun

        state_path = options.state_path
        if options.partitions is not None and options.partition is not None:
            from airflow_provider_hubcomm.sync.partition import partition_folder
            from airflow_provider_hubcomm.sync.state import state_root

            state_path = state_root(state_path) / partition_folder(options.partition, options.partitions)
        return SyncRun(
            state_path,
            full_resync=options.full_resync,
            dry_run=options.dry_run,
            redact=self.hook.redact,
            sync_log=self.options.sync_log,
            task_run=self.options.task_run,
        )

    def _counters(self) -> tuple[int, int]:
        counters = self.hook.counters()
        return counters["requests"], counters["retries"]

    # -- preflight and send pass -------------------------------------------------------------------------------

    def _preflight(self, spool: Records) -> tuple[SubscriptionCatalog | None, Preflight, Reason | None]:
        """Read the catalog and check every row's subscription; raise per ``on_invalid``.

        :return: the catalog (``None`` when a non-fatal error kept it unreadable), the findings, and the reason
            every row fails with when the catalog is unreadable.
        """
        if not self.options.dry_run:
            # Build the shared client, limiter and retry policy here: connection lookup stays in the task
            # thread and the worker threads share one rate budget.
            self.hook.prepare()
        unreadable = None
        try:
            catalog: SubscriptionCatalog | None = self.hook.subscription_catalog()
        except Exception as err:
            fatal, reason = classify_error(err)
            if fatal:
                raise
            log.error("Cannot read the subscription definitions: %s", self.hook.redact(reason.key))
            unreadable = reason._replace(message=f"not sent: subscription definitions unreadable: {reason.message}")
            catalog = None
        check = check_spool(spool, catalog, functools.partial(needs_read, options=self.options))
        if catalog is not None and check.problems:
            log.warning(
                "%d rows name unknown or inactive subscriptions: %s",
                check.refused,
                "; ".join(f"{sid}: {m}" for sid, (_, m) in check.problems.items()),
            )
            if self.options.on_invalid == "fail":
                raise refusal(spool, check, catalog)
        self._plan["rows_to_send"] = check.sendable
        return catalog, check, unreadable

    def _send(self, spool: Records, account: RunAccount, size: BatchSize) -> BaseException | None:
        """Preflight, then stream the spool through the send pass; return the fatal error when it aborted."""
        try:
            catalog, check, unreadable = self._preflight(spool)
        except HubCommValidationError:
            raise
        except Exception as err:  # fatal: 401/403 or the daily limit on the definitions read
            reason = classify_error(err)[1]
            for row, write, superseded in spool.records():
                if superseded:
                    account.skipped["duplicate"] += 1
                else:
                    account.fail(row, write, reason)
            return err
        if self.options.dry_run or catalog is None:
            for row, write, superseded in spool.records():
                problem = check.problems.get(write.subscription_id)
                if superseded:
                    account.skipped["duplicate"] += 1
                elif problem is not None:
                    account.skip(row, write, *problem)
                elif unreadable is not None:
                    account.fail(row, write, unreadable)
                else:
                    account.skipped["dry_run"] += 1
            self._plan["chunks"] = math.ceil(check.sendable / size.current)
            return None
        progress = Progress(account, self.options.progress_interval)
        send = SendPass(self.hook, account, catalog, size, progress, self.options, check)
        try:
            return send.run(spool.records())
        finally:
            self._plan["chunks"] = send.chunks
            self._mode = send.mode
