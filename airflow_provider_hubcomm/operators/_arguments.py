"""Argument checks of the single-contact operators: errors in the user's words.

Every message names the operator argument the user passed (``status``, not only HubSpot's ``statusState``),
shows the value as given and lists the allowed values once. The rules are the batch rows' rules
(:class:`~airflow_provider_hubcomm.batch.rows.RowValidator`), imported inside the functions: DAG files import
the operators on every parse, and only ``execute()`` validates anything.
"""

from __future__ import annotations

import re
from typing import Any, NamedTuple

from airflow_provider_hubcomm.exceptions import HubCommValidationError

__all__ = [
    "ARGUMENT_OF_FIELD",
    "StatusArguments",
    "check_status_arguments",
    "check_subscriber",
    "check_unsubscribe_all_arguments",
    "is_subscription_name",
]

#: HubSpot's field name -> the operator argument that gives it.
ARGUMENT_OF_FIELD = {
    "subscriberIdString": "subscriber_id",
    "subscriptionId": "subscription_id",
    "statusState": "status",
    "channel": "channel",
    "legalBasis": "legal_basis",
    "legalBasisExplanation": "legal_basis_explanation",
}
_ID_TEXT = re.compile(r"\s*[+-]?\d+\s*")
#: Stands in for a subscription name while the other arguments are checked (the name is resolved later).
_PLACEHOLDER_ID = 1


class StatusArguments(NamedTuple):
    """The checked arguments of :class:`~airflow_provider_hubcomm.operators.SetStatusOperator`.

    ``subscription`` is the id, or the subscription name to resolve through the hook's catalog.
    """

    subscriber: str
    subscription: int | str
    status: str
    channel: str
    legal_basis: str | None
    legal_basis_explanation: str | None


def _problem(
    argument: str, value: Any, detail: str | None, allowed: Any = None, *, given: bool = True
) -> dict[str, Any]:
    """One bad argument: ``given`` says whether a value was passed (then the message shows it)."""
    message = f"invalid value {value!r}" if given else ""
    if detail:
        message += f": {detail}" if message else detail
    return {"row": None, "field": argument, "value": value if given else None, "message": message, "allowed": allowed}


def _raise(problems: list[dict[str, Any]]) -> None:
    lines = []
    for p in problems:
        allowed = f"; allowed values (any case): {', '.join(p['allowed'])}" if p["allowed"] else ""
        lines.append(f"{p['field']}: {p['message']}{allowed}")
    raise HubCommValidationError("invalid arguments, nothing was sent:\n" + "\n".join(lines), problems)


def is_subscription_name(value: Any) -> bool:
    """Return whether a ``subscription_id`` argument is a subscription name rather than an id.

    :param value: the argument as given (after templating).
    """
    return isinstance(value, str) and value.strip() != "" and not _ID_TEXT.fullmatch(value)


def check_subscriber(subscriber_id: Any) -> str:
    """Return the stripped subscriber id, or raise naming ``subscriber_id`` when it is not an e-mail address.

    :param subscriber_id: the argument as given.
    """
    from airflow_provider_hubcomm.models import is_valid_email

    if not isinstance(subscriber_id, str) or not is_valid_email(subscriber_id.strip()):
        _raise([_problem("subscriber_id", subscriber_id, "must be an e-mail address (HubSpot's subscriberIdString)")])
    return str(subscriber_id).strip()


def check_status_arguments(
    *,
    subscriber_id: Any,
    subscription_id: Any,
    status: Any,
    channel: Any,
    legal_basis: Any,
    legal_basis_explanation: Any,
) -> StatusArguments:
    """Check the arguments of ``SetStatusOperator``; raise one error listing every bad argument.

    :param subscriber_id: the contact's e-mail address.
    :param subscription_id: the subscription id, or its name (resolved later through the catalog).
    :param status: ``SUBSCRIBED``, ``UNSUBSCRIBED`` or ``NOT_SPECIFIED``, any case.
    :param channel: ``EMAIL``, any case.
    :param legal_basis: a GDPR legal basis, any case, or ``None``/empty.
    :param legal_basis_explanation: its explanation, or ``None``/empty.
    :raises HubCommValidationError: naming each bad argument, its value as given and the allowed values.
    """
    from airflow_provider_hubcomm.batch.rows import RowValidator

    subscriber = check_subscriber(subscriber_id)
    given = {
        "subscriberIdString": subscriber,
        "subscriptionId": _PLACEHOLDER_ID if is_subscription_name(subscription_id) else subscription_id,
        "statusState": status,
        "channel": channel,
        "legalBasis": legal_basis if legal_basis not in ("", None) else None,
        "legalBasisExplanation": legal_basis_explanation if legal_basis_explanation not in ("", None) else None,
    }
    if given["channel"] in ("", None):
        given["channel"] = "EMAIL"
    if given["subscriptionId"] in ("", None):
        given["subscriptionId"] = None
    checked = RowValidator(extra_columns="ignore").validate(0, given)
    if isinstance(checked, list):
        problems = []
        pair_done = False
        for error in checked:
            argument = ARGUMENT_OF_FIELD[error.field]
            if "go together" in error.message:
                if not pair_done:
                    pair_done = True
                    message = "legal_basis and legal_basis_explanation must be given together (or neither)"
                    problems.append(_problem(argument, None, message, given=False))
                continue
            raw = {"subscriptionId": subscription_id, "statusState": status, "channel": channel}.get(
                error.field, given[error.field]
            )
            if error.value is None:
                problems.append(_problem(argument, None, "is required", given=False))
                continue
            detail = None if error.allowed else error.message
            if error.field == "subscriptionId":
                detail = "must be a subscription id (a whole number > 0) or a subscription name"
            problems.append(_problem(argument, raw, detail, list(error.allowed) if error.allowed else None))
        _raise(problems)
    assert not isinstance(checked, list)
    name = is_subscription_name(subscription_id)
    subscription: int | str = subscription_id.strip() if name else checked.subscription_id
    return StatusArguments(
        subscriber,
        subscription,
        checked.state,
        checked.channel,
        checked.legal_basis,
        checked.explanation,
    )


def check_unsubscribe_all_arguments(
    *, subscriber_id: Any, channel: Any, business_unit_id: Any
) -> tuple[str, str, int | None]:
    """Check the arguments of ``UnsubscribeAllOperator``: return ``(subscriber, channel, business unit)``.

    :param subscriber_id: the contact's e-mail address.
    :param channel: ``EMAIL``, any case.
    :param business_unit_id: the brand id (an integer >= 0), or ``None``/empty.
    :raises HubCommValidationError: naming each bad argument, its value as given and the allowed values.
    """
    from airflow_provider_hubcomm.models import Channel

    subscriber = check_subscriber(subscriber_id)
    problems: list[dict[str, Any]] = []
    allowed = [c.value for c in Channel]
    canonical = str(channel).strip().upper() if isinstance(channel, str) else None
    if canonical not in allowed:
        problems.append(_problem("channel", channel, None, allowed))
    unit: int | None = None
    if business_unit_id is not None and business_unit_id != "":
        try:
            if isinstance(business_unit_id, bool) or (
                isinstance(business_unit_id, float) and not business_unit_id.is_integer()
            ):
                raise ValueError
            unit = int(business_unit_id)
            if unit < 0:
                raise ValueError
        except (TypeError, ValueError):
            problems.append(_problem("business_unit_id", business_unit_id, "must be a brand id, a whole number >= 0"))
    if problems:
        _raise(problems)
    return subscriber, str(canonical), unit
