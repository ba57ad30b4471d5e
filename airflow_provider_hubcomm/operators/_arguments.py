"""Argument checks of the single-contact operators: errors that name the field, the value and the allowed values.

Models (pydantic) are imported inside the functions: DAG files import the operators on every parse, and
only ``execute()`` validates anything.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow_provider_hubcomm.exceptions import HubCommValidationError

if TYPE_CHECKING:
    from pydantic import ValidationError

__all__ = ["check_subscriber", "validation_error"]


def _enums() -> dict[str, type[Any]]:
    from airflow_provider_hubcomm.models import Channel, LegalBasis, StatusState

    return {"statusState": StatusState, "channel": Channel, "legalBasis": LegalBasis}


def validation_error(err: ValidationError) -> HubCommValidationError:
    """Turn a pydantic error into one naming each field, its value and the allowed values."""
    lines: list[str] = []
    errors: list[dict[str, Any]] = []
    for item in err.errors():
        field = ".".join(str(p) for p in item["loc"]) or "legalBasis/legalBasisExplanation"
        enum = _enums().get(field)
        allowed = [m.value for m in enum] if enum is not None else None
        value = item.get("input") if item["loc"] else None
        line = f"{field}: {item['msg']}" + (f" (got {value!r})" if item["loc"] else "")
        if allowed:
            line += "; allowed values: " + ", ".join(allowed)
        lines.append(line)
        errors.append({"row": None, "field": field, "value": value, "message": item["msg"], "allowed": allowed})
    return HubCommValidationError("invalid arguments, nothing was sent:\n" + "\n".join(lines), errors)


def check_subscriber(subscriber_id: Any) -> str:
    """Return the stripped subscriber id, or raise naming ``subscriber_id`` when it is not an e-mail address."""
    from airflow_provider_hubcomm.models import is_valid_email

    if not isinstance(subscriber_id, str) or not is_valid_email(subscriber_id.strip()):
        message = "must be an e-mail address (HubSpot's subscriberIdString)"
        raise HubCommValidationError(
            f"invalid arguments, nothing was sent:\nsubscriber_id: {message} (got {subscriber_id!r})",
            [{"row": None, "field": "subscriber_id", "value": subscriber_id, "message": message, "allowed": None}],
        )
    return subscriber_id.strip()
