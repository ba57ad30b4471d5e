"""Check a file's header before its first row: a header that can never give a valid row fails at once.

A CSV whose columns are all misnamed would otherwise make every row invalid (or, with only a header, read
as zero rows and "succeed"); this names the file, the unknown columns and the allowed ones instead. A
``column_map`` key that is not a column of the file (a typo in the DAG) fails here too, naming the key, the
file's columns and the argument ``column_map``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from airflow_provider_hubcomm.batch.rows import STATUS_STATE, SUBSCRIBER_ID_STRING, SUBSCRIPTION_ID, render_value
from airflow_provider_hubcomm.batch.thresholds import unseen_columns_error
from airflow_provider_hubcomm.exceptions import HubCommValidationError

if TYPE_CHECKING:
    from airflow_provider_hubcomm.batch.rows import RowValidator

__all__ = ["check_header"]

_REQUIRED_COLUMNS = (SUBSCRIBER_ID_STRING, SUBSCRIPTION_ID, STATUS_STATE)


def check_header(validator: RowValidator, name: str, columns: Sequence[str]) -> None:
    """Raise when the header cannot give a valid row, before the file's first row is read.

    That is: a ``column_map`` key is not a column, a column is unknown (``extra_columns="fail"``), or a
    required field has no column.

    :param validator: the run's row validator (its ``column_map``, ``defaults`` and ``extra_columns``).
    :param name: the file's name, for the message.
    :param columns: the header's column names.
    """
    present = set(columns)
    unseen = [key for key in validator.column_map if key not in present]
    if unseen:
        raise unseen_columns_error(unseen, columns, f"the header (line 1) of {name}")
    errors: list[dict[str, object]] = []
    if validator.extra_columns == "fail":
        for column in columns:
            if column not in validator.accepted_columns:
                errors.append(
                    {
                        "row": None,
                        "field": render_value(column),
                        "value": None,
                        "message": "unknown column (map it with column_map or pass extra_columns='ignore')",
                        "allowed": list(validator.accepted_columns),
                    }
                )
    sources = {target: source for source, target in validator.column_map.items()}
    for field in _REQUIRED_COLUMNS:
        source = sources.get(field, field)
        if source not in present and field not in validator.defaults:
            mapped = f" (mapped from column {source!r})" if source != field else ""
            errors.append(
                {"row": None, "field": field, "value": None, "message": f"no column gives it{mapped}", "allowed": None}
            )
    if not errors:
        return
    lines = [f"{e['field']}: {e['message']}" for e in errors]
    allowed = ", ".join(validator.accepted_columns)
    raise HubCommValidationError(
        f"{name}: the header (line 1) cannot give a valid row, nothing was sent:\n"
        + "\n".join(lines)
        + f"\naccepted columns: {allowed}",
        errors,
    )
