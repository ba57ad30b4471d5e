"""Read-back of a batch write: the rows to check, the one read loop, its state and result.

Used by :class:`~airflow_provider_hubcomm.sensors.hubcomm.BatchStatusSensor` (sync) and
:class:`~airflow_provider_hubcomm.triggers.hubcomm.BatchStatusTrigger` (async):

* :mod:`~airflow_provider_hubcomm.readback.rows`: the writer's summary, its written rows, their selection;
* :mod:`~airflow_provider_hubcomm.readback.loop`: the one loop (plan reads by brand, record their answers);
* :mod:`~airflow_provider_hubcomm.readback.reads`: one read, batch or single, through the sync or async hook;
* :mod:`~airflow_provider_hubcomm.readback.state`: what is known across checks, the result and messages;
* :mod:`~airflow_provider_hubcomm.contracts`: the typed result and trigger payload;
* :mod:`~airflow_provider_hubcomm.readback.errors`: the failures a retry cannot fix, importable from here.
"""

from __future__ import annotations

from airflow_provider_hubcomm.readback.errors import *  # noqa: F403 (the failures, named once in errors.__all__)
from airflow_provider_hubcomm.readback.errors import __all__ as __all__
