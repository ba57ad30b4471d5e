"""Base of the HubComm operators: the connection id, a lazily built hook and the task's deadline."""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import BaseOperator

from airflow_provider_hubcomm.constants import DEFAULT_CONN_ID

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_provider_hubcomm.contracts import BatchSummary
    from airflow_provider_hubcomm.hooks.hubcomm import HubCommHook

__all__ = ["HubCommBaseOperator", "run_names", "run_outputs", "task_deadline"]


def task_deadline(execution_timeout: Any, context: Context | dict[str, Any]) -> float | None:
    """Return the epoch time by which the task must end (``execution_timeout`` after its start), or ``None``.

    :param execution_timeout: the operator's ``execution_timeout`` (a ``timedelta``) or ``None``.
    :param context: the task context; its ``ti.start_date`` is the start (now when it is missing).
    """
    if not isinstance(execution_timeout, timedelta):
        return None
    ti = context.get("ti")
    start = getattr(ti, "start_date", None)
    began = start.timestamp() if isinstance(start, datetime) else time.time()
    return began + execution_timeout.total_seconds()


def run_names(context: Context | dict[str, Any]) -> tuple[str, str, str, int] | None:
    """Return ``(dag_id, task_id, run_id, try_number)`` of the running task, or ``None`` outside a task run.

    A mapped task's id carries its map index (``write.3``), so mapped instances never share output files.

    :param context: the task context.
    """
    ti = context.get("ti")
    dag_id, task_id = getattr(ti, "dag_id", None), getattr(ti, "task_id", None)
    run_id, try_number = getattr(ti, "run_id", None), getattr(ti, "try_number", None)
    if not all(isinstance(v, str) and v for v in (dag_id, task_id, run_id)) or not isinstance(try_number, int):
        return None
    map_index = getattr(ti, "map_index", -1)
    if isinstance(map_index, int) and map_index >= 0:
        task_id = f"{task_id}.{map_index}"
    return str(dag_id), str(task_id), str(run_id), try_number


def run_outputs(context: Context | dict[str, Any], output_dir: Any) -> tuple[Any, str | None]:
    """Return ``(output_dir, output_name)`` of a task run: the per-run private folder unless one was given.

    :param context: the task context.
    :param output_dir: the operator's ``output_dir`` (``None``: the default per-run folder).
    """
    from airflow_provider_hubcomm.batch.outputs import default_output_dir, make_private_dir, output_name

    names = run_names(context)
    if names is None:
        return output_dir, None
    dag_id, task_id, run_id, try_number = names
    if output_dir is None:
        output_dir = make_private_dir(default_output_dir(dag_id, run_id, task_id))
    return output_dir, output_name(dag_id, task_id, run_id, try_number)


class HubCommBaseOperator(BaseOperator):
    """Base of the HubComm operators: the connection id and a lazily built hook.

    ``__init__`` only stores arguments; the hook (and the connection lookup) is created on first use in
    ``execute``. Tests may assign a pre-built hook: ``op.hook = HubCommHook(transport=...)``. When
    ``execution_timeout`` is set, the hook gets the task's deadline: retries and ``Retry-After`` waits never
    run past it.

    :param hubcomm_conn_id: the ``hubcomm`` connection to use.
    :param requests_per_10s: the account's rate budget, overriding the connection's ``requests_per_10s``.
    :param rate_limit_share: the fraction of the budget this task may use (``0.25`` when four mapped tasks
        run at once against the same HubSpot app: each task process has its own rate limiter).
    """

    ui_color = "#ff7a59"

    def __init__(
        self,
        *,
        hubcomm_conn_id: str = DEFAULT_CONN_ID,
        requests_per_10s: int | None = None,
        rate_limit_share: float | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.hubcomm_conn_id = hubcomm_conn_id
        self.requests_per_10s = requests_per_10s
        self.rate_limit_share = rate_limit_share
        self._deadline: float | None = None
        #: The run summary, for OpenLineage (batch operators set it in ``execute``).
        self._lineage_summary: BatchSummary | None = None

    def _start(self, context: Context | dict[str, Any]) -> None:
        """Note the task's deadline before the hook is built (call first in ``execute``)."""
        self._deadline = task_deadline(self.execution_timeout, context)

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """Report lineage (OpenLineage provider): the input, the account's consent data and the run's counts.

        Called by Airflow's OpenLineage provider when it is installed; see :mod:`airflow_provider_hubcomm.lineage`.

        :param task_instance: the finished task instance.
        """
        from airflow_provider_hubcomm.lineage import batch_lineage

        upstream = getattr(getattr(getattr(self, "_inputs_xcom", None), "operator", None), "task_id", None)
        return batch_lineage(
            inputs=getattr(self, "inputs", None),
            upstream=(self.dag_id, upstream) if upstream else None,
            summary=self._lineage_summary,
            base_url=self.hook.config.base_url,
            portal_id=self.hook.config.portal_id,
        )

    @cached_property
    def hook(self) -> HubCommHook:
        """The hook for :attr:`hubcomm_conn_id` (imported here: DAG files that import this stay light)."""
        from airflow_provider_hubcomm.hooks.hubcomm import HubCommHook

        return HubCommHook(
            hubcomm_conn_id=self.hubcomm_conn_id,
            requests_per_10s=self.requests_per_10s,
            rate_limit_share=self.rate_limit_share,
            deadline=self._deadline,
        )
