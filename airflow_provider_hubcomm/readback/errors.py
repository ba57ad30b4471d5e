"""Failures of a read-back that a retry cannot fix: the task fails at once, without retries."""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow.providers.common.compat.sdk import AirflowFailException

from airflow_provider_hubcomm.exceptions import HubCommError

if TYPE_CHECKING:
    from airflow_provider_hubcomm.contracts import ReadBackResult

__all__ = [
    "BatchCanceledError",
    "BatchMismatchError",
    "BatchSummaryError",
    "BatchVerificationError",
    "UnreadableRowsError",
]


class BatchVerificationError(HubCommError, AirflowFailException):
    """Verification failed for a reason a retry cannot fix; the task fails without retries.

    :param message: what went wrong.
    :param result: the read-back result so far, when there is one.
    """

    def __init__(self, message: str, result: ReadBackResult | None = None) -> None:
        super().__init__(message)
        self.result = result


class BatchSummaryError(BatchVerificationError):
    """The ``batch`` argument is not a usable batch-write summary."""


class BatchCanceledError(BatchVerificationError):
    """HubSpot reported at least one batch operation ``CANCELED``: its rows were never applied."""


class BatchMismatchError(BatchVerificationError):
    """Rows of operations HubSpot reported ``COMPLETE`` read back a different, stable status."""


class UnreadableRowsError(BatchVerificationError):
    """Rows of a subscription in no brand the connection knows: no status read could ever see them."""
