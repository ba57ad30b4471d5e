"""Typed contracts of the read-back: the check settings, the sensor's result (XCom) and the trigger's event.

One definition used by the producer (:func:`~airflow_provider_hubcomm.readback.state.build_result`, the
trigger) and the consumers (the sensor, ``execute_complete``, users' report tasks, ``docs/dev/CONTRACTS.md``).
Everything here is JSON: it travels through XCom and the trigger's event.
"""

from __future__ import annotations

from typing import Any, Literal, NotRequired, TypedDict

__all__ = [
    "EventStatus",
    "OperationsReport",
    "ReadBackMeta",
    "ReadBackResult",
    "ReadMode",
    "RowReport",
    "TriggerPayload",
    "UnconfirmedReport",
]

#: How statuses are read back: ``batch/read`` requests, or one ``GET /statuses/{id}`` per subscriber.
ReadMode = Literal["batch", "single"]
#: The trigger's outcome.
EventStatus = Literal["success", "mismatch", "timeout", "canceled", "error"]


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
    operations: dict[str, Any]
    #: ``"single"`` when the writer ran without batch scopes or a batch read was refused for missing scopes.
    read_mode: NotRequired[ReadMode]
    #: the summary's ``unconfirmed`` count (rows of PENDING/PROCESSING operations), when it has one.
    unconfirmed_at_write: NotRequired[int | None]


class RowReport(TypedDict):
    """One row in ``mismatches`` / ``pending_rows``."""

    subscriber: str
    subscription: int | str
    expected: str
    actual: str | None
    operation: int
    operationStatus: str


class OperationsReport(TypedDict):
    """The batch operations: status at write time and after read-back."""

    total: int
    by_status_at_write: dict[str, int]
    by_status: dict[str, int]
    all_complete: bool
    still_not_complete: list[int]
    verified_complete_by_read_back: list[int]
    not_complete: list[dict[str, Any]]
    canceled: list[dict[str, Any]]
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
