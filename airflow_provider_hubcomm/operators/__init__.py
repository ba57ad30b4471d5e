"""Operators of the HubSpot Communication Preferences provider."""

from __future__ import annotations

from airflow_provider_hubcomm.operators.batch import BatchUnsubscribeAllOperator
from airflow_provider_hubcomm.operators.hubcomm import (
    BatchWriteStatusesOperator,
    HubCommBaseOperator,
    SetStatusOperator,
    UnsubscribeAllOperator,
)

__all__ = [
    "BatchUnsubscribeAllOperator",
    "BatchWriteStatusesOperator",
    "HubCommBaseOperator",
    "SetStatusOperator",
    "UnsubscribeAllOperator",
]
