"""Asset events of a consent sync: the run summary's counts travel in the event's ``extra``.

Every operator accepts ``outlets`` as any Airflow operator does; when a run ends, Airflow records one asset event
per outlet. :func:`record_outlet_events` puts a small, secret-free part of the run summary into each event's
``extra``, so a DAG scheduled on that asset (an audit or a downstream mart refresh) can read what changed
(``triggering_asset_events`` / ``inlet_events``) without pulling the writer's XCom.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["EXTRA_KEYS", "asset_extra", "record_outlet_events"]

#: Summary keys copied into the asset event's ``extra`` (counts and paths; never rows, never secrets).
EXTRA_KEYS = (
    "conn_id",
    "mode",
    "dry_run",
    "rows_read",
    "written",
    "failed",
    "skipped",
    "unchanged",
    "unconfirmed",
    "skipped_by_reason",
    "failed_rows_path",
    "written_rows_path",
)


def asset_extra(summary: Mapping[str, Any]) -> dict[str, Any]:
    """Return the part of a run summary that goes into an asset event's ``extra``.

    :param summary: the operator's summary (XCom ``return_value``).
    """
    out = {key: summary[key] for key in EXTRA_KEYS if key in summary}
    if isinstance(out.get("skipped_by_reason"), Mapping):
        out["skipped_by_reason"] = {k: v for k, v in out["skipped_by_reason"].items() if v}
    return {"hubcomm": out}


def record_outlet_events(outlets: Iterable[Any], context: Mapping[str, Any], summary: Mapping[str, Any]) -> None:
    """Attach the summary's counts to the asset event of every outlet of the task.

    :param outlets: the task's ``outlets``.
    :param context: the task context (its ``outlet_events`` accessor).
    :param summary: the run summary.
    """
    outlets = list(outlets or ())
    if not outlets:
        return
    events = context.get("outlet_events")
    if events is None:
        return
    extra = asset_extra(summary)
    for outlet in outlets:
        try:
            accessor = events[outlet]
        except (KeyError, TypeError, ValueError):  # not an asset (e.g. a legacy lineage object)
            continue
        accessor.extra.update(extra)
