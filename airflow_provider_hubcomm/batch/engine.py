"""The batch-write engine behind ``BatchWriteStatusesOperator``: the operator builds it over a hook.

A run has two passes over the data and holds no per-row state in memory:

1. **Validation pass** (:mod:`~airflow_provider_hubcomm.batch.spool`): every row is read once from the input
   (list, iterable, CSV/JSONL/JSON/Parquet file or object-storage path), validated, and, if valid, spooled
   to a temporary file while a compact index records duplicates. Nothing is sent before every row was
   validated: with ``on_invalid="fail"`` one bad row stops the run with an error naming row, field, value
   and allowed values; with ``"skip"`` bad rows are counted and listed in the failed-rows file.
2. **Send pass**: the spool is streamed back; superseded duplicates are skipped (the last row for a
   subscriber and subscription wins); the rest is cut into chunks of ``batch_size`` that a thread pool sends
   through the hook (rate limiting and retries live there), with at most ``2 * max_concurrency`` chunks in
   flight. Each answer is reconciled row by row (:mod:`~airflow_provider_hubcomm.batch.chunk`).

A chunk-level failure (400, 404, 5xx or no answer after retries) fails that chunk's rows and the run goes
on. A fatal error (401/403, the ``DAILY`` 429, an unexpected exception) aborts: in-flight chunks finish,
the remaining rows are counted failed ("not sent: run aborted: …") and :class:`BatchAbortedError` carries the
summary. Retrying the task is safe: every write *sets* a state, so a rerun converges to the same result
(rows already written come back as ``NO_STATUS_CHANGE``).

Re-subscribe guardrail: a ``SUBSCRIBED`` row for a subscription HubSpot has ``UNSUBSCRIBED`` would
re-subscribe someone who opted out, typically because the warehouse data is older than the contact's
click on "unsubscribe". Unless ``allow_resubscribe=True``, each chunk holding a ``SUBSCRIBED`` row first
batch-reads its subscribers' current statuses (the same read ``only_changes`` uses, once per chunk) and skips
such rows with reason ``resubscribe_not_allowed``.
"""

from __future__ import annotations

import functools
import logging
import math
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import TYPE_CHECKING, Any, Literal

from airflow_provider_hubcomm.batch.chunk import ChunkResult, Reason, classify_error, send_chunk
from airflow_provider_hubcomm.batch.header import check_header
from airflow_provider_hubcomm.batch.outputs import JsonLinesSink
from airflow_provider_hubcomm.batch.report import Progress, check_thresholds, log_summary, summary_text
from airflow_provider_hubcomm.batch.rows import RowValidator, format_errors
from airflow_provider_hubcomm.batch.spool import Spool, validate_rows
from airflow_provider_hubcomm.batch.summary import RunAccount
from airflow_provider_hubcomm.constants import DEFAULT_BATCH_SIZE, DEFAULT_MAX_CONCURRENCY, MAX_BATCH_SIZE
from airflow_provider_hubcomm.exceptions import (
    BatchAbortedError,
    HubCommConfigError,
    HubCommValidationError,
)
from airflow_provider_hubcomm.models import Channel

if TYPE_CHECKING:
    from airflow_provider_hubcomm.batch.rows import WriteRow
    from airflow_provider_hubcomm.hooks.hubcomm import HubCommHook

__all__ = ["MAX_CONCURRENCY", "BatchAbortedError", "BatchWriteEngine", "summary_text"]

log = logging.getLogger(__name__)

#: Upper bound of ``max_concurrency`` (the hook's connection pool holds 64 connections).
MAX_CONCURRENCY = 32
#: Seconds between progress lines (a line is also logged at every 10 % of the rows).
PROGRESS_INTERVAL = 10.0


def _int_option(name: str, value: Any, default: int, low: int, high: int) -> int:
    if value is None:
        return default
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise HubCommConfigError(f"{name} must be a whole number, got {value!r}") from None
    if isinstance(value, bool) or not low <= number <= high:
        raise HubCommConfigError(f"{name} must be between {low} and {high}, got {value!r}")
    return number


class BatchWriteEngine:
    """Validate, de-duplicate, chunk and send many status writes; return the run summary.

    :param hook: the hook whose ``batch_write``/``batch_read`` send the requests.
    :param column_map: input column -> API field name (``subscriberIdString``, ``subscriptionId``,
        ``statusState``, ``channel``, ``legalBasis``, ``legalBasisExplanation``).
    :param defaults: API field name -> value for rows that lack it.
    :param batch_size: rows per request (default 100, at most 1,000).
    :param max_concurrency: requests in flight at once (default 4, at most 32).
    :param on_invalid: ``"fail"`` (raise before sending anything) or ``"skip"`` (count and list bad rows).
    :param dry_run: validate and plan only; send nothing.
    :param only_changes: read current statuses per chunk and write only rows whose state differs.
    :param allow_resubscribe: allow ``SUBSCRIBED`` rows to re-subscribe ``UNSUBSCRIBED`` subscriptions.
    :param failed_rows_path: where to write the failed-rows JSON lines (local path, URL or
        ``ObjectStoragePath``); default: a new file in ``output_dir`` or the temp directory.
    :param output_dir: directory (local or object storage) for generated output files.
    :param max_failed_rows: raise :class:`~airflow_provider_hubcomm.exceptions.HubCommThresholdError` when
        more rows failed.
    :param max_failed_ratio: raise when ``failed / (written + failed)`` is larger (0 to 1).
    :param file_format: input file format when the path does not tell (``csv``, ``jsonl``, ``json``,
        ``parquet``).
    :param extra_columns: ``"fail"`` (an unknown input column makes the row invalid) or ``"ignore"``.
    :param progress_interval: seconds between progress log lines.
    """

    def __init__(
        self,
        hook: HubCommHook,
        *,
        column_map: dict[str, str] | None = None,
        defaults: dict[str, Any] | None = None,
        batch_size: int | None = None,
        max_concurrency: int | None = None,
        on_invalid: Literal["fail", "skip"] = "fail",
        dry_run: bool = False,
        only_changes: bool = False,
        allow_resubscribe: bool = False,
        failed_rows_path: Any = None,
        output_dir: Any = None,
        max_failed_rows: int | None = None,
        max_failed_ratio: float | None = None,
        file_format: str | None = None,
        extra_columns: Literal["fail", "ignore"] = "fail",
        progress_interval: float = PROGRESS_INTERVAL,
    ) -> None:
        if on_invalid not in ("fail", "skip"):
            raise HubCommConfigError(f"on_invalid must be 'fail' or 'skip', got {on_invalid!r}")
        if max_failed_ratio is not None and not 0.0 <= float(max_failed_ratio) <= 1.0:
            raise HubCommConfigError(f"max_failed_ratio must be between 0 and 1, got {max_failed_ratio!r}")
        self.hook = hook
        self.column_map = column_map
        self.defaults = defaults
        self.batch_size = _int_option("batch_size", batch_size, DEFAULT_BATCH_SIZE, 1, MAX_BATCH_SIZE)
        self.max_concurrency = _int_option(
            "max_concurrency", max_concurrency, DEFAULT_MAX_CONCURRENCY, 1, MAX_CONCURRENCY
        )
        self.on_invalid = on_invalid
        self.dry_run = bool(dry_run)
        self.only_changes = bool(only_changes)
        self.allow_resubscribe = bool(allow_resubscribe)
        self.failed_rows_path = failed_rows_path
        self.output_dir = output_dir
        self.max_failed_rows = (
            None if max_failed_rows is None else _int_option("max_failed_rows", max_failed_rows, 0, 0, 2**63)
        )
        self.max_failed_ratio = None if max_failed_ratio is None else float(max_failed_ratio)
        self.file_format = file_format
        self.extra_columns = extra_columns
        self.progress_interval = progress_interval
        self._plan = {"rows_to_send": 0, "chunks": 0}

    # -- run ---------------------------------------------------------------------------------------------------

    def run(self, inputs: Any) -> dict[str, Any]:
        """Run the batch and return its summary.

        :param inputs: rows (list or iterable of mappings), a file path, a URL or an ``ObjectStoragePath``.
        :raises HubCommValidationError: invalid rows with ``on_invalid="fail"`` (nothing was sent), or a
            bad ``column_map``/``defaults``.
        :raises BatchAbortedError: a fatal error stopped the run; ``.summary`` holds the accounting.
        :raises HubCommThresholdError: more rows failed than ``max_failed_rows``/``max_failed_ratio`` allow.
        """
        from airflow_provider_hubcomm.batch.sources import iter_rows

        started = time.monotonic()
        validator = RowValidator(self.column_map, self.defaults, self.extra_columns)
        failed_sink = JsonLinesSink(self.failed_rows_path, output_dir=self.output_dir, kind="failed")
        written_sink = None if self.dry_run else JsonLinesSink(output_dir=self.output_dir, kind="written")
        account = RunAccount(failed_sink, written_sink)
        skip = self.on_invalid == "skip"
        requests0, retries0 = self._counters()
        spool: Spool | None = None
        aborted: BaseException | None = None
        try:
            checked = validate_rows(
                iter_rows(inputs, file_format=self.file_format, on_header=functools.partial(check_header, validator)),
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
            if checked.invalid and not skip:
                raise HubCommValidationError(
                    f"{checked.invalid} of {checked.rows_read} input rows are invalid; nothing was sent "
                    f"(on_invalid='fail'; pass on_invalid='skip' to send the valid rows):\n"
                    + format_errors(checked.errors, checked.invalid),
                    [e.to_dict() for e in checked.errors],
                )
            assert spool is not None
            aborted = self._send(spool, account)
        except BaseException:
            failed_sink.target = None  # do not leave an empty file behind a run that sent nothing
            raise
        finally:
            if spool is not None:
                spool.close()
            failed_path = failed_sink.close()
            written_path = written_sink.close() if written_sink is not None else None
        requests1, retries1 = self._counters()
        duration = time.monotonic() - started
        summary = account.summary(
            {
                "conn_id": self.hook.hubcomm_conn_id,
                "channel": Channel.EMAIL.value,
                "dry_run": self.dry_run,
                "only_changes": self.only_changes,
                "allow_resubscribe": self.allow_resubscribe,
            },
            requests=requests1 - requests0,
            retries=retries1 - retries0,
            duration_seconds=round(duration, 3),
            rows_per_second=round(account.rows_read / duration, 1) if duration > 0 else 0.0,
            plan={**self._plan, "batch_size": self.batch_size, "max_concurrency": self.max_concurrency},
            written_rows_path=written_path,
            failed_rows_path=failed_path,
        )
        log_summary(summary)
        if aborted is not None:
            message = f"Batch run aborted by {type(aborted).__name__}: {aborted}\nSummary: {summary_text(summary)}"
            raise BatchAbortedError(message, summary) from aborted
        check_thresholds(summary, self.max_failed_rows, self.max_failed_ratio)
        return summary

    def _counters(self) -> tuple[int, int]:
        if self.dry_run:
            return 0, 0
        counters = self.hook.counters()
        return counters["requests"], counters["retries"]

    # -- send pass ---------------------------------------------------------------------------------------------

    def _send(self, spool: Spool, account: RunAccount) -> BaseException | None:
        """Stream the spool into chunks and send them; return the fatal error when the run aborted."""
        progress = Progress(account, self.progress_interval)
        batch_size = self.batch_size
        chunk: list[tuple[int, WriteRow]] = []
        if self.dry_run:
            would_send = duplicates = 0
            for _, _, superseded in spool.records():
                if superseded:
                    duplicates += 1
                else:
                    would_send += 1
            account.skipped["duplicate"] += duplicates
            account.skipped["dry_run"] += would_send
            self._plan["rows_to_send"] = would_send
            self._plan["chunks"] = math.ceil(would_send / batch_size)
            return None
        hook = self.hook
        # Build the shared client, limiter and retry policy here: connection lookup stays in the task thread
        # and the worker threads share one rate budget.
        hook.prepare()
        in_flight: dict[Future[ChunkResult], list[tuple[int, WriteRow]]] = {}
        max_in_flight = 2 * self.max_concurrency
        abort: list[Any] = []  # [error, reason, not-sent reason] once fatal

        def settle() -> None:
            done, _ = wait(in_flight, return_when=FIRST_COMPLETED)
            for future in done:
                rows = in_flight.pop(future)
                if future.cancelled():  # defensive: futures are only cancelled on abort, and popped there
                    for row, write in rows:
                        account.fail(row, write, abort[2] if abort else Reason(None, "not sent: chunk cancelled"))
                    continue
                result = future.result()
                account.apply(result)
                if result.fatal is not None and not abort:
                    _, reason = classify_error(result.fatal)
                    abort.extend((result.fatal, reason, _not_sent(reason)))
                    log.error("Fatal error, aborting the run: %s", reason.key)
                    for other, other_rows in list(in_flight.items()):
                        if other.cancel():
                            in_flight.pop(other)
                            for row, write in other_rows:
                                account.fail(row, write, abort[2])
                progress.maybe_log()

        def submit(rows: list[tuple[int, WriteRow]]) -> None:
            index = self._plan["chunks"]
            self._plan["chunks"] += 1
            future = pool.submit(
                send_chunk,
                hook,
                index,
                rows,
                only_changes=self.only_changes,
                allow_resubscribe=self.allow_resubscribe,
            )
            in_flight[future] = rows
            while len(in_flight) >= max_in_flight:
                settle()

        with ThreadPoolExecutor(self.max_concurrency, thread_name_prefix="hubcomm-batch") as pool:
            try:
                for row, write, superseded in spool.records():
                    if superseded:
                        account.skipped["duplicate"] += 1
                        continue
                    self._plan["rows_to_send"] += 1
                    if abort:
                        account.fail(row, write, abort[2])
                        continue
                    chunk.append((row, write))
                    if len(chunk) == batch_size:
                        submit(chunk)
                        chunk = []
                if chunk and not abort:
                    submit(chunk)
                elif chunk:
                    for row, write in chunk:
                        account.fail(row, write, abort[2])
                while in_flight:
                    settle()
            except BaseException:
                for future in in_flight:
                    future.cancel()
                raise
        progress.maybe_log(final=True)
        return abort[0] if abort else None


def _not_sent(reason: Reason) -> Reason:
    return Reason(None, f"not sent: run aborted: {reason.key}")
