"""The batch-write engine behind ``BatchWriteStatusesOperator``: the operator builds it over a hook.

A run makes three passes over the data and holds no per-row state in memory:

1. **Validation pass** (:mod:`~airflow_provider_hubcomm.batch.spool`): every row is read once from the input
   (list, iterable, CSV/JSONL/JSON/Parquet file or object-storage path), validated, and, if valid, spooled
   to a temporary file while a compact index records duplicates. A subscription may be named by its name
   (:mod:`~airflow_provider_hubcomm.batch.preflight`). Nothing is sent before every row was validated: with
   ``on_invalid="fail"`` one bad row stops the run with an error naming row, field, value and allowed
   values; with ``"skip"`` bad rows are counted and listed in the failed-rows file.
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
from typing import TYPE_CHECKING, Any, Literal

from airflow_provider_hubcomm.batch.chunk import BatchSize
from airflow_provider_hubcomm.batch.guard import needs_read
from airflow_provider_hubcomm.batch.header import check_header
from airflow_provider_hubcomm.batch.outputs import JsonLinesSink
from airflow_provider_hubcomm.batch.pipeline import SendPass
from airflow_provider_hubcomm.batch.preflight import NamingValidator, Preflight, check_spool, refusal
from airflow_provider_hubcomm.batch.reasons import Reason, classify_error
from airflow_provider_hubcomm.batch.single import DEFAULT_DAILY_REQUEST_BUDGET
from airflow_provider_hubcomm.batch.spool import Spool, validate_rows
from airflow_provider_hubcomm.batch.summary import Progress, check_thresholds, log_summary, summary_text
from airflow_provider_hubcomm.batch.thresholds import check_ratio_option, check_validation
from airflow_provider_hubcomm.batch.write_account import RunAccount
from airflow_provider_hubcomm.constants import DEFAULT_BATCH_SIZE, DEFAULT_MAX_CONCURRENCY, MAX_BATCH_SIZE
from airflow_provider_hubcomm.exceptions import (
    BatchAbortedError,
    HubCommConfigError,
    HubCommValidationError,
)
from airflow_provider_hubcomm.models import Channel

if TYPE_CHECKING:
    from airflow_provider_hubcomm.contracts import RunMode, RunSummary
    from airflow_provider_hubcomm.hooks._catalog import SubscriptionCatalog
    from airflow_provider_hubcomm.hooks.hubcomm import HubCommHook

__all__ = ["MAX_CONCURRENCY", "BatchAbortedError", "BatchWriteEngine", "int_option", "summary_text"]

log = logging.getLogger(__name__)

#: Upper bound of ``max_concurrency`` (the hook's connection pool holds 64 connections).
MAX_CONCURRENCY = 32
#: Seconds between progress lines (a line is also logged at every 10 % of the rows).
PROGRESS_INTERVAL = 10.0


def int_option(name: str, value: Any, default: int, low: int, high: int) -> int:
    """Return a whole-number option (``default`` when ``None``), or raise naming it and its bounds."""
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
    """Validate, de-duplicate, preflight, guard, chunk and send many status writes; return the run summary.

    :param hook: the hook whose public methods send the requests.
    :param column_map: input column -> API field name (``subscriberIdString``, ``subscriptionId``,
        ``statusState``, ``channel``, ``legalBasis``, ``legalBasisExplanation``).
    :param defaults: API field name -> value for rows that lack it (``subscriptionId`` may be a name).
    :param batch_size: rows per request (default 100, at most 1,000); lowered for the run when HubSpot answers
        that a batch is too large.
    :param max_concurrency: requests in flight at once (default 4, at most 32), in batch and single mode.
    :param on_invalid: ``"fail"`` (raise before sending anything) or ``"skip"`` (count and list bad rows);
        applies to invalid rows and to rows naming an unknown or inactive subscription.
    :param dry_run: validate, preflight and plan only; send no write.
    :param only_changes: read current statuses first and write only rows whose state differs.
    :param allow_resubscribe: allow ``SUBSCRIBED`` rows to re-subscribe contacts who opted out.
    :param failed_rows_path: where to write the failed-rows JSON lines (local path, URL or
        ``ObjectStoragePath``); default: a new file in ``output_dir`` or the temp directory.
    :param output_dir: directory (local or object storage) for generated output files.
    :param max_failed_rows: raise :class:`~airflow_provider_hubcomm.exceptions.HubCommThresholdError` when
        more rows failed.
    :param max_failed_ratio: raise when ``failed / (written + failed)`` is larger (0 to 1).
    :param max_invalid_ratio: raise before any write when ``invalid / rows read`` is larger (0 to 1); a run
        whose every row is invalid always fails (:func:`~.thresholds.check_validation`).
    :param output_name: the run's attempt in generated output file names (:func:`~.outputs.output_name`).
    :param file_format: input file format when the path does not tell (``csv``, ``jsonl``, ``json``,
        ``parquet``).
    :param extra_columns: ``"fail"`` (an unknown input column makes the row invalid) or ``"ignore"``.
    :param progress_interval: seconds between progress log lines.
    :param on_missing_batch_scope: on ``403 MISSING_SCOPES`` from a batch endpoint, ``"single"`` (default:
        go on with single calls) or ``"fail"`` (abort the run).
    :param daily_request_budget: requests the account may spend per day (default 250,000, HubSpot's
        smallest daily limit); the single-call fallback refuses to start when the rest of the run needs more.
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
        max_invalid_ratio: float | None = None,
        output_name: str | None = None,
        file_format: str | None = None,
        extra_columns: Literal["fail", "ignore"] = "fail",
        progress_interval: float = PROGRESS_INTERVAL,
        on_missing_batch_scope: Literal["single", "fail"] = "single",
        daily_request_budget: int | None = None,
    ) -> None:
        if on_invalid not in ("fail", "skip"):
            raise HubCommConfigError(f"on_invalid must be 'fail' or 'skip', got {on_invalid!r}")
        if on_missing_batch_scope not in ("single", "fail"):
            raise HubCommConfigError(
                f"on_missing_batch_scope must be 'single' or 'fail', got {on_missing_batch_scope!r}"
            )
        if max_failed_ratio is not None and not 0.0 <= float(max_failed_ratio) <= 1.0:
            raise HubCommConfigError(f"max_failed_ratio must be between 0 and 1, got {max_failed_ratio!r}")
        self.hook = hook
        self.column_map = column_map
        self.defaults = defaults
        self.batch_size = int_option("batch_size", batch_size, DEFAULT_BATCH_SIZE, 1, MAX_BATCH_SIZE)
        self.max_concurrency = int_option(
            "max_concurrency", max_concurrency, DEFAULT_MAX_CONCURRENCY, 1, MAX_CONCURRENCY
        )
        self.on_invalid = on_invalid
        self.dry_run = bool(dry_run)
        self.only_changes = bool(only_changes)
        self.allow_resubscribe = bool(allow_resubscribe)
        self.failed_rows_path = failed_rows_path
        self.output_dir = output_dir
        self.max_failed_rows = (
            None if max_failed_rows is None else int_option("max_failed_rows", max_failed_rows, 0, 0, 2**63)
        )
        self.max_failed_ratio = None if max_failed_ratio is None else float(max_failed_ratio)
        self.file_format = file_format
        self.extra_columns = extra_columns
        self.progress_interval = progress_interval
        self.max_invalid_ratio = check_ratio_option("max_invalid_ratio", max_invalid_ratio)
        self.output_name = output_name
        self.on_missing_batch_scope = on_missing_batch_scope
        self.daily_request_budget = int_option(
            "daily_request_budget", daily_request_budget, DEFAULT_DAILY_REQUEST_BUDGET, 1, 2**63
        )
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
        from airflow_provider_hubcomm.batch.sources import iter_rows

        started = time.monotonic()
        validator = NamingValidator(self.column_map, self.defaults, self.extra_columns, self.hook.subscription_catalog)
        failed_sink = JsonLinesSink(
            self.failed_rows_path, output_dir=self.output_dir, kind="failed", name=self.output_name
        )
        written_sink = (
            None if self.dry_run else JsonLinesSink(output_dir=self.output_dir, kind="written", name=self.output_name)
        )
        account = RunAccount(failed_sink, written_sink, self.hook.redact)
        skip = self.on_invalid == "skip"
        requests0, retries0 = self._counters()
        size = BatchSize(self.batch_size)
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
            try:
                check_validation(checked, on_invalid=self.on_invalid, max_invalid_ratio=self.max_invalid_ratio)
            except HubCommValidationError:
                failed_sink.discard()  # a refused run leaves no file of e-mail addresses behind
                raise
            assert spool is not None
            aborted = self._send(spool, account, size)
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
            conn_id=self.hook.hubcomm_conn_id,
            channel=Channel.EMAIL.value,
            dry_run=self.dry_run,
            only_changes=self.only_changes,
            allow_resubscribe=self.allow_resubscribe,
            mode=self._mode,
            requests=requests1 - requests0,
            retries=retries1 - retries0,
            duration=duration,
            plan={
                "rows_to_send": self._plan["rows_to_send"],
                "chunks": self._plan["chunks"],
                "batch_size": self.batch_size,
                "max_concurrency": self.max_concurrency,
                "batch_size_used": size.current,
                "batch_size_reduced": size.reduced,
            },
            written_rows_path=written_path,
            failed_rows_path=failed_path,
        )
        log_summary(summary)
        if aborted is not None:
            cause = self.hook.redact(f"{type(aborted).__name__}: {aborted}")
            message = f"Batch run aborted by {cause}\nSummary: {summary_text(summary)}"
            raise BatchAbortedError(message, summary) from aborted
        check_thresholds(summary, self.max_failed_rows, self.max_failed_ratio)
        return summary

    def _counters(self) -> tuple[int, int]:
        counters = self.hook.counters()
        return counters["requests"], counters["retries"]

    # -- preflight and send pass -------------------------------------------------------------------------------

    def _preflight(self, spool: Spool) -> tuple[SubscriptionCatalog | None, Preflight, Reason | None]:
        """Read the catalog and check every row's subscription; raise per ``on_invalid``.

        :return: the catalog (``None`` when a non-fatal error kept it unreadable), the findings, and the reason
            every row fails with when the catalog is unreadable.
        """
        if not self.dry_run:
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
        check = check_spool(
            spool,
            catalog,
            functools.partial(needs_read, guard=not self.allow_resubscribe, only_changes=self.only_changes),
        )
        if catalog is not None and check.problems:
            log.warning(
                "%d rows name unknown or inactive subscriptions: %s",
                check.refused,
                "; ".join(f"{sid}: {m}" for sid, (_, m) in check.problems.items()),
            )
            if self.on_invalid == "fail":
                raise refusal(spool, check, catalog)
        self._plan["rows_to_send"] = check.sendable
        return catalog, check, unreadable

    def _send(self, spool: Spool, account: RunAccount, size: BatchSize) -> BaseException | None:
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
        if self.dry_run or catalog is None:
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
        send = SendPass(
            self.hook,
            account,
            catalog,
            size,
            Progress(account, self.progress_interval),
            max_concurrency=self.max_concurrency,
            only_changes=self.only_changes,
            allow_resubscribe=self.allow_resubscribe,
            on_missing_batch_scope=self.on_missing_batch_scope,
            daily_request_budget=self.daily_request_budget,
            problems=check.problems,
            sendable=check.sendable,
            to_read=check.to_read,
        )
        try:
            return send.run(spool.records())
        finally:
            self._plan["chunks"] = send.chunks
            self._mode = send.mode
