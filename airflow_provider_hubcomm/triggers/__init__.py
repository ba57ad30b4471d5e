"""Triggers of the HubSpot Communication Preferences provider."""

from __future__ import annotations

from airflow_provider_hubcomm.triggers.hubcomm import BatchStatusTrigger

__all__ = ["BatchStatusTrigger"]
