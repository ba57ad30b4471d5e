"""Read-back of a batch write: the rows to check, the one read loop, its state and result.

Used by :class:`~airflow_provider_hubcomm.sensors.hubcomm.BatchStatusSensor` (sync) and
:class:`~airflow_provider_hubcomm.triggers.hubcomm.BatchStatusTrigger` (async):

* :mod:`~airflow_provider_hubcomm.readback.rows`: the writer's summary, its written rows, their selection;
* :mod:`~airflow_provider_hubcomm.readback.loop`: the one loop (plan reads by brand, batch or single reads);
* :mod:`~airflow_provider_hubcomm.readback.state`: what is known across checks, the result and messages;
* :mod:`~airflow_provider_hubcomm.contracts`: the typed result and trigger payload;
* :mod:`~airflow_provider_hubcomm.readback.errors`: the failures a retry cannot fix.
"""

from __future__ import annotations

from airflow_provider_hubcomm.readback.errors import (
    BatchCanceledError,
    BatchMismatchError,
    BatchSummaryError,
    BatchVerificationError,
    UnreadableRowsError,
)

__all__ = [
    "BatchCanceledError",
    "BatchMismatchError",
    "BatchSummaryError",
    "BatchVerificationError",
    "UnreadableRowsError",
]
