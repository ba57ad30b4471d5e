"""Incremental sync of batch writes: the state of what HubSpot confirmed, and the diff against it.

Light on import (DuckDB is imported by the modules that use it): :func:`partition_of` is public here.
"""

from __future__ import annotations

from airflow_provider_hubcomm.sync.partition import partition_of

__all__ = ["partition_of"]
