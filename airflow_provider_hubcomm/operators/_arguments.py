"""Argument checks of the single-contact operators: errors in the user's words.

Every message names the operator argument the user passed (``status``, not only HubSpot's ``statusState``),
shows the value as given and lists the allowed values once. The rules are the provider's rules
(:mod:`~airflow_provider_hubcomm.rules`), applied through the batch rows' validator
(:class:`~airflow_provider_hubcomm.batch.rows.RowValidator`). Both are imported inside the functions: DAG files
import the operators on every parse, and only ``execute()`` validates anything.
"""

from __future__ import annotations

import re
from typing import Any, NamedTuple, NoReturn

from airflow_provider_hubcomm.exceptions import HubCommValidationError

__all__ = [
    "StatusArguments",
    "check_status_arguments",
    "check_subscriber",
    "check_unsubscribe_all_arguments",
    "is_subscription_name",
]

_ID_TEXT = re.compile(r"\s*[+-]?\d+\s*")
#: Stands in for a subscription name while the other arguments are checked (the name is resolved later).
_PLACEHOLDER_ID = 1
_SUBSCRIPTION_ID_RULE = "must be a subscription id (a whole number > 0) or a subscription name"


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


def _raise(problems: list[dict[str, Any]]) -> NoReturn:
    from airflow_provider_hubcomm.rules import arguments_message

    raise HubCommValidationError(arguments_message(problems), problems)


def is_subscription_name(value: Any) -> bool:
    """Return whether a ``subscription_id`` argument is a subscription name rather than an id.

    :param value: the argument as given (after templating).
    """
    return isinstance(value, str) and value.strip() != "" and not _ID_TEXT.fullmatch(value)


def check_subscriber(subscriber_id: Any) -> str:
    """Return the stripped subscriber id, or raise naming ``subscriber_id`` when it is not an e-mail address.

    :param subscriber_id: the argument as given.
    """
    from airflow_provider_hubcomm.rules import Invalid, argument_problem
    from airflow_provider_hubcomm.rules import check_subscriber as subscriber

    try:
        return subscriber(subscriber_id)
    except Invalid as exc:
        _raise([argument_problem("subscriber_id", subscriber_id, exc.problem.message)])


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
    from airflow_provider_hubcomm.rules import ARGUMENT_OF_FIELD, DEFAULT_CHANNEL, SUBSCRIPTION_ID, argument_problem

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
        given["channel"] = DEFAULT_CHANNEL
    if given["subscriptionId"] in ("", None):
        given["subscriptionId"] = None
    checked = RowValidator(extra_columns="ignore").validate(0, given)
    if isinstance(checked, list):
        problems = []
        for error in checked:
            argument = ARGUMENT_OF_FIELD[error.field]
            if error.kind == "pair":  # one line for the pair, whichever half is missing
                message = "legal_basis and legal_basis_explanation must be given together (or neither)"
                problems.append(argument_problem(argument, None, message, given=False))
            elif error.kind == "missing":
                problems.append(argument_problem(argument, None, "is required", given=False))
            elif error.field == SUBSCRIPTION_ID:
                problems.append(argument_problem(argument, subscription_id, _SUBSCRIPTION_ID_RULE))
            else:
                raw = {"statusState": status, "channel": channel}.get(error.field, given[error.field])
                detail = None if error.allowed else error.message
                problems.append(argument_problem(argument, raw, detail, list(error.allowed or ()) or None))
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
    from airflow_provider_hubcomm.rules import CHANNEL, Invalid, argument_problem, check_business_unit_id, check_enum

    subscriber = check_subscriber(subscriber_id)
    problems: list[dict[str, Any]] = []
    canonical = unit = None
    try:
        canonical = check_enum(CHANNEL, channel)
    except Invalid as exc:
        problems.append(argument_problem("channel", channel, None, list(exc.problem.allowed or ())))
    try:
        unit = check_business_unit_id(business_unit_id)
    except Invalid as exc:
        problems.append(argument_problem("business_unit_id", business_unit_id, exc.problem.message))
    if problems:
        _raise(problems)
    return subscriber, str(canonical), unit
