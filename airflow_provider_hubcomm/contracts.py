"""The JSON contracts between the provider's parts and users' DAGs: one ``TypedDict`` per shape, the one source.

Everything here is JSON: it travels through XCom, a trigger's event or a JSON-lines file. Producers build these
dicts and consumers read them through these types, so mypy checks the keys on both sides. The module imports
only :mod:`typing`, so any part of the package may use it. ``docs/dev/CONTRACTS.md`` explains each shape, and
``tests/docs/test_contracts.py`` checks that it names every key here and that a real run's summary has exactly
the keys of its type.

=============================  ===============================================  ==============================
Contract                       Produced by                                      Read by
=============================  ===============================================  ==============================
:class:`RunSummary`            ``batch.write_account.RunAccount.summary``       users' DAGs, the sensor
:class:`OptOutSummary`         ``batch.optout_account.OptOutAccount.summary``   users' DAGs, the sensor
:class:`WrittenStatusRecord`   ``batch.write_account.RunAccount.write``         ``readback.rows.ReadbackRow``
:class:`WrittenOptOutRecord`   ``batch.optout_account.OptOutAccount.write``     ``readback.rows.ReadbackRow``
:class:`FailedRecord`          ``batch.summary.Tally`` (both runs)              users (the failed-rows file)
:class:`ReadBackMeta`          ``BatchStatusSensor._meta``                      ``readback.state``, the trigger
:class:`HandOverState`         ``readback.state.VerificationState.to_json``     the trigger (``state`` kwarg)
:class:`ReadBackResult`        ``readback.state.build_result``                  users (XCom), the sensor
:class:`TriggerPayload`        ``BatchStatusTrigger``                           ``execute_complete``
=============================  ===============================================  ==============================

A summary from an older version, or one a user wrote by hand, may lack keys: the read-back reads what it
needs with ``.get`` and fails only when the rows cannot be found.
"""

from __future__ import annotations

from typing import Any, Final, Literal, NotRequired, TypedDict, final

__all__ = [
    "MAX_FAILED_REASONS",
    "MAX_INLINE_WRITTEN",
    "MAX_LISTED_OPERATIONS",
    "OTHER_REASON",
    "SKIP_REASONS",
    "BatchSummary",
    "CanceledOperation",
    "EventStatus",
    "FailedRecord",
    "HandOverState",
    "NotCompleteOperation",
    "NotCompleteReport",
    "OperationsReport",
    "OperationsSummary",
    "OptOutSummary",
    "PartitionSummary",
    "ReadBackMeta",
    "ReadBackResult",
    "ReadMode",
    "RowReport",
    "RunCounts",
    "RunMode",
    "RunPlan",
    "RunSummary",
    "SyncStateSummary",
    "TriggerPayload",
    "UnconfirmedReport",
    "WrittenOptOutRecord",
    "WrittenRecord",
    "WrittenStatusRecord",
]

# -- limits of the shapes (a summary stays small whatever the row count) --------------------------------------

#: Why a row was skipped, in ``skipped_by_reason`` of a status write (an opt-out run counts ``invalid``,
#: ``duplicate`` and ``dry_run``).
SKIP_REASONS: Final = (
    "invalid",
    "duplicate",
    "unchanged",
    "resubscribe_not_allowed",
    "unknown_subscription",
    "inactive_subscription",
    "dry_run",
)
#: ``failed_by_reason`` keeps this many reasons; later ones are counted under :data:`OTHER_REASON`.
MAX_FAILED_REASONS: Final = 20
OTHER_REASON: Final = "other"
#: ``operations.not_complete`` and ``operations.canceled`` list at most this many entries (``*_truncated``).
MAX_LISTED_OPERATIONS: Final = 1000
#: ``written_rows`` holds the written rows inline up to this many (else ``None``: read the file).
MAX_INLINE_WRITTEN: Final = 1000

#: How a batch run sent its rows: batch endpoints, or one request per row (the account lacks batch scopes).
RunMode = Literal["batch", "single"]
#: How statuses are read back: ``batch/read`` requests, or one ``GET /statuses/{id}`` per subscriber.
ReadMode = Literal["batch", "single"]
#: The trigger's outcome.
EventStatus = Literal["success", "mismatch", "timeout", "canceled", "error"]

# -- the output files' lines ------------------------------------------------------------------------------------


@final  # final: ``"subscriptionId" in record`` tells the two kinds of record apart (for mypy too)
class WrittenStatusRecord(TypedDict):
    """One written row of a status write: a line of ``written_rows_path``, an entry of ``written_rows``."""

    row: int
    subscriberIdString: str
    subscriptionId: int
    statusState: str
    operation: int
    operationStatus: str


@final
class WrittenOptOutRecord(TypedDict):
    """One written row of an opt-out run (opted out of all e-mail of ``businessUnitId``)."""

    row: int
    subscriberIdString: str
    businessUnitId: int
    operation: int
    operationStatus: str


#: A line of a written-rows file, of either run.
WrittenRecord = WrittenStatusRecord | WrittenOptOutRecord


class FailedRecord(TypedDict):
    """One line of ``failed_rows_path``: a failed row, or a skipped row that needs attention."""

    row: int
    input: dict[str, Any]
    outcome: Literal["failed", "skipped"]
    category: str | None
    message: str
    correlationId: str | None
    #: skipped rows only: one of :data:`SKIP_REASONS`.
    reason: NotRequired[str]
    #: invalid rows of a status write only: one entry per problem (``row``, ``field``, ``value``, ``message`` …).
    errors: NotRequired[list[dict[str, Any]]]


# -- the run summary (XCom of the batch operators) --------------------------------------------------------------


class NotCompleteOperation(TypedDict):
    """A batch operation HubSpot answered ``PENDING``/``PROCESSING``: its rows are written, unconfirmed."""

    index: int
    status: str
    requestedAt: str | None
    startedAt: str | None
    completedAt: str | None
    rows: int


class CanceledOperation(TypedDict):
    """A batch operation HubSpot answered ``CANCELED``: its rows are counted failed."""

    index: int
    rows: int
    reason: str


class OperationsSummary(TypedDict):
    """The batch operations (one per request) of a run."""

    total: int
    by_status: dict[str, int]
    first_requested_at: str | None
    last_completed_at: str | None
    not_complete: list[NotCompleteOperation]
    not_complete_truncated: bool
    canceled: list[CanceledOperation]
    canceled_truncated: bool


class RunPlan(TypedDict):
    """What was (or, in a dry run, would be) sent."""

    rows_to_send: int
    chunks: int
    batch_size: int
    max_concurrency: int
    batch_size_used: int
    batch_size_reduced: bool


class RunCounts(TypedDict):
    """What a run's accounting counts: every row read is ``written``, ``failed`` or ``skipped``, exactly once."""

    rows_read: int
    written: int
    #: part of ``written``: rows of operations HubSpot answered ``PENDING``/``PROCESSING``.
    unconfirmed: int
    failed: int
    skipped: int
    skipped_by_reason: dict[str, int]
    failed_by_reason: dict[str, int]
    operations: OperationsSummary
    written_rows: list[WrittenRecord] | None


class BatchSummary(RunCounts):
    """What every batch run's summary holds (what ``BatchStatusSensor`` reads): counts, operations, outputs."""

    conn_id: str
    channel: str
    mode: RunMode
    dry_run: bool
    requests: int
    retries: int
    duration_seconds: float
    plan: RunPlan
    written_rows_path: str | None
    failed_rows_path: str | None


class SyncStateSummary(TypedDict):
    """The sync state a run with ``state_path`` used."""

    #: the state's folder (redacted).
    path: str
    #: rows skipped because the state holds them unchanged and confirmed.
    unchanged: int
    #: ``full_resync``: the state was ignored and rebuilt.
    resync: bool
    #: the run's sync log (``sync_log``; redacted), ``None`` when none was written (dry run, ``sync_log=False``).
    log: str | None


class PartitionSummary(TypedDict):
    """The partition a run with ``partitions`` handled."""

    #: this run's partition (``partition``).
    index: int
    #: how many partitions there are (``partitions``).
    count: int
    #: input rows of the other partitions: read, not this run's rows (not in ``rows_read``).
    rows_outside: int


class RunSummary(BatchSummary):
    """The summary of ``BatchWriteStatusesOperator`` (its XCom ``return_value``)."""

    only_changes: bool
    allow_resubscribe: bool
    unchanged: int
    rows_per_second: float
    #: only for a run with ``state_path``.
    state: NotRequired[SyncStateSummary]
    #: only for a run with ``partitions``.
    partition: NotRequired[PartitionSummary]


class OptOutSummary(BatchSummary):
    """The summary of ``BatchUnsubscribeAllOperator`` (its XCom ``return_value``)."""

    kind: Literal["unsubscribe_all"]
    business_unit_id: int
    #: the fatal error that stopped the run (redacted), when one did.
    aborted_by: NotRequired[str]


# -- the read-back: the sensor's settings, hand-over, result and the trigger's event ----------------------------


class ReadBackMeta(TypedDict):
    """The check's settings and what the sensor took from the writer's summary (travels to the trigger)."""

    verify: str
    sample_size: int
    sample_seed: int
    fail_on_mismatch: bool
    conn_id: str
    channel: str
    rows_written: int
    #: the summary's ``operations`` block, as written.
    operations: OperationsSummary
    #: ``"single"`` when the writer ran without batch scopes or a batch read was refused for missing scopes.
    read_mode: NotRequired[ReadMode]
    #: the summary's ``unconfirmed`` count (rows of PENDING/PROCESSING operations), when it has one.
    unconfirmed_at_write: NotRequired[int | None]


class HandOverState(TypedDict):
    """What the sensor knows after its first check, handed to the trigger (``VerificationState.to_json``)."""

    verified: int
    matching: int
    requests: int
    checks: int
    unconfirmed_read: int
    #: operation index (as text: JSON keys) -> its status at write time, for rows of non-COMPLETE operations.
    ops_at_write: dict[str, str]
    #: outstanding rows: ``[subscriber, subscription, expected, operation, operationStatus, last read, streak]``.
    rows: list[list[Any]]


class RowReport(TypedDict):
    """One row in ``mismatches`` / ``pending_rows``."""

    subscriber: str
    subscription: int | str
    expected: str
    actual: str | None
    operation: int
    operationStatus: str


class NotCompleteReport(NotCompleteOperation):
    """A not-complete operation of the summary, with its status after read-back."""

    status_at_write: str


class OperationsReport(TypedDict):
    """The batch operations: status at write time and after read-back."""

    total: int
    by_status_at_write: dict[str, int]
    by_status: dict[str, int]
    all_complete: bool
    still_not_complete: list[int]
    verified_complete_by_read_back: list[int]
    not_complete: list[NotCompleteReport]
    canceled: list[CanceledOperation]
    first_requested_at: str | None
    last_completed_at: str | None


class UnconfirmedReport(TypedDict):
    """Rows written by PENDING/PROCESSING operations (not confirmed by HubSpot's write answer)."""

    #: the writer's count (``None`` when the summary has none).
    at_write: int | None
    #: such rows read back so far.
    read: int
    #: of those, rows that now read back as written.
    confirmed: int
    #: rows still not reading back as written.
    still_unconfirmed: int


class ReadBackResult(TypedDict):
    """The sensor's result (XCom ``return_value``), also in the trigger's event."""

    verify: str | None
    sample_size: int | None
    sample_seed: int | None
    fail_on_mismatch: bool | None
    conn_id: str | None
    channel: str | None
    read_mode: ReadMode
    rows_written: int | None
    rows_verified: int
    rows_matching: int
    pending: int
    mismatch_count: int
    mismatches: list[RowReport]
    mismatches_truncated: bool
    pending_rows: list[RowReport]
    unconfirmed: UnconfirmedReport
    operations: OperationsReport
    read_requests: int
    checks: int
    checked_at: str


class TriggerPayload(TypedDict):
    """The one event :class:`~airflow_provider_hubcomm.triggers.hubcomm.BatchStatusTrigger` yields."""

    status: EventStatus
    message: NotRequired[str]
    result: NotRequired[ReadBackResult | None]
    pending: NotRequired[int]
