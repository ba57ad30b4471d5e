"""``BatchWriteStatusesOperator``: many subscription statuses from rows, a file or object storage."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

from airflow_provider_hubcomm.exceptions import HubCommConfigError, HubCommError
from airflow_provider_hubcomm.operators._base import HubCommBaseOperator

if TYPE_CHECKING:
    from airflow.sdk import Context

__all__ = ["BatchWriteStatusesOperator", "run_names"]


def run_names(context: Context | dict[str, Any]) -> tuple[str, str, str, int] | None:
    """Return ``(dag_id, task_id, run_id, try_number)`` of the running task, or ``None`` outside a task run.

    A mapped task's id carries its map index (``write.3``), so mapped instances never share output files.

    :param context: the task context.
    """
    ti = context.get("ti")
    dag_id, task_id = getattr(ti, "dag_id", None), getattr(ti, "task_id", None)
    run_id, try_number = getattr(ti, "run_id", None), getattr(ti, "try_number", None)
    if not all(isinstance(v, str) and v for v in (dag_id, task_id, run_id)) or not isinstance(try_number, int):
        return None
    map_index = getattr(ti, "map_index", -1)
    if isinstance(map_index, int) and map_index >= 0:
        task_id = f"{task_id}.{map_index}"
    return str(dag_id), str(task_id), str(run_id), try_number


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
    :param hubcomm_conn_id: the ``hubcomm`` connection to use.
    """

    template_fields: Sequence[str] = (
        "inputs",
        "column_map",
        "defaults",
        "failed_rows_path",
        "output_dir",
        "file_format",
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
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.inputs = inputs
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

    def _engine_options(self, context: Context | dict[str, Any]) -> dict[str, Any]:
        """Return the engine's keyword arguments: the operator's, plus the run's output folder and names."""
        from airflow_provider_hubcomm.batch.outputs import default_output_dir, make_private_dir, output_name
        from airflow_provider_hubcomm.batch.thresholds import check_ratio_option

        if self.on_missing_batch_scope not in ("single", "fail"):
            raise HubCommConfigError(
                f"on_missing_batch_scope must be 'single' or 'fail', got {self.on_missing_batch_scope!r}"
            )
        options: dict[str, Any] = {
            "column_map": self.column_map,
            "defaults": self.defaults,
            "batch_size": self.batch_size,
            "max_concurrency": self.max_concurrency,
            "on_invalid": self.on_invalid,
            "dry_run": self.dry_run,
            "only_changes": self.only_changes,
            "allow_resubscribe": self.allow_resubscribe,
            "failed_rows_path": self.failed_rows_path,
            "output_dir": self.output_dir,
            "max_failed_rows": self.max_failed_rows,
            "max_failed_ratio": self.max_failed_ratio,
            "file_format": self.file_format,
            "extra_columns": self.extra_columns,
            "max_invalid_ratio": check_ratio_option("max_invalid_ratio", self.max_invalid_ratio),
            "on_missing_batch_scope": self.on_missing_batch_scope,
        }
        if self.daily_request_budget is not None:
            options["daily_request_budget"] = self.daily_request_budget
        names = run_names(context)
        if names is not None:
            dag_id, task_id, run_id, try_number = names
            if self.output_dir is None:
                options["output_dir"] = make_private_dir(default_output_dir(dag_id, run_id, task_id))
            options["output_name"] = output_name(dag_id, task_id, run_id, try_number)
        return options

    def execute(self, context: Context) -> dict[str, Any]:
        """Build the batch run over the hook, run it, and return its summary."""
        from airflow_provider_hubcomm.assets import record_outlet_events
        from airflow_provider_hubcomm.batch.engine import BatchWriteEngine

        options = self._engine_options(context)
        self._start(context)
        try:
            summary = BatchWriteEngine(self.hook, **options).run(self.inputs)
        except HubCommError as err:
            partial = getattr(err, "summary", None)
            if partial is not None:
                context["ti"].xcom_push(key="summary", value=partial)
            raise
        finally:
            self.hook.close()
        record_outlet_events(self.outlets, context, summary)
        return summary
