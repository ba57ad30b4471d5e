"""Batch operators: statuses (``BatchWriteStatusesOperator``) and opt-outs from all e-mail, from any input."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from airflow_provider_hubcomm.exceptions import HubCommError
from airflow_provider_hubcomm.operators._base import HubCommBaseOperator, run_names, run_outputs

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_provider_hubcomm.batch.options import BatchWriteOptions, RunOptions, UnsubscribeAllOptions
    from airflow_provider_hubcomm.contracts import OptOutSummary, RunSummary

__all__ = ["BatchUnsubscribeAllOperator", "BatchWriteStatusesOperator", "run_options"]

OptionsT = TypeVar("OptionsT", bound="RunOptions")


def run_options(
    operator: HubCommBaseOperator, options_type: type[OptionsT], context: Context | dict[str, Any]
) -> OptionsT:
    """Validate an operator's (rendered) arguments into its run's options, with the task run's outputs.

    The options' fields are the operator's argument names (``tests/batch/test_options.py`` holds both lists
    equal), so a bad value is reported under the argument the user passed, before any request.

    :param operator: the batch operator.
    :param options_type: :class:`~airflow_provider_hubcomm.batch.options.BatchWriteOptions` or
        :class:`~airflow_provider_hubcomm.batch.options.UnsubscribeAllOptions`.
    :param context: the task context (for the per-run output folder and file names).
    """
    from airflow_provider_hubcomm.batch.options import NOT_ARGUMENTS

    fields = (name for name in options_type.model_fields if name not in NOT_ARGUMENTS)
    options = options_type.model_validate({name: getattr(operator, name) for name in fields})
    return options.for_task_run(*run_outputs(context, options.output_dir))


class BatchWriteStatusesOperator(HubCommBaseOperator):
    """Write many subscription statuses from rows, a file or object storage, with per-row accounting.

    Input rows use HubSpot's field names (``subscriberIdString``, ``subscriptionId``, ``statusState``,
    ``channel``, ``legalBasis``, ``legalBasisExplanation``) unless ``column_map`` renames them; enum values
    are case-insensitive. The input is streamed, never loaded whole: a list of dicts (also from an upstream
    task's XCom), an iterable, a CSV/JSONL/JSON/Parquet path (optionally ``.gz``), a URL or an
    ``ObjectStoragePath``.

    How a run goes (see :mod:`airflow_provider_hubcomm.batch.engine`):

    * every row is validated before the first request. ``on_invalid="fail"`` raises
      :class:`~airflow_provider_hubcomm.exceptions.HubCommValidationError` naming the first bad rows (row,
      field, value, allowed values) and sends nothing; ``"skip"`` counts them (``skipped_by_reason.invalid``)
      and lists them in the failed-rows file with ``"outcome": "skipped"``;
    * rows for the same subscriber and subscription: the last one wins, earlier ones are skipped
      (``duplicate``);
    * chunks of ``batch_size`` rows are sent concurrently (``max_concurrency``) through the hook's rate
      limiter and retry policy; progress (rows done/total, rows/s, ETA) is logged every 10 s or 10 %;
    * every row ends ``written``, ``failed`` (with HubSpot's reason) or ``skipped``; a 400/5xx/no-answer
      chunk fails only its rows; 401/403 or the daily rate limit abort the run (remaining rows "not sent").

    **Re-subscribe guardrail.** Unless ``allow_resubscribe=True``, chunks with ``SUBSCRIBED`` rows first read
    the current statuses and skip rows that would re-subscribe a contact HubSpot has ``UNSUBSCRIBED``
    (``resubscribe_not_allowed``, listed in the failed-rows file): stale warehouse data must not re-subscribe
    people who opted out in HubSpot.

    Returns the run summary (``docs/dev/CONTRACTS.md``): counts by outcome and reason, requests, retries,
    batch operations, ``failed_rows_path`` and ``written_rows_path`` (JSON lines; inline ``written_rows`` up
    to 1,000). When the run aborts or exceeds a threshold the task fails and the summary is pushed under the
    XCom key ``summary``.

    **Output files hold e-mail addresses.** The failed-rows and written-rows files list subscribers' e-mail
    addresses: treat them as personal data. They go to ``output_dir`` (use shared storage such as
    ``s3://…`` when a downstream task on another worker reads them), by default to a folder of this task
    run on the worker, ``<tempdir>/hubcomm/<dag_id>/<run_id>/<task_id>/``, created readable by its owner
    only (``0700``); delete it when the run's outputs are no longer needed. Generated names tell the try,
    ``hubcomm-failed-<dag_id>-<task_id>-<run_id>-try<N>-<time>.jsonl``, and a local file is written as
    ``….partial`` and renamed when complete: the outputs of a killed attempt are never mistaken for a
    finished attempt's.

    **Config typos and dirty data fail, before anything is sent.** A ``column_map`` key that names no input
    column fails (for files at the header, otherwise after the validation pass); a run whose rows are all
    invalid fails even with ``on_invalid="skip"``; ``max_invalid_ratio`` bounds the share of invalid rows.

    Retrying the task is safe: writes set states, so a rerun converges (already written rows answer
    ``NO_STATUS_CHANGE``).

    **Incremental sync.** With ``state_path`` the run keeps, per subscriber and subscription, what HubSpot
    confirmed last, and sends only rows that are new, changed, or failed or not confirmed last time; the others
    are skipped as ``unchanged`` and cost no request. The state advances in checkpoints while the run confirms
    rows, so a killed task's retry sends only what it had not confirmed. Rows sent still pass the re-subscribe
    guard. Changes made in HubSpot behind the sync are not overwritten until the warehouse row changes;
    ``full_resync=True`` sends every row once and rebuilds the state (see ``docs/operators.md``).

    **Partitions.** ``partitions=n`` with ``partition=i`` makes this task handle the rows whose subscriber hashes
    to partition ``i`` (:func:`airflow_provider_hubcomm.sync.partition_of`); the others are counted in the
    summary's ``partition`` block and belong to the other mapped tasks. With ``state_path`` each partition keeps
    its state in its own sub-folder (``partition-0003-of-0016``)::

        BatchWriteStatusesOperator.partial(task_id="sync", inputs=extract, state_path=state, partitions=8).expand(
            partition=list(range(8))
        )

    :param inputs: the rows (templated; an ``XComArg`` works).
    :param column_map: input column -> API field name (templated).
    :param defaults: API field name -> value for rows without it, e.g. ``{"legalBasis": ...}`` (templated).
    :param batch_size: rows per request (default 100; HubSpot's batch endpoints take at most 1,000, but
        smaller chunks fail fewer rows when one is refused and keep retries cheap).
    :param max_concurrency: requests in flight at once (default 4).
    :param on_invalid: ``"fail"`` or ``"skip"`` (see above).
    :param dry_run: validate and report what would be sent (rows, requests); send nothing.
    :param only_changes: per chunk, read current statuses and write only rows whose state differs
        (``unchanged`` rows are skipped).
    :param failed_rows_path: where to write the failed rows as JSON lines: local path, URL or
        ``ObjectStoragePath`` (templated). Default: a new file in ``output_dir``, created only if needed.
    :param max_failed_rows: fail the task when more rows failed (after all writes).
    :param max_failed_ratio: fail the task when ``failed / (written + failed)`` is larger (0 to 1).
    :param max_invalid_ratio: fail the task, before any write, when ``invalid / rows read`` is larger
        (0 to 1; ``None``: no bound; with ``on_invalid="skip"``). A run whose every row is invalid always
        fails.
    :param on_missing_batch_scope: when the app lacks the batch scopes: ``"single"`` (default) writes the
        rows one request each, ``"fail"`` fails the task before any write.
    :param daily_request_budget: the most requests this run may send (HubSpot counts requests against the
        account's daily limit); ``None``: no bound of its own.
    :param allow_resubscribe: allow re-subscribing contacts who are ``UNSUBSCRIBED`` (see above).
    :param output_dir: directory (local path or URL) for generated output files (templated).
    :param file_format: input format when the path does not tell: ``csv``, ``jsonl``, ``json``, ``parquet``
        (templated).
    :param extra_columns: ``"fail"`` (an unknown column makes the row invalid) or ``"ignore"``.
    :param state_path: folder of the sync state: local path, URL or ``ObjectStoragePath`` (templated);
        ``None``: every row is sent.
    :param full_resync: with ``state_path``: ignore the state for this run, send every row and rebuild it.
    :param partitions: split the input into this many partitions by a stable hash of the subscriber, one
        mapped task each (templated; 1 to 4,096; see "Partitions" above); ``None``: no partitioning.
    :param partition: with ``partitions``: the partition this task handles, 0 to ``partitions - 1``
        (templated; usually the mapped argument: ``.expand(partition=list(range(n)))``).
    :param sync_log: with ``state_path``: write the run's sync log (one Parquet row per input row: what was sent,
        its outcome and reason) under ``<state_path>/log/date=<day>/`` (default ``True``; not in a dry run).
    :param hubcomm_conn_id: the ``hubcomm`` connection to use.
    """

    template_fields: Sequence[str] = (
        "inputs",
        "column_map",
        "defaults",
        "failed_rows_path",
        "output_dir",
        "file_format",
        "state_path",
        "partitions",
        "partition",
    )
    template_fields_renderers = {"inputs": "json", "column_map": "json", "defaults": "json"}

    def __init__(
        self,
        *,
        inputs: Any,
        column_map: dict[str, str] | None = None,
        defaults: dict[str, Any] | None = None,
        batch_size: int | None = None,
        max_concurrency: int | None = None,
        on_invalid: Literal["fail", "skip"] = "fail",
        dry_run: bool = False,
        only_changes: bool = False,
        failed_rows_path: Any = None,
        max_failed_rows: int | None = None,
        max_failed_ratio: float | None = None,
        allow_resubscribe: bool = False,
        output_dir: Any = None,
        file_format: str | None = None,
        extra_columns: Literal["fail", "ignore"] = "fail",
        max_invalid_ratio: float | None = None,
        on_missing_batch_scope: Literal["single", "fail"] = "single",
        daily_request_budget: int | None = None,
        state_path: Any = None,
        full_resync: bool = False,
        partitions: int | None = None,
        partition: int | None = None,
        sync_log: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.inputs = self._inputs_xcom = inputs
        self.state_path = state_path
        self.full_resync = full_resync
        self.partitions = partitions
        self.partition = partition
        self.sync_log = sync_log
        self.column_map = column_map
        self.defaults = defaults
        self.batch_size = batch_size
        self.max_concurrency = max_concurrency
        self.on_invalid = on_invalid
        self.dry_run = dry_run
        self.only_changes = only_changes
        self.failed_rows_path = failed_rows_path
        self.max_failed_rows = max_failed_rows
        self.max_failed_ratio = max_failed_ratio
        self.allow_resubscribe = allow_resubscribe
        self.output_dir = output_dir
        self.file_format = file_format
        self.extra_columns = extra_columns
        self.max_invalid_ratio = max_invalid_ratio
        self.on_missing_batch_scope = on_missing_batch_scope
        self.daily_request_budget = daily_request_budget

    def _options(self, context: Context | dict[str, Any]) -> BatchWriteOptions:
        """Validate the (rendered) arguments into the run's options, plus the task run's output folder and names."""
        from airflow_provider_hubcomm.batch.options import BatchWriteOptions

        options = run_options(self, BatchWriteOptions, context)
        return options.model_copy(update={"task_run": run_names(context)})

    def execute(self, context: Context) -> RunSummary:
        """Build the batch run over the hook, run it, and return its summary."""
        from airflow_provider_hubcomm.assets import record_outlet_events
        from airflow_provider_hubcomm.batch.engine import BatchWriteEngine

        options = self._options(context)
        self._start(context)
        try:
            summary = BatchWriteEngine(self.hook, options).run(self.inputs)
        except HubCommError as err:
            partial = getattr(err, "summary", None)
            if partial is not None:
                context["ti"].xcom_push(key="summary", value=partial)
            raise
        finally:
            self.hook.close()
        self._lineage_summary = summary
        record_outlet_events(self.outlets, context, summary)
        return summary


class BatchUnsubscribeAllOperator(HubCommBaseOperator):
    """Opt many contacts out of all e-mail of a brand: a GDPR erasure or suppression list from a warehouse extract.

    The input is any input ``BatchWriteStatusesOperator`` takes (XCom rows, CSV/JSONL/JSON/Parquet files,
    ``ObjectStoragePath``); each row's ``subscriber_column`` holds the e-mail address, other columns are
    ignored. Every row is checked before the first request (``on_invalid``, ``max_invalid_ratio``; a
    ``subscriber_column`` no row has fails), duplicates (case-insensitive) are skipped, and the addresses go out
    in chunks through ``POST /communication-preferences/{api_version}/statuses/batch/unsubscribe-all`` for
    ``business_unit_id``, concurrently, rate-limited and retried. Per-row accounting, thresholds, the
    failed-rows file, dry run, "too large" halving, ``PENDING`` answers counted ``unconfirmed`` and the
    single-call fallback on ``403 MISSING_SCOPES`` (within the daily request budget) work as for batch writes
    (:mod:`airflow_provider_hubcomm.batch.optout`). ``BatchStatusSensor`` verifies the result by reading the
    opt-out-of-all statuses back (``batch/unsubscribe-all/read``).

    .. code-block:: python

        erase = BatchUnsubscribeAllOperator(task_id="erase", inputs=extract_erasure_requests(), business_unit_id=0)
        BatchStatusSensor(task_id="prove", batch=erase.output, verify="all")

    :param inputs: the rows (templated; an ``XComArg`` works).
    :param subscriber_column: the column holding the e-mail address (templated).
    :param business_unit_id: the brand to opt out of; ``None``: the connection's ``business_unit_id``, else the
        account's default brand ``0`` (templated).
    :param verbose: ask HubSpot to list every status it changed (bigger answers; nothing more is stored).
    :param batch_size: subscribers per request (default 100).
    :param max_concurrency: requests in flight at once (default 4).
    :param on_invalid: ``"fail"`` (nothing is sent when a row is invalid) or ``"skip"``.
    :param max_invalid_ratio: fail before any request when ``invalid / rows read`` is larger (0 to 1).
    :param dry_run: check and report what would be sent; send nothing.
    :param failed_rows_path: where to write the failed and invalid rows as JSON lines (templated).
    :param output_dir: directory for generated output files (templated); default: a private per-run folder.
        The files hold e-mail addresses: treat them as personal data.
    :param max_failed_rows: fail the task when more rows failed.
    :param max_failed_ratio: fail the task when ``failed / (written + failed)`` is larger (0 to 1).
    :param on_missing_batch_scope: ``"single"`` (default: one request per row) or ``"fail"``.
    :param daily_request_budget: requests the single-call fallback may use (default 250,000).
    :param file_format: input format when the path does not tell (templated).
    :param hubcomm_conn_id: the ``hubcomm`` connection to use.
    """

    template_fields: Sequence[str] = (
        "inputs",
        "subscriber_column",
        "business_unit_id",
        "failed_rows_path",
        "output_dir",
        "file_format",
    )
    template_fields_renderers = {"inputs": "json"}

    def __init__(
        self,
        *,
        inputs: Any,
        subscriber_column: str = "subscriberIdString",
        business_unit_id: int | str | None = None,
        verbose: bool = False,
        batch_size: int | None = None,
        max_concurrency: int | None = None,
        on_invalid: Literal["fail", "skip"] = "fail",
        max_invalid_ratio: float | None = None,
        dry_run: bool = False,
        failed_rows_path: Any = None,
        output_dir: Any = None,
        max_failed_rows: int | None = None,
        max_failed_ratio: float | None = None,
        on_missing_batch_scope: Literal["single", "fail"] = "single",
        daily_request_budget: int | None = None,
        file_format: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.inputs = self._inputs_xcom = inputs
        self.subscriber_column = subscriber_column
        self.business_unit_id = business_unit_id
        self.verbose = verbose
        self.batch_size = batch_size
        self.max_concurrency = max_concurrency
        self.on_invalid = on_invalid
        self.max_invalid_ratio = max_invalid_ratio
        self.dry_run = dry_run
        self.failed_rows_path = failed_rows_path
        self.output_dir = output_dir
        self.max_failed_rows = max_failed_rows
        self.max_failed_ratio = max_failed_ratio
        self.on_missing_batch_scope = on_missing_batch_scope
        self.daily_request_budget = daily_request_budget
        self.file_format = file_format

    def _options(self, context: Context | dict[str, Any]) -> UnsubscribeAllOptions:
        """Validate the (rendered) arguments into the run's options, plus the task run's output folder and names."""
        from airflow_provider_hubcomm.batch.options import UnsubscribeAllOptions

        return run_options(self, UnsubscribeAllOptions, context)

    def execute(self, context: Context) -> OptOutSummary:
        """Check every row, send the opt-outs, and return the run summary (pushed as ``summary`` on failure)."""
        from airflow_provider_hubcomm.assets import record_outlet_events
        from airflow_provider_hubcomm.batch.optout import BatchUnsubscribeAllRun
        from airflow_provider_hubcomm.batch.optout_account import OptOutAccount
        from airflow_provider_hubcomm.batch.outputs import JsonLinesSink
        from airflow_provider_hubcomm.batch.sources import iter_rows
        from airflow_provider_hubcomm.batch.summary import check_thresholds, log_summary

        options = self._options(context)
        self._start(context)
        unit = options.business_unit_id
        if unit is None:  # the connection's brand, else the account's default brand
            unit = self.hook.config.business_unit_id or 0
            options = options.model_copy(update={"business_unit_id": unit})
        output_dir, name = options.output_dir, options.output_name
        failed = JsonLinesSink(options.failed_rows_path, output_dir=output_dir, kind="failed", name=name)
        written = None if options.dry_run else JsonLinesSink(output_dir=output_dir, kind="written", name=name)
        account = OptOutAccount(self.hook, failed, written, unit)
        run = BatchUnsubscribeAllRun(self.hook, (failed, written), options)
        summary: OptOutSummary | None = None
        try:
            summary = run.run(iter_rows(self.inputs, file_format=options.file_format), account)
        except HubCommError as err:
            summary = getattr(err, "summary", None)
            if summary is None:
                failed.discard()
            raise
        finally:
            failed_path, written_path = failed.close(), written.close() if written else None
            if summary is not None:
                summary.update({"failed_rows_path": failed_path, "written_rows_path": written_path})
                log_summary(summary)
                if summary.get("aborted_by"):
                    context["ti"].xcom_push(key="summary", value=summary)
            self.hook.close()
        try:
            check_thresholds(summary, options.max_failed_rows, options.max_failed_ratio)
        except HubCommError:
            context["ti"].xcom_push(key="summary", value=summary)
            raise
        self._lineage_summary = summary
        record_outlet_events(self.outlets, context, summary)
        return summary
