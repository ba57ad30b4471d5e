"""OpenLineage for the operators: what a consent sync read, and which HubSpot data it changed.

Airflow's OpenLineage provider calls ``get_openlineage_facets_on_complete(task_instance)`` on an operator when it
is installed and configured; this module builds the answer, and is imported only then (nothing here runs
during DAG parsing, and nothing is imported when the OpenLineage provider is absent).

Datasets follow the OpenLineage naming conventions where they exist:

* the **input** of a batch run: a local file (namespace ``file``, name its absolute path), an object-storage
  path (namespace ``<scheme>://<bucket>``, name the key), or the rows pushed by an upstream task (namespace
  ``airflow://<dag_id>``, name ``<task_id>.xcom``); single-contact operators have no input dataset;
* the **output**: the Communication Preferences of one HubSpot account, namespace ``hubspot://<api host>``,
  name ``<portal>/communication-preferences/<channel>`` (``portal`` is the connection's ``portal_id`` extra,
  else ``default``).

Counts travel as facets: ``inputStatistics.rowCount`` (rows read), ``outputStatistics.rowCount`` (rows
written) and a ``hubcomm`` run facet with written / failed / skipped by reason.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import attr

from airflow_provider_hubcomm.models import Channel

__all__ = ["HubCommRunFacet", "batch_lineage", "input_dataset_name", "output_dataset_name"]

# The OpenLineage client ships with the OpenLineage provider: this module is imported only when it is installed.
from openlineage.client.generated.base import RunFacet


@attr.define
class HubCommRunFacet(RunFacet):
    """Outcome of a consent sync: rows read, written, failed and skipped (by reason)."""

    rowsRead: int = attr.field(default=0)
    written: int = attr.field(default=0)
    failed: int = attr.field(default=0)
    skipped: int = attr.field(default=0)
    skippedByReason: dict[str, int] = attr.field(factory=dict)
    dryRun: bool = attr.field(default=False)
    mode: str = attr.field(default="batch")

    @staticmethod
    def _get_schema() -> str:
        return "https://github.com/airflow-provider-hubcomm/airflow-provider-hubcomm/blob/main/docs/lineage.md"


def output_dataset_name(base_url: str, portal_id: Any, channel: str = Channel.EMAIL.value) -> tuple[str, str]:
    """Return ``(namespace, name)`` of the HubSpot data a connection writes.

    :param base_url: the connection's API base URL.
    :param portal_id: the account (portal / hub) id, or ``None``.
    :param channel: the channel written (``EMAIL``).
    """
    host = urlsplit(base_url).netloc or base_url
    portal = str(portal_id) if portal_id not in (None, "") else "default"
    return f"hubspot://{host}", f"{portal}/communication-preferences/{channel}"


def input_dataset_name(inputs: Any, upstream: tuple[str, str] | None = None) -> tuple[str, str] | None:
    """Return ``(namespace, name)`` of a batch run's input, or ``None`` when it cannot be named.

    :param inputs: the rendered ``inputs`` argument (path, URL, ``ObjectStoragePath``, rows).
    :param upstream: ``(dag_id, task_id)`` of the task whose XCom gave the rows, when known.
    """
    if isinstance(inputs, str | os.PathLike) and "://" not in str(inputs):
        return "file", os.path.abspath(os.path.expanduser(os.fspath(inputs)))
    if hasattr(inputs, "protocol") or (isinstance(inputs, str) and "://" in inputs):
        parts = urlsplit(str(inputs).split("?", 1)[0])
        if parts.scheme in ("file", "local", ""):
            return "file", parts.path
        bucket = parts.netloc.rsplit("@", 1)[-1]  # drop an Airflow connection id (s3://conn@bucket/key)
        return f"{parts.scheme}://{bucket}", parts.path.lstrip("/")
    if upstream is not None:
        dag_id, task_id = upstream
        return f"airflow://{dag_id}", f"{task_id}.xcom"
    return None


def batch_lineage(
    *,
    inputs: Any,
    upstream: tuple[str, str] | None,
    summary: Mapping[str, Any] | None,
    base_url: str,
    portal_id: Any = None,
) -> Any:
    """Build the ``OperatorLineage`` of a batch run (or of a single-contact call when ``inputs`` is ``None``).

    :param inputs: the rendered ``inputs`` argument (``None`` for single-contact operators).
    :param upstream: ``(dag_id, task_id)`` of the upstream task that pushed the rows, if any.
    :param summary: the run summary (``None`` when the run produced none).
    :param base_url: the connection's API base URL.
    :param portal_id: the account id for the dataset name.
    """
    from airflow.providers.common.compat.openlineage.facet import Dataset, OutputStatisticsOutputDatasetFacet
    from airflow.providers.openlineage.extractors import OperatorLineage
    from openlineage.client.generated.input_statistics_input_dataset import InputStatisticsInputDatasetFacet

    summary = summary or {}
    written = int(summary.get("written") or 0)
    namespace, name = output_dataset_name(base_url, portal_id, str(summary.get("channel") or Channel.EMAIL.value))
    outputs = [
        Dataset(
            namespace=namespace,
            name=name,
            facets={"outputStatistics": OutputStatisticsOutputDatasetFacet(rowCount=written)},
        )
    ]
    found = None if inputs is None else input_dataset_name(inputs, upstream)
    input_list = []
    if found is not None:
        facets = {}
        if "rows_read" in summary:
            facets["inputStatistics"] = InputStatisticsInputDatasetFacet(rowCount=int(summary["rows_read"]))
        input_list.append(Dataset(namespace=found[0], name=found[1], facets=facets))
    run_facets = {}
    if summary:
        run_facets["hubcomm"] = HubCommRunFacet(
            rowsRead=int(summary.get("rows_read") or 0),
            written=written,
            failed=int(summary.get("failed") or 0),
            skipped=int(summary.get("skipped") or 0),
            skippedByReason={k: int(v) for k, v in (summary.get("skipped_by_reason") or {}).items() if v},
            dryRun=bool(summary.get("dry_run")),
            mode=str(summary.get("mode") or "batch"),
        )
    return OperatorLineage(inputs=input_list, outputs=outputs, run_facets=run_facets)
