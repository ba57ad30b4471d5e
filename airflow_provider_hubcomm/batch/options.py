"""The options of a batch run, validated once: :class:`BatchWriteOptions` and :class:`UnsubscribeAllOptions`.

The batch operators build them in ``execute()`` from their rendered arguments, before any request; the engine,
the send pass, the guard and the opt-out run read their typed attributes. Field names are the operators'
argument names, so an error names the argument the user passed; ``None`` for a numeric option means its
default, as the operators document. A bad value raises
:class:`~airflow_provider_hubcomm.exceptions.HubCommConfigError` listing every bad argument, its value and what
is allowed, in the words of :func:`~airflow_provider_hubcomm.rules.arguments_message`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Final, Literal, Self

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    field_validator,
    model_validator,
)

from airflow_provider_hubcomm.batch.single import DEFAULT_DAILY_REQUEST_BUDGET
from airflow_provider_hubcomm.constants import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_MAX_CONCURRENCY,
    INT64_MAX,
    MAX_BATCH_SIZE,
    MAX_CONCURRENCY,
)
from airflow_provider_hubcomm.exceptions import HubCommConfigError
from airflow_provider_hubcomm.rules import (
    SUBSCRIBER_ID_STRING,
    Invalid,
    Problem,
    argument_problem,
    arguments_message,
    check_business_unit_id,
    whole_number,
)
from airflow_provider_hubcomm.sync.partition import MAX_PARTITIONS

if TYPE_CHECKING:
    from pydantic_core import ErrorDetails

__all__ = ["NOT_ARGUMENTS", "PROGRESS_INTERVAL", "BatchWriteOptions", "RunOptions", "UnsubscribeAllOptions"]

#: The fields that are not an operator argument (the operator or the engine sets them).
NOT_ARGUMENTS: Final = frozenset({"output_name", "progress_interval", "task_run"})
#: Seconds between progress lines of a batch write (a line is also logged at every 10 % of the rows).
PROGRESS_INTERVAL = 10.0


def _whole(low: int, high: int, default: int | None = None) -> BeforeValidator:
    """Accept a whole number between ``low`` and ``high``; ``None`` means ``default``."""

    def check(value: Any) -> int | None:
        return default if value is None else whole_number(value, low, high)

    return BeforeValidator(check)


def _ratio(value: Any) -> float | None:
    if value is None:
        return None
    problem = Problem("must be a number between 0 and 1 (or None)")
    if isinstance(value, bool):
        raise Invalid(problem)
    try:
        ratio = float(value)
    except (TypeError, ValueError):
        raise Invalid(problem) from None
    if not 0.0 <= ratio <= 1.0:
        raise Invalid(problem)
    return ratio


def _column_name(value: Any) -> str:
    if isinstance(value, str) and value:
        return value
    raise Invalid(Problem("must be a column name (a non-empty string)"))


Ratio = Annotated[float | None, BeforeValidator(_ratio)]


def _in_the_users_words(error: ErrorDetails) -> dict[str, Any]:
    """One pydantic error as a bad argument: its name, its value and what is allowed."""
    name = ".".join(str(part) for part in error["loc"]) or "options"
    ctx = error.get("ctx") or {}
    kind = error["type"]
    if kind == "value_error" and isinstance(ctx.get("error"), Invalid):
        detail = ctx["error"].problem.message
    elif kind == "literal_error":
        detail = f"must be {ctx['expected']}"
    elif kind.startswith("bool_"):
        detail = "must be True or False"
    elif kind == "extra_forbidden":
        detail = "is not an option of a batch run"
    else:  # pydantic's words: "Input should be a valid dictionary" -> "must be a valid dictionary"
        detail = error["msg"].replace("Input should be", "must be", 1)
    return argument_problem(name, error["input"], detail)


class RunOptions(BaseModel):
    """What every batch run is told (status writes and opt-outs from all e-mail), validated once.

    Build it from raw (rendered) arguments with ``model_validate({...})`` (the operators use
    :func:`~airflow_provider_hubcomm.operators.batch.run_options`), or with keywords. Frozen: a run never changes
    its options; :meth:`for_task_run` returns a copy with the task run's outputs.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)

    batch_size: Annotated[int, _whole(1, MAX_BATCH_SIZE, DEFAULT_BATCH_SIZE)] = DEFAULT_BATCH_SIZE
    """Rows per request, 1 to 1,000 (``None``: 100); lowered for the run when HubSpot answers that a batch is
    too large."""
    max_concurrency: Annotated[int, _whole(1, MAX_CONCURRENCY, DEFAULT_MAX_CONCURRENCY)] = DEFAULT_MAX_CONCURRENCY
    """Requests in flight at once, 1 to 32 (``None``: 4), in batch and single mode."""
    on_invalid: Literal["fail", "skip"] = "fail"
    """``"fail"``: raise before sending anything when a row is invalid (or names an unknown or inactive
    subscription); ``"skip"``: count and list such rows, send the others."""
    max_invalid_ratio: Ratio = None
    """Fail before any write when ``invalid / rows read`` is larger (0 to 1; ``None``: no bound)."""
    dry_run: bool = False
    """Validate, preflight and plan only; send no write."""
    failed_rows_path: Any = None
    """Where to write the failed rows as JSON lines (local path, URL or ``ObjectStoragePath``); ``None``: a new
    file in :attr:`output_dir`, created only if needed."""
    output_dir: Any = None
    """Directory (local or object storage) for generated output files; ``None``: the temporary directory."""
    output_name: str | None = None
    """The task run's attempt in generated output file names (:func:`~.outputs.output_name`); set by the
    operator, not an operator argument."""
    file_format: str | None = None
    """Input file format when the path does not tell: ``csv``, ``jsonl``, ``json``, ``parquet``."""
    max_failed_rows: Annotated[int | None, _whole(0, INT64_MAX)] = None
    """Fail the task when more rows failed (after all writes); ``None``: no bound."""
    max_failed_ratio: Ratio = None
    """Fail the task when ``failed / (written + failed)`` is larger (0 to 1; ``None``: no bound)."""
    on_missing_batch_scope: Literal["single", "fail"] = "single"
    """On ``403 MISSING_SCOPES`` from a batch endpoint: ``"single"`` goes on with single calls, ``"fail"``
    aborts the run."""
    daily_request_budget: Annotated[int, _whole(1, INT64_MAX, DEFAULT_DAILY_REQUEST_BUDGET)] = (
        DEFAULT_DAILY_REQUEST_BUDGET
    )
    """Requests the account may spend per day (``None``: 250,000, HubSpot's smallest daily limit); the
    single-call fallback refuses to start when the rest of the run needs more."""

    @model_validator(mode="wrap")
    @classmethod
    def _arguments_error(cls, values: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        """Turn pydantic's errors into one :class:`HubCommConfigError` naming every bad argument."""
        try:
            return handler(values)
        except ValidationError as err:
            raise HubCommConfigError(arguments_message([_in_the_users_words(e) for e in err.errors()])) from None

    def for_task_run(self, output_dir: Any, output_name: str | None) -> Self:
        """Return a copy with the task run's output folder and file-name stem (``run_outputs``).

        :param output_dir: the folder generated files go to.
        :param output_name: the attempt's part of generated file names.
        """
        return self.model_copy(update={"output_dir": output_dir, "output_name": output_name})


class BatchWriteOptions(RunOptions):
    """The options of a status write (``BatchWriteStatusesOperator``, :class:`~.engine.BatchWriteEngine`)."""

    column_map: dict[str, Any] | None = None
    """Input column -> API field name (``subscriberIdString``, ``subscriptionId``, ``statusState``, ``channel``,
    ``legalBasis``, ``legalBasisExplanation``); checked by :class:`~.rows.RowValidator`."""
    defaults: dict[str, Any] | None = None
    """API field name -> value for rows that lack it (``subscriptionId`` may be a subscription's name)."""
    only_changes: bool = False
    """Read current statuses first and write only rows whose state differs."""
    allow_resubscribe: bool = False
    """Allow ``SUBSCRIBED`` rows to re-subscribe contacts who opted out (else the guard reads first)."""
    extra_columns: Literal["fail", "ignore"] = "fail"
    """``"fail"``: an unknown input column makes the row invalid; ``"ignore"``: drop it."""
    state_path: Any = None
    """Folder of the sync state (local path, URL or ``ObjectStoragePath``): send only rows that are new, changed,
    or failed or not confirmed last time (:mod:`~airflow_provider_hubcomm.sync`); ``None``: send every row."""
    full_resync: bool = False
    """With ``state_path``: ignore the state for this run (send every row) and rebuild it."""

    partitions: Annotated[int | None, _whole(1, MAX_PARTITIONS)] = None
    """Split the input into this many partitions by a stable hash of the subscriber (one mapped task each,
    :mod:`~airflow_provider_hubcomm.sync.partition`); ``None``: no partitioning."""
    partition: Annotated[int | None, _whole(0, MAX_PARTITIONS - 1), Field(validate_default=True)] = None
    """With ``partitions``: the partition this run handles (0 to ``partitions - 1``); rows of the others are
    counted, not handled."""

    @field_validator("partition")
    @classmethod
    def _partition_of_partitions(cls, value: int | None, info: ValidationInfo) -> int | None:
        """``partitions`` and ``partition`` come together, and ``partition`` is one of the ``partitions``."""
        if "partitions" not in info.data:  # partitions itself is invalid: that error says enough
            return value
        count = info.data["partitions"]
        if count is None and value is not None:
            raise Invalid(Problem("needs partitions (how many partitions there are)"))
        if count is not None and value is None:
            raise Invalid(Problem(f"must be given with partitions={count}: a whole number between 0 and {count - 1}"))
        if count is not None and value is not None and value >= count:
            raise Invalid(Problem(f"must be a whole number between 0 and {count - 1} (partitions={count})"))
        return value

    @field_validator("full_resync")
    @classmethod
    def _resync_needs_a_state(cls, value: bool, info: ValidationInfo) -> bool:
        """``full_resync=True`` rebuilds a state: without ``state_path`` it is a mistake, not a no-op."""
        if value and info.data.get("state_path") is None:
            raise Invalid(Problem("needs a state_path (full_resync rebuilds the sync state)"))
        return value

    progress_interval: Annotated[float, BeforeValidator(lambda v: PROGRESS_INTERVAL if v is None else v)] = (
        PROGRESS_INTERVAL
    )
    """Seconds between progress log lines (not an operator argument)."""
    sync_log: bool = True
    """With ``state_path``: write the run's sync log, one Parquet row per input row, under ``<state_path>/log/``
    (:mod:`~airflow_provider_hubcomm.sync.log`); a dry run writes none."""
    task_run: tuple[str, str, str, int] | None = None
    """``(dag_id, task_id, run_id, try_number)`` of the task run, for the sync log (set by the operator, not an
    operator argument)."""


class UnsubscribeAllOptions(RunOptions):
    """The options of an opt-out from all e-mail (``BatchUnsubscribeAllOperator``, ``BatchUnsubscribeAllRun``)."""

    subscriber_column: Annotated[str, BeforeValidator(_column_name)] = SUBSCRIBER_ID_STRING
    """The input column holding the e-mail address; other columns are ignored."""
    business_unit_id: Annotated[int | None, BeforeValidator(check_business_unit_id)] = None
    """The brand to opt out of (``None``: the hook decides; the operator passes its resolved brand)."""
    verbose: bool = False
    """Ask HubSpot to list every status it changed (bigger answers; nothing more is stored)."""
