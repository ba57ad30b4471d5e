"""What a read-back knows across checks (:class:`VerificationState`), its result (the sensor's XCom) and messages.

Row outcomes after a read:

* **matching**: the status read is the one written (a missing status counts as ``NOT_SPECIFIED``);
* **mismatch** (confirmed): a row of an operation that was ``COMPLETE`` at write time reads a definite other
  status on :data:`~airflow_provider_hubcomm.readback.rows.MISMATCH_CONFIRMATIONS` consecutive reads, i.e. it
  was changed behind the run's back;
* **pending**: everything else (rows of ``PENDING``/``PROCESSING`` operations not applied yet, i.e. the
  writer's *unconfirmed* rows, unreadable rows, a first disagreeing read not confirmed yet). Pending rows are
  read again on the next check.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Final

from airflow_provider_hubcomm.readback.rows import (
    COMPLETE,
    MISMATCH_CONFIRMATIONS,
    MISMATCHES_CAP,
    NOT_SPECIFIED,
    PENDING_ROWS_CAP,
    Key,
    ReadbackRow,
)

if TYPE_CHECKING:
    from airflow_provider_hubcomm.contracts import (
        BatchSummary,
        HandOverState,
        NotCompleteReport,
        OperationsReport,
        OperationsSummary,
        ReadBackMeta,
        ReadBackResult,
        RowReport,
    )

__all__ = [
    "VerificationState",
    "build_result",
    "canceled_message",
    "check_line",
    "mismatch_message",
    "timeout_message",
]

_MESSAGE_ROWS: Final = 10


class VerificationState:
    """What is known after one or more checks; JSON round-trips so the sensor can hand it to the trigger."""

    def __init__(self) -> None:
        self.verified = 0
        self.matching = 0
        self.requests = 0
        self.checks = 0
        self.outstanding: dict[Key, ReadbackRow] = {}
        self.last: dict[Key, str | None] = {}
        self.streak: dict[Key, int] = {}
        self.ops_at_write: dict[int, str] = {}
        #: rows of non-COMPLETE operations (the writer's "unconfirmed" rows) read at least once.
        self.unconfirmed_read = 0

    def observe(self, rows: Iterable[ReadbackRow], actual: Mapping[Key, str], *, first_read: bool) -> None:
        """Record one read-back of ``rows``.

        :param rows: the rows the read covered.
        :param actual: statuses read, from :func:`actuals_from_response`.
        :param first_read: ``True`` when these rows are read for the first time (counts them verified).
        """
        self.requests += 1
        for row in rows:
            key = row.key
            if first_read:
                self.verified += 1
                if not row.complete_at_write:
                    self.unconfirmed_read += 1
                    self.ops_at_write[row.operation] = row.op_status
            value = actual.get(key)
            if value is None and row.expected == NOT_SPECIFIED:
                value = NOT_SPECIFIED  # nothing on record is "not specified"
            if value == row.expected:
                if first_read or key in self.outstanding:
                    self.matching += 1
                self.outstanding.pop(key, None)
                self.last.pop(key, None)
                self.streak.pop(key, None)
                continue
            same = key in self.last and self.last[key] == value and value is not None
            self.streak[key] = self.streak.get(key, 0) + 1 if same else 1
            self.last[key] = value
            self.outstanding[key] = row

    def is_confirmed(self, key: Key) -> bool:
        """Whether the outstanding row is a confirmed mismatch (see the module docstring).

        :param key: the row's key.
        """
        row = self.outstanding[key]
        return (
            row.complete_at_write
            and self.last.get(key) is not None
            and self.streak.get(key, 0) >= MISMATCH_CONFIRMATIONS
        )

    def confirmed(self) -> list[ReadbackRow]:
        """Rows of COMPLETE operations reading a stable other status."""
        return [row for key, row in self.outstanding.items() if self.is_confirmed(key)]

    def candidates(self) -> list[ReadbackRow]:
        """Rows of COMPLETE operations reading another status once: one more read confirms or clears them."""
        return [
            row
            for key, row in self.outstanding.items()
            if row.complete_at_write and self.last.get(key) is not None and not self.is_confirmed(key)
        ]

    def pending_rows(self) -> list[ReadbackRow]:
        """Outstanding rows that are not confirmed mismatches."""
        return [row for key, row in self.outstanding.items() if not self.is_confirmed(key)]

    def to_json(self) -> HandOverState:
        """Return a JSON-able copy (rows as compact lists)."""
        return {
            "verified": self.verified,
            "matching": self.matching,
            "requests": self.requests,
            "checks": self.checks,
            "unconfirmed_read": self.unconfirmed_read,
            "ops_at_write": {str(k): v for k, v in self.ops_at_write.items()},
            "rows": [
                [
                    r.subscriber,
                    r.subscription,
                    r.expected,
                    r.operation,
                    r.op_status,
                    self.last.get(k),
                    self.streak.get(k, 0),
                ]
                for k, r in self.outstanding.items()
            ],
        }

    @classmethod
    def from_json(cls, data: HandOverState) -> VerificationState:
        """Rebuild a state from :meth:`to_json` output.

        :param data: the JSON-able state.
        """
        state = cls()
        state.verified = int(data.get("verified", 0))
        state.matching = int(data.get("matching", 0))
        state.requests = int(data.get("requests", 0))
        state.checks = int(data.get("checks", 0))
        state.unconfirmed_read = int(data.get("unconfirmed_read", 0))
        state.ops_at_write = {int(k): str(v) for k, v in (data.get("ops_at_write") or {}).items()}
        for sub, sid, expected, op, op_status, last, streak in data.get("rows") or ():
            row = ReadbackRow(sub, int(sid), expected, int(op), op_status)
            state.outstanding[row.key] = row
            state.last[row.key] = last
            state.streak[row.key] = int(streak)
        return state


def _operations(summary_ops: OperationsSummary, state: VerificationState) -> OperationsReport:
    still = {r.operation for r in state.outstanding.values() if not r.complete_at_write}
    by_write = {k: int(v) for k, v in (summary_ops.get("by_status") or {}).items()}
    final = dict(by_write)
    for op, status in state.ops_at_write.items():
        if op not in still and final.get(status, 0) > 0:
            final[status] -= 1
            final[COMPLETE] = final.get(COMPLETE, 0) + 1
    listed: list[NotCompleteReport] = []
    for entry in summary_ops.get("not_complete") or ():
        verified = entry["index"] in state.ops_at_write and entry["index"] not in still
        listed.append(
            {**entry, "status_at_write": entry["status"], "status": COMPLETE if verified else entry["status"]}
        )
    return {
        "total": int(summary_ops.get("total") or sum(by_write.values())),
        "by_status_at_write": by_write,
        "by_status": final,
        "all_complete": not still and not final.get("CANCELED"),
        "still_not_complete": sorted(still)[:MISMATCHES_CAP],
        "verified_complete_by_read_back": sorted(set(state.ops_at_write) - still)[:MISMATCHES_CAP],
        "not_complete": listed,
        "canceled": list(summary_ops.get("canceled") or ()),
        "first_requested_at": summary_ops.get("first_requested_at"),
        "last_completed_at": summary_ops.get("last_completed_at"),
    }


def _describe(rows: list[ReadbackRow], state: VerificationState) -> list[RowReport]:
    return [r.describe(state.last.get(r.key)) for r in rows]


def build_result(meta: ReadBackMeta, state: VerificationState) -> ReadBackResult:
    """Build the JSON result (the sensor's XCom) from the check settings and the current state.

    CPU work proportional to the outstanding rows: the trigger calls it off the event loop.

    :param meta: the check settings and the summary's ``operations``.
    :param state: the verification state.
    """
    confirmed = state.confirmed()
    pending = state.pending_rows()
    still_unconfirmed = sum(1 for r in state.outstanding.values() if not r.complete_at_write)
    # A state handed over by an older sensor has no count: at least the outstanding ones were read.
    unconfirmed_read = max(state.unconfirmed_read, still_unconfirmed)
    return {
        "verify": meta.get("verify"),
        "sample_size": meta.get("sample_size"),
        "sample_seed": meta.get("sample_seed"),
        "fail_on_mismatch": meta.get("fail_on_mismatch"),
        "conn_id": meta.get("conn_id"),
        "channel": meta.get("channel"),
        "read_mode": meta.get("read_mode") or "batch",
        "rows_written": meta.get("rows_written"),
        "rows_verified": state.verified,
        "rows_matching": state.matching,
        "pending": len(pending),
        "mismatch_count": len(confirmed),
        "mismatches": _describe(confirmed[:MISMATCHES_CAP], state),
        "mismatches_truncated": len(confirmed) > MISMATCHES_CAP,
        "pending_rows": _describe(pending[:PENDING_ROWS_CAP], state),
        "unconfirmed": {
            "at_write": meta.get("unconfirmed_at_write"),
            "read": unconfirmed_read,
            "confirmed": unconfirmed_read - still_unconfirmed,
            "still_unconfirmed": still_unconfirmed,
        },
        "operations": _operations(meta.get("operations") or {}, state),
        "read_requests": state.requests,
        "checks": state.checks,
        "checked_at": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
    }


def _rows_text(entries: list[RowReport]) -> str:
    shown = "; ".join(
        f"{e['subscriber']} subscription {e['subscription']}: expected {e['expected']}, read {e['actual'] or 'nothing'}"
        f" (operation #{e['operation']}, {e['operationStatus']} at write)"
        for e in entries[:_MESSAGE_ROWS]
    )
    more = f" … and {len(entries) - _MESSAGE_ROWS} more (see the XCom result)" if len(entries) > _MESSAGE_ROWS else ""
    return shown + more


def canceled_message(summary: BatchSummary) -> str | None:
    """Return why the task must fail when HubSpot reported CANCELED operations, else ``None``.

    :param summary: the parsed summary.
    """
    ops = summary.get("operations") or {}
    canceled = list(ops.get("canceled") or ())
    count = int((ops.get("by_status") or {}).get("CANCELED") or 0) or len(canceled)
    if not count:
        return None
    listed = ", ".join(
        f"operation #{c.get('index')} ({c.get('rows')} rows): {c.get('reason') or 'no reason given'}"
        for c in canceled[:20]
    )
    rows = sum(int(c.get("rows") or 0) for c in canceled)
    return (
        f"HubSpot answered CANCELED for {count} batch write operation(s) ({rows} rows, counted as failed by the "
        f"writer; HubSpot applied none of them and offers no way to resume them): {listed or 'no details'}. "
        "Re-run the write for those rows; the sensor does not retry."
    )


def check_line(result: ReadBackResult) -> str:
    """Return the log line of one check (the sensor's and the trigger's).

    :param result: the result from :func:`build_result`.
    """
    return (
        f"Read back {result['rows_verified']} rows: {result['rows_matching']} match, {result['pending']} pending, "
        f"{result['mismatch_count']} mismatching ({result['read_requests']} {result['read_mode']} read requests); "
        f"unconfirmed rows confirmed: {result['unconfirmed']['confirmed']} of {result['unconfirmed']['read']}; "
        f"operations not complete: {result['operations']['still_not_complete'][:20]}"
    )


def mismatch_message(result: ReadBackResult) -> str:
    """Message of a confirmed mismatch failure.

    :param result: the result from :func:`build_result`.
    """
    return (
        f"{result['mismatch_count']} row(s) of batch operations HubSpot reported COMPLETE now read back a different "
        f"status on {MISMATCH_CONFIRMATIONS} consecutive reads (changed behind this run's back, e.g. by the "
        f"contact or another integration): {_rows_text(result['mismatches'])}. {result['pending']} row(s) "
        f"still pending, {result['rows_matching']} of {result['rows_verified']} verified rows match."
    )


def timeout_message(result: ReadBackResult, timeout: float) -> str:
    """Message of a timeout with rows still pending.

    :param result: the result from :func:`build_result`.
    :param timeout: the sensor's timeout in seconds.
    """
    ops = result["operations"]
    text = (
        f"Timed out after {timeout:g}s with {result['pending']} row(s) still pending (not reading back as written) "
        f"and {result['mismatch_count']} mismatching, out of {result['rows_verified']} rows verified "
        f"({result['rows_matching']} match); {len(ops['still_not_complete'])} operation(s) not complete: "
        f"{ops['still_not_complete'][:20]}."
    )
    if result["pending_rows"]:
        text += f" Pending: {_rows_text(result['pending_rows'])}."
    if result["mismatches"]:
        text += f" Mismatching: {_rows_text(result['mismatches'])}."
    return text
