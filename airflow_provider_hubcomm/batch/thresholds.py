"""What the validation pass allows to go on: a config typo or dirty data never makes a green run.

:func:`check_validation` runs after the validation pass (which reads every row) and before the first
request. It fails the run, sending nothing, when

* a ``column_map`` key named a column that no input row had (a typo: the rows then silently lack the field,
  or all fail validation and are skipped);
* ``on_invalid="fail"`` and any row is invalid;
* every row is invalid, even with ``on_invalid="skip"`` (a run that can write nothing is not a success);
* ``max_invalid_ratio`` is set and ``invalid / rows_read`` is larger.

Messages name the operator argument (``column_map``, ``on_invalid``, ``max_invalid_ratio``) and show the
first row errors.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from airflow_provider_hubcomm.batch.rows import format_errors
from airflow_provider_hubcomm.exceptions import HubCommValidationError

if TYPE_CHECKING:
    from airflow_provider_hubcomm.batch.spool import ValidationPass

__all__ = ["check_validation", "unseen_columns_error"]


def unseen_columns_error(unseen: Iterable[str], seen: Iterable[str], where: str) -> HubCommValidationError:
    """Return the error for ``column_map`` keys that name no input column.

    :param unseen: the keys no input column matched.
    :param seen: the input's column names.
    :param where: what was read (``"the 5 input rows"``, a file name).
    """
    keys = sorted(unseen)
    columns = ", ".join(repr(c) for c in seen) or "none"
    lines = [f"column_map[{key!r}]: no column {key!r} in {where}" for key in keys]
    message = (
        "column_map names input columns that do not exist, nothing was sent:\n"
        + "\n".join(lines)
        + f"\ninput columns: {columns}\n(check the column_map keys against the input's column names)"
    )
    errors = [
        {"row": None, "field": f"column_map[{key!r}]", "value": key, "message": "no such input column", "allowed": None}
        for key in keys
    ]
    return HubCommValidationError(message, errors)


def check_validation(
    checked: ValidationPass,
    *,
    on_invalid: str,
    max_invalid_ratio: float | None = None,
) -> None:
    """Raise when the run must not go on after its validation pass; nothing has been sent yet.

    :param checked: what the validation pass saw (counts, first errors, unseen ``column_map`` keys).
    :param on_invalid: the run's ``on_invalid`` (``"fail"`` or ``"skip"``).
    :param max_invalid_ratio: the largest allowed ``invalid / rows_read`` (0 to 1), ``None`` for no bound.
    :raises HubCommValidationError: on any of the cases listed in the module docstring.
    """
    rows, invalid = checked.rows_read, checked.invalid
    if rows and checked.columns_unseen:
        where = f"any of the {rows} input row{'s' if rows != 1 else ''}"
        raise unseen_columns_error(checked.columns_unseen, checked.columns_seen, where)
    if not invalid:
        return
    errors = [e.to_dict() for e in checked.errors]
    details = format_errors(checked.errors, invalid)
    if on_invalid != "skip":
        raise HubCommValidationError(
            f"{invalid} of {rows} input rows are invalid; nothing was sent "
            f"(on_invalid='fail'; pass on_invalid='skip' to send the valid rows):\n{details}",
            errors,
        )
    if invalid == rows:
        raise HubCommValidationError(
            f"all {rows} input rows are invalid, nothing was sent (on_invalid='skip' skips bad rows, but a run "
            f"that can write nothing fails); the first errors:\n{details}",
            errors,
        )
    if max_invalid_ratio is not None and invalid / rows > max_invalid_ratio:
        raise HubCommValidationError(
            f"{invalid} of {rows} input rows are invalid ({invalid / rows:.1%}), more than "
            f"max_invalid_ratio={max_invalid_ratio:g} allows; nothing was sent. The first errors:\n{details}",
            errors,
        )
