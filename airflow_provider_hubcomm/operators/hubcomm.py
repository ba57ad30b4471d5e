"""Operators that write HubSpot communication preferences: one status, unsubscribe-all, and batches."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any, Literal

from airflow.providers.common.compat.sdk import BaseOperator

from airflow_provider_hubcomm.constants import DEFAULT_CONN_ID
from airflow_provider_hubcomm.exceptions import HubCommError, HubCommValidationError
from airflow_provider_hubcomm.operators._arguments import check_subscriber, validation_error

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_provider_hubcomm.hooks.hubcomm import HubCommHook
    from airflow_provider_hubcomm.models import Channel, StatusUpdate

__all__ = [
    "BatchWriteStatusesOperator",
    "HubCommBaseOperator",
    "SetStatusOperator",
    "UnsubscribeAllOperator",
]


class HubCommBaseOperator(BaseOperator):
    """Base of the HubComm operators: the connection id and a lazily built hook.

    ``__init__`` only stores arguments; the hook (and the connection lookup) is created on first use in
    ``execute``. Tests may assign a pre-built hook: ``op.hook = HubCommHook(transport=...)``.

    :param hubcomm_conn_id: the ``hubcomm`` connection to use.
    :param requests_per_10s: the account's rate budget, overriding the connection's ``requests_per_10s``.
    :param rate_limit_share: the fraction of the budget this task may use (``0.25`` when four mapped tasks
        run at once against the same HubSpot app: each task process has its own rate limiter).
    """

    ui_color = "#ff7a59"

    def __init__(
        self,
        *,
        hubcomm_conn_id: str = DEFAULT_CONN_ID,
        requests_per_10s: int | None = None,
        rate_limit_share: float | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.hubcomm_conn_id = hubcomm_conn_id
        self.requests_per_10s = requests_per_10s
        self.rate_limit_share = rate_limit_share

    @cached_property
    def hook(self) -> HubCommHook:
        """The hook for :attr:`hubcomm_conn_id` (imported here: DAG files that import this stay light)."""
        from airflow_provider_hubcomm.hooks.hubcomm import HubCommHook

        return HubCommHook(
            hubcomm_conn_id=self.hubcomm_conn_id,
            requests_per_10s=self.requests_per_10s,
            rate_limit_share=self.rate_limit_share,
        )


class SetStatusOperator(HubCommBaseOperator):
    """Set one subscription status of one contact (``POST /communication-preferences/2026-03/statuses/{id}``).

    Arguments are validated before any request (case-insensitive enums; the message names the field, the
    value and the allowed values). Returns HubSpot's answer as JSON: ``results`` holds the status written,
    with ``setStatusSuccessReason`` (``REQUESTED_CHANGE_OCCURRED``, ``NO_STATUS_CHANGE``, …).

    **Re-subscribe guardrail.** Setting ``SUBSCRIBED`` on a subscription the contact is ``UNSUBSCRIBED`` from
    re-subscribes someone who opted out; HubSpot allows it, the law and the contact usually do not (stale
    warehouse data is the common cause). Unless ``allow_resubscribe=True``, a ``SUBSCRIBED`` write first
    reads the contact's statuses and fails, sending nothing, if it would re-subscribe.

    Retrying the task is safe: the write sets a state, so repeating it changes nothing (``NO_STATUS_CHANGE``).

    .. code-block:: python

        SetStatusOperator(
            task_id="opt_out",
            subscriber_id="{{ params.email }}",
            subscription_id=101,
            status="UNSUBSCRIBED",
            legal_basis="LEGITIMATE_INTEREST_CLIENT",
            legal_basis_explanation="Customer asked support to stop newsletters",
        )

    :param subscriber_id: the contact's e-mail address (templated).
    :param subscription_id: the subscription id (templated).
    :param status: ``SUBSCRIBED``, ``UNSUBSCRIBED`` or ``NOT_SPECIFIED``, any case (templated).
    :param legal_basis: GDPR legal basis, given together with ``legal_basis_explanation`` (templated).
    :param legal_basis_explanation: free-text explanation of the legal basis (templated).
    :param channel: the channel; HubSpot supports only ``EMAIL`` (templated).
    :param allow_resubscribe: allow re-subscribing a contact who is ``UNSUBSCRIBED`` (see above).
    :param hubcomm_conn_id: the ``hubcomm`` connection to use.
    """

    template_fields: Sequence[str] = (
        "subscriber_id",
        "subscription_id",
        "status",
        "legal_basis",
        "legal_basis_explanation",
        "channel",
    )

    def __init__(
        self,
        *,
        subscriber_id: str,
        subscription_id: int | str,
        status: str,
        legal_basis: str | None = None,
        legal_basis_explanation: str | None = None,
        channel: str = "EMAIL",
        allow_resubscribe: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.subscriber_id = subscriber_id
        self.subscription_id = subscription_id
        self.status = status
        self.legal_basis = legal_basis
        self.legal_basis_explanation = legal_basis_explanation
        self.channel = channel
        self.allow_resubscribe = allow_resubscribe

    def _update(self) -> tuple[str, StatusUpdate]:
        from pydantic import ValidationError

        from airflow_provider_hubcomm.models import StatusUpdate, StatusWrite

        subscriber = check_subscriber(self.subscriber_id)
        try:
            write = StatusWrite.model_validate(
                {
                    "subscriberIdString": subscriber,
                    "subscriptionId": self.subscription_id,
                    "statusState": self.status,
                    "channel": self.channel,
                    "legalBasis": self.legal_basis or None,
                    "legalBasisExplanation": self.legal_basis_explanation or None,
                }
            )
        except ValidationError as err:
            raise validation_error(err) from None
        return subscriber, StatusUpdate.model_validate(write.model_dump(exclude={"subscriber_id_string"}))

    def execute(self, context: Context) -> dict[str, Any]:
        """Validate, check the re-subscribe guardrail, write the status; return HubSpot's answer."""
        subscriber, update = self._update()
        try:
            answer = self.hook.set_status(subscriber, update, allow_resubscribe=self.allow_resubscribe)
        finally:
            self.hook.close()
        reasons = sorted({s.set_status_success_reason or "n/a" for s in answer.results})
        self.log.info(
            "Set %s on subscription %d for %s: %s.",
            update.status_state.value,
            update.subscription_id,
            subscriber,
            ", ".join(reasons),
        )
        return answer.model_dump(mode="json", by_alias=True, exclude_none=True)


class UnsubscribeAllOperator(HubCommBaseOperator):
    """Unsubscribe one contact from all e-mail (``POST …/{api_version}/statuses/{id}/unsubscribe-all``).

    Returns HubSpot's answer as JSON; with ``verbose=True`` its ``results`` list every status that changed
    (``setStatusSuccessReason: UNSUBSCRIBE_FROM_ALL_OCCURRED``), otherwise they are empty. Idempotent:
    retrying the task is safe.

    :param subscriber_id: the contact's e-mail address (templated).
    :param channel: the channel; HubSpot supports only ``EMAIL`` (templated).
    :param business_unit_id: the brand to opt out of; required by HubSpot with the Brands add-on (templated).
    :param verbose: ask HubSpot to list every status it changed.
    :param hubcomm_conn_id: the ``hubcomm`` connection to use.
    """

    template_fields: Sequence[str] = ("subscriber_id", "channel", "business_unit_id")

    def __init__(
        self,
        *,
        subscriber_id: str,
        channel: str = "EMAIL",
        business_unit_id: int | str | None = None,
        verbose: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.subscriber_id = subscriber_id
        self.channel = channel
        self.business_unit_id = business_unit_id
        self.verbose = verbose

    def _arguments(self) -> tuple[str, Channel, int | None]:
        from airflow_provider_hubcomm.models import Channel

        subscriber = check_subscriber(self.subscriber_id)
        problems: list[dict[str, Any]] = []
        try:
            channel = Channel(str(self.channel).strip().upper())
        except ValueError:
            channel = Channel.EMAIL
            problems.append({"field": "channel", "value": self.channel, "allowed": [c.value for c in Channel]})
        unit: int | None = None
        if self.business_unit_id is not None and self.business_unit_id != "":
            try:
                unit = int(self.business_unit_id)
                if isinstance(self.business_unit_id, bool) or unit < 0:
                    raise ValueError
            except (TypeError, ValueError):
                problems.append({"field": "business_unit_id", "value": self.business_unit_id, "allowed": None})
        if problems:
            lines = [
                f"{p['field']}: invalid value {p['value']!r}"
                + ("; allowed values: " + ", ".join(p["allowed"]) if p["allowed"] else "; must be an integer >= 0")
                for p in problems
            ]
            raise HubCommValidationError(
                "invalid arguments, nothing was sent:\n" + "\n".join(lines),
                [{"row": None, "message": "invalid value", **p} for p in problems],
            )
        return subscriber, channel, unit

    def execute(self, context: Context) -> dict[str, Any]:
        """Validate and unsubscribe the contact from all e-mail; return HubSpot's answer."""
        subscriber, channel, unit = self._arguments()
        try:
            answer = self.hook.unsubscribe_all(
                subscriber, channel=channel, business_unit_id=unit, verbose=bool(self.verbose)
            )
        finally:
            self.hook.close()
        self.log.info("Unsubscribed %s from all %s (%d statuses reported).", subscriber, channel, len(answer.results))
        return answer.model_dump(mode="json", by_alias=True, exclude_none=True)


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
    XCom key ``summary``. Generated files go to ``output_dir`` (use shared storage such as ``s3://…`` when a
    downstream task on another worker reads them) or the worker's temp directory.

    Retrying the task is safe: writes set states, so a rerun converges (already written rows answer
    ``NO_STATUS_CHANGE``).

    :param inputs: the rows (templated; an ``XComArg`` works).
    :param column_map: input column -> API field name (templated).
    :param defaults: API field name -> value for rows without it, e.g. ``{"legalBasis": ...}`` (templated).
    :param batch_size: rows per request (default 100, at most 1,000).
    :param max_concurrency: requests in flight at once (default 4).
    :param on_invalid: ``"fail"`` or ``"skip"`` (see above).
    :param dry_run: validate and report what would be sent (rows, requests); send nothing.
    :param only_changes: per chunk, read current statuses and write only rows whose state differs
        (``unchanged`` rows are skipped).
    :param failed_rows_path: where to write the failed rows as JSON lines: local path, URL or
        ``ObjectStoragePath`` (templated). Default: a new file in ``output_dir``, created only if needed.
    :param max_failed_rows: fail the task when more rows failed (after all writes).
    :param max_failed_ratio: fail the task when ``failed / (written + failed)`` is larger (0 to 1).
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

    def execute(self, context: Context) -> dict[str, Any]:
        """Build the batch run over the hook, run it, and return its summary."""
        from airflow_provider_hubcomm.batch.engine import BatchWriteEngine

        try:
            summary = BatchWriteEngine(
                self.hook,
                column_map=self.column_map,
                defaults=self.defaults,
                batch_size=self.batch_size,
                max_concurrency=self.max_concurrency,
                on_invalid=self.on_invalid,
                dry_run=self.dry_run,
                only_changes=self.only_changes,
                allow_resubscribe=self.allow_resubscribe,
                failed_rows_path=self.failed_rows_path,
                output_dir=self.output_dir,
                max_failed_rows=self.max_failed_rows,
                max_failed_ratio=self.max_failed_ratio,
                file_format=self.file_format,
                extra_columns=self.extra_columns,
            ).run(self.inputs)
            from airflow_provider_hubcomm.assets import record_outlet_events

            record_outlet_events(self.outlets, context, summary)
            return summary
        except HubCommError as err:
            partial = getattr(err, "summary", None)
            if partial is not None:
                context["ti"].xcom_push(key="summary", value=partial)
            raise
        finally:
            self.hook.close()
