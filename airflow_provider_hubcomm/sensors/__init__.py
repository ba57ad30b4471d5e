"""Sensors of the HubSpot Communication Preferences provider."""

from __future__ import annotations

from airflow_provider_hubcomm.sensors.hubcomm import BatchStatusSensor

__all__ = ["BatchStatusSensor"]
