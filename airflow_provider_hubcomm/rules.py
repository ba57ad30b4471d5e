"""The provider's rules for one status write, in one place: fields, allowed values, checks and row errors.

Three validators judge a write and all of them apply these rules: the pydantic request models
(:mod:`~airflow_provider_hubcomm.models`), the fast row validator of batch runs
(:mod:`~airflow_provider_hubcomm.batch.rows`) and the operators' argument checks
(:mod:`~airflow_provider_hubcomm.operators._arguments`, :mod:`~airflow_provider_hubcomm.batch.options`).

Each ``check_*`` function takes a raw value and returns it canonical (enums upper-case, subscriber stripped)
or raises :class:`Invalid` carrying a :class:`Problem` (what is wrong, the allowed values). :class:`Invalid` is
a ``ValueError``, so pydantic validators call the checks as they are. :meth:`RowError.of` is the one place a
row error is built. ``subscriptionId`` is parsed by pydantic's int parser (``models.SubscriptionId``, bounded
by :data:`SUBSCRIPTION_ID_MAX`) after :func:`refuse_bool_or_fraction`.

Plain Python, no pydantic: DAG files import the operators, and the operators import this module.
"""

from __future__ import annotations

import re
import reprlib
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from types import MappingProxyType
from typing import Any, Final, Literal, NamedTuple

from airflow_provider_hubcomm.constants import INT64_MAX

__all__ = [
    "ALLOWED",
    "API_FIELDS",
    "ARGUMENT_OF_FIELD",
    "CHANNEL",
    "EMAIL_MAX_LEN",
    "LEGAL_BASIS",
    "LEGAL_BASIS_EXPLANATION",
    "LEGAL_BASIS_PAIR",
    "REQUIRED_FIELDS",
    "STATUS_STATE",
    "SUBSCRIBER_ID_STRING",
    "SUBSCRIPTION_ID",
    "Channel",
    "Invalid",
    "LegalBasis",
    "Problem",
    "RowError",
    "StatusState",
    "argument_problem",
    "arguments_message",
    "check_business_unit_id",
    "check_enum",
    "check_explanation",
    "check_subscriber",
    "is_valid_email",
    "pair_problem",
    "refuse_bool_or_fraction",
    "render_value",
    "whole_number",
]


class Channel(StrEnum):
    """Communication channel; HubSpot supports only ``EMAIL``."""

    EMAIL = "EMAIL"


class StatusState(StrEnum):
    """Subscription status a write sets."""

    SUBSCRIBED = "SUBSCRIBED"
    UNSUBSCRIBED = "UNSUBSCRIBED"
    NOT_SPECIFIED = "NOT_SPECIFIED"


class LegalBasis(StrEnum):
    """The seven legal bases HubSpot accepts for processing (GDPR)."""

    CONSENT_WITH_NOTICE = "CONSENT_WITH_NOTICE"
    LEGITIMATE_INTEREST_CLIENT = "LEGITIMATE_INTEREST_CLIENT"
    LEGITIMATE_INTEREST_OTHER = "LEGITIMATE_INTEREST_OTHER"
    LEGITIMATE_INTEREST_PQL = "LEGITIMATE_INTEREST_PQL"
    NON_GDPR = "NON_GDPR"
    PERFORMANCE_OF_CONTRACT = "PERFORMANCE_OF_CONTRACT"
    PROCESS_AND_STORE = "PROCESS_AND_STORE"


# -- fields ------------------------------------------------------------------------------------------------

SUBSCRIBER_ID_STRING: Final = "subscriberIdString"
SUBSCRIPTION_ID: Final = "subscriptionId"
STATUS_STATE: Final = "statusState"
CHANNEL: Final = "channel"
LEGAL_BASIS: Final = "legalBasis"
LEGAL_BASIS_EXPLANATION: Final = "legalBasisExplanation"
#: HubSpot's names of the batch-write input fields, in ``WriteRow`` order.
API_FIELDS: Final = (SUBSCRIBER_ID_STRING, SUBSCRIPTION_ID, STATUS_STATE, CHANNEL, LEGAL_BASIS, LEGAL_BASIS_EXPLANATION)
REQUIRED_FIELDS: Final = frozenset({SUBSCRIBER_ID_STRING, SUBSCRIPTION_ID, STATUS_STATE, CHANNEL})
#: Given together or not at all (HubSpot needs both when the account's GDPR settings are on).
LEGAL_BASIS_PAIR: Final = (LEGAL_BASIS, LEGAL_BASIS_EXPLANATION)
#: The channel of a write that names none.
DEFAULT_CHANNEL: Final = Channel.EMAIL.value
#: The allowed values of each enum field (accepted in any case, around white space).
ALLOWED: Final = MappingProxyType(
    {
        STATUS_STATE: tuple(s.value for s in StatusState),
        CHANNEL: tuple(c.value for c in Channel),
        LEGAL_BASIS: tuple(b.value for b in LegalBasis),
    }
)
#: Common spellings of each enum field's values -> the canonical value (the batch validator's fast path).
SPELLINGS: Final = MappingProxyType(
    {field: {s: v for v in values for s in (v, v.lower(), v.title())} for field, values in ALLOWED.items()}
)
#: HubSpot's field name -> the operator argument that gives it (``SetStatusOperator``).
ARGUMENT_OF_FIELD: Final = MappingProxyType(
    {
        SUBSCRIBER_ID_STRING: "subscriber_id",
        SUBSCRIPTION_ID: "subscription_id",
        STATUS_STATE: "status",
        CHANNEL: "channel",
        LEGAL_BASIS: "legal_basis",
        LEGAL_BASIS_EXPLANATION: "legal_basis_explanation",
    }
)

#: Deliberately simple: one ``@``, a non-empty local part, a dotted domain, no whitespace or control chars,
#: at most 254 characters. HubSpot is the authority; this only refuses what can never be an address.
EMAIL_RE: Final = re.compile(r"^[^@\s\x00-\x1f\x7f]{1,64}@[^@\s\x00-\x1f\x7f]+\.[^@\s\x00-\x1f\x7f.]+$")
EMAIL_MAX_LEN: Final = 254
#: ``subscriptionId`` is a positive int64.
SUBSCRIPTION_ID_MAX: Final = INT64_MAX
SUBSCRIPTION_ID_MESSAGE: Final = f"must be a positive whole number no greater than {SUBSCRIPTION_ID_MAX}"
#: The rule of :data:`LEGAL_BASIS_PAIR`, in the models' words.
PAIR_RULE: Final = f"{LEGAL_BASIS} and {LEGAL_BASIS_EXPLANATION} must be given together"


def is_valid_email(value: str) -> bool:
    """Return whether ``value`` looks like an e-mail address HubSpot could accept.

    :param value: the candidate subscriber id.
    """
    return len(value) <= EMAIL_MAX_LEN and EMAIL_RE.fullmatch(value) is not None


# -- problems ----------------------------------------------------------------------------------------------

#: What kind of rule a value broke: a bad value, a required field without one, half of
#: :data:`LEGAL_BASIS_PAIR`, or a column that is not accepted.
Kind = Literal["invalid", "missing", "pair", "unknown"]


class Problem(NamedTuple):
    """Why a value was refused.

    :param message: what is wrong (``"is not allowed"``).
    :param allowed: the allowed values, for enum fields.
    :param kind: which kind of rule was broken (callers branch on it, never on the message).
    """

    message: str
    allowed: tuple[str, ...] | None = None
    kind: Kind = "invalid"


class Invalid(ValueError):
    """A value broke a rule; :attr:`problem` says which (a ``ValueError``, so pydantic validators may raise it).

    :param problem: the problem.
    """

    def __init__(self, problem: Problem) -> None:
        allowed = "; allowed values: " + ", ".join(problem.allowed) if problem.allowed else ""
        super().__init__(problem.message + allowed)
        self.problem = problem


#: A required field without a value (``None`` or empty).
MISSING_VALUE: Final = Problem("is required but missing or empty", kind="missing")


def pair_problem(given: str, how: str = "is given") -> Problem:
    """Return the problem of the field of :data:`LEGAL_BASIS_PAIR` missing while ``given`` is there.

    :param given: the field of the pair that is given.
    :param how: how it is given (``"has a default"``).
    """
    return Problem(f"is required when {given} {how} ({PAIR_RULE})", kind="pair")


# -- checks ------------------------------------------------------------------------------------------------


def check_subscriber(value: Any) -> str:
    """Return the subscriber id stripped, or raise :class:`Invalid` when it is not an e-mail address.

    :param value: the raw value.
    """
    if not isinstance(value, str):
        raise Invalid(Problem(f"must be a string (an e-mail address), got {type(value).__name__}"))
    value = value.strip()
    if not is_valid_email(value):
        raise Invalid(Problem(f"is not an e-mail address ({SUBSCRIBER_ID_STRING} must be the contact's e-mail)"))
    return value


def check_enum(field: str, value: Any) -> str:
    """Return the canonical value of an enum field (``statusState``, ``channel``, ``legalBasis``).

    :param field: the API field.
    :param value: the raw value, any case, around white space.
    """
    allowed = ALLOWED[field]
    if not isinstance(value, str):
        raise Invalid(Problem(f"must be a string, got {type(value).__name__}", allowed))
    canonical = value.strip().upper()
    if canonical not in allowed:
        raise Invalid(Problem("is not allowed", allowed))
    return canonical


def check_explanation(value: Any) -> str:
    """Return a ``legalBasisExplanation``: a non-empty string.

    :param value: the raw value.
    """
    if isinstance(value, str) and value:
        return value
    got = "" if isinstance(value, str) else f", got {type(value).__name__}"
    raise Invalid(Problem(f"must be a non-empty string{got}"))


def refuse_bool_or_fraction(value: Any) -> Any:
    """Refuse ``True``/``False`` and fractional numbers where a whole number is expected; return the rest.

    :param value: the raw value (a ``subscriptionId`` before pydantic's int parser).
    """
    if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
        raise Invalid(Problem(SUBSCRIPTION_ID_MESSAGE))
    return value


def whole_number(value: Any, low: int, high: int, message: str | None = None) -> int:
    """Return ``value`` as an int between ``low`` and ``high`` (text like ``"10"`` is accepted).

    :param value: the raw value; ``True``/``False`` and fractions are refused.
    :param low: the smallest allowed value.
    :param high: the largest allowed value.
    :param message: the problem's message (default: ``must be a whole number between low and high``).
    """
    problem = Problem(message or f"must be a whole number between {low} and {high}")
    if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        raise Invalid(problem)
    try:
        number = int(value)
    except (ValueError, OverflowError):
        raise Invalid(problem) from None
    if (not isinstance(value, str) and number != value) or not low <= number <= high:
        raise Invalid(problem)
    return number


def check_business_unit_id(value: Any) -> int | None:
    """Return a brand id (``businessUnitId``, a whole number >= 0), or ``None`` for ``None``/empty.

    :param value: the raw value.
    """
    if value is None or value == "":
        return None
    return whole_number(value, 0, INT64_MAX, "must be a brand id, a whole number >= 0")


# -- row errors --------------------------------------------------------------------------------------------

_repr = reprlib.Repr()
_repr.maxstring = _repr.maxother = 80
_repr.maxlist = _repr.maxtuple = _repr.maxset = _repr.maxdict = 4
_VALUE_MAX: Final = 90
#: Stands for "no value was given" in :meth:`RowError.of`.
MISSING: Final[Any] = object()


def render_value(value: Any) -> str:
    """Return a short, repr-safe rendering of ``value`` (at most ~90 characters) for error messages.

    :param value: any input value.
    """
    text = _repr.repr(value)
    return text if len(text) <= _VALUE_MAX else text[: _VALUE_MAX - 3] + "..."


@dataclass(frozen=True, slots=True)
class RowError:
    """Why one field of one input row (or one ``defaults`` entry) was refused; build it with :meth:`of`.

    :param row: 1-based row number in input order (see :func:`~.batch.sources.iter_rows`); ``None`` for an
        entry of ``defaults``.
    :param field: the API field name, or the unknown column's name.
    :param value: short repr of the offending value (see :func:`render_value`); ``None`` when missing.
    :param message: what is wrong.
    :param allowed: the allowed values, for enum fields.
    :param column: the user's name of the field (its ``column_map`` source or ``subscriber_column``) when it
        is not the API field name.
    :param kind: which kind of rule was broken (see :class:`Problem`).
    """

    row: int | None
    field: str
    value: str | None
    message: str
    allowed: tuple[str, ...] | None = None
    column: str | None = None
    kind: Kind = "invalid"

    @classmethod
    def of(cls, row: int | None, field: str, problem: Problem, value: Any = MISSING, column: Any = None) -> RowError:
        """Build the error of ``field`` in ``row``: the one place a row error is made.

        :param row: the row number (``None``: a ``defaults`` entry).
        :param field: the API field (or the unknown column).
        :param problem: what is wrong.
        :param value: the value as given; leave out when none was.
        :param column: the column the value was read from (kept only when it differs from ``field``).
        """
        shown = None if value is MISSING else render_value(value)
        column = None if column is None or column == field else str(column)
        return cls(row, field, shown, problem.message, problem.allowed, column, problem.kind)

    def __str__(self) -> str:
        if self.row is None:
            where = f"defaults key {self.field!r}"
        elif self.column is not None:
            where = f"row {self.row}, column {self.column!r} ({self.field})"
        else:
            where = f"row {self.row}, field {self.field!r}"
        value = "" if self.value is None else f"value {self.value} "
        allowed = "; allowed values: " + ", ".join(self.allowed) if self.allowed else ""
        return f"{where}: {value}{self.message}{allowed}"

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-able dict (the shape of :attr:`HubCommValidationError.errors` entries)."""
        allowed = None if self.allowed is None else list(self.allowed)
        return {"row": self.row, "field": self.field, "value": self.value, "message": self.message, "allowed": allowed}


# -- argument errors ---------------------------------------------------------------------------------------


def argument_problem(
    argument: str, value: Any, detail: str | None, allowed: Any = None, *, given: bool = True
) -> dict[str, Any]:
    """Describe one bad operator argument (an entry of :attr:`HubCommValidationError.errors`).

    :param argument: the operator argument's name (``status``, ``batch_size``).
    :param value: the value as given.
    :param detail: what is wrong (``None``: the allowed values say it).
    :param allowed: the allowed values (accepted in any case), if it is an enum.
    :param given: whether a value was passed (then the message shows it).
    """
    message = f"invalid value {value!r}" if given else ""
    if detail:
        message += f": {detail}" if message else detail
    return {"row": None, "field": argument, "value": value if given else None, "message": message, "allowed": allowed}


def arguments_message(problems: list[dict[str, Any]]) -> str:
    """Return the message of an error listing bad operator arguments, one a line, in the user's words.

    :param problems: from :func:`argument_problem`.
    """
    lines = []
    for p in problems:
        allowed = f"; allowed values (any case): {', '.join(p['allowed'])}" if p["allowed"] else ""
        lines.append(f"{p['field']}: {p['message']}{allowed}")
    return "invalid arguments, nothing was sent:\n" + "\n".join(lines)
