"""Outcomes of a batch run's requests (why a row failed, what a chunk did) and the one error classifier.

Shared by the stages that produce outcomes (:mod:`~.chunk`, :mod:`~.guard`, :mod:`~.single`) and by the
accounting that records them (:mod:`~.summary`), so the accounting never imports a stage.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

from airflow_provider_hubcomm.exceptions import (
    HubCommAPIError,
    HubCommAuthError,
    HubCommConnectionError,
    HubCommError,
    HubCommUnconfirmedError,
    is_daily_limit,
    is_missing_scopes,
)

if TYPE_CHECKING:
    from airflow_provider_hubcomm.batch.rows import WriteRow

__all__ = [
    "CANCELED_REASON",
    "MISSING_REASON",
    "NOT_FINAL",
    "ChunkResult",
    "Reason",
    "Row",
    "classify_error",
    "is_missing_scopes",
    "is_too_large",
    "not_sent",
]

MISSING_REASON = "missing from HubSpot's results"
CANCELED_REASON = "batch operation CANCELED by HubSpot"
MISSING_SCOPES = "MISSING_SCOPES"
#: Category of a row whose single write HubSpot answered 2xx without confirming anything.
EMPTY_ANSWER = "EMPTY_ANSWER"
Row = tuple[int, "WriteRow"]
#: Operation statuses that are not final: the rows are written but unconfirmed.
NOT_FINAL = frozenset({"PENDING", "PROCESSING"})
#: A 400 whose message says this is about the request's size, not its content.
_TOO_LARGE = re.compile(r"too large|exceeds|maximum|too many", re.IGNORECASE)


class Reason(NamedTuple):
    """Why a row failed: HubSpot's category (or our own), message and correlation id."""

    category: str | None
    message: str
    correlation_id: str | None = None

    @property
    def key(self) -> str:
        """The ``failed_by_reason`` key: ``"<CATEGORY>: <message>"``."""
        return f"{self.category}: {self.message}" if self.category else self.message


@dataclass(slots=True)
class ChunkResult:
    """Outcome of one chunk, for every row it held.

    :param index: the chunk's number in send order (the ``operation`` of its written rows).
    :param rows: the rows of the chunk.
    """

    index: int
    rows: list[Row]
    #: ``(row, write, operation status)``.
    written: list[tuple[int, WriteRow, str]] = field(default_factory=list)
    failed: list[tuple[int, WriteRow, Reason]] = field(default_factory=list)
    operations: list[dict[str, Any]] = field(default_factory=list)
    fatal: BaseException | None = None
    #: Rows not sent because the batch endpoint lacks its scope: the engine resends them as single writes.
    requeue: list[Row] = field(default_factory=list)


def is_too_large(err: BaseException) -> bool:
    """Return whether ``err`` is a 400 saying the batch is too large (resend it in halves).

    :param err: the exception raised by a batch request.
    """
    return (
        isinstance(err, HubCommAPIError)
        and err.status_code == 400
        and bool(_TOO_LARGE.search(err.hubspot_message or err.text or ""))
    )


def classify_error(err: BaseException) -> tuple[bool, Reason]:
    """Return ``(fatal, reason)`` for an exception raised by one request of the run.

    Fatal (the run aborts): 401/403 (no later request can succeed; a batch endpoint's ``MISSING_SCOPES`` is
    handled before this by the tier fallback), the ``DAILY`` 429 (the budget resets at midnight), and any
    non-HubComm exception (a bug must not be swallowed row by row). Everything else (400, 404, 5xx or no
    answer after the hook's retries, a burst 429 after retries, a malformed answer) fails only the rows of
    that request.

    :param err: the exception.
    """
    if isinstance(err, HubCommUnconfirmedError):  # a 2xx single write that confirms nothing: not written
        return False, Reason(EMPTY_ANSWER, f"HubSpot's answer confirms nothing: {err.note or err}", err.correlation_id)
    if isinstance(err, HubCommAPIError):
        category = err.category or f"HTTP {err.status_code}"
        reason = Reason(category, err.hubspot_message or str(err), err.correlation_id)
        return isinstance(err, HubCommAuthError) or is_daily_limit(err), reason
    if isinstance(err, HubCommConnectionError):
        return False, Reason("NO_ANSWER", str(err))
    if isinstance(err, HubCommError):
        return False, Reason(type(err).__name__, str(err))
    return True, Reason(type(err).__name__, str(err) or repr(err))


def not_sent(reason: Reason) -> Reason:
    """Return the reason of a row that was not sent because the run aborted for ``reason``.

    :param reason: why the run aborted.
    """
    return Reason(None, f"not sent: run aborted: {reason.key}", reason.correlation_id)
