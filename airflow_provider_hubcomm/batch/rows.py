"""Fast validation of batch-write input rows (the hot path of ``BatchWriteStatusesOperator``).

:class:`RowValidator` turns a raw row into a :class:`WriteRow` or a list of :class:`RowError`, with the rules of
:class:`~airflow_provider_hubcomm.models.StatusWrite` (cross-checked by the tests) after two pre-steps: a ``None``
value counts as absent (an empty CSV cell, a SQL ``NULL``), so ``defaults`` fill it and ``channel`` falls back to
``EMAIL``; and keys are API field names or ``column_map`` sources (pydantic's ``status_state``-style names are
unknown columns). Text fields accept ``str`` only. No pydantic per row, except for unusual ``subscriptionId``
values (padded strings, ``Decimal``), which go through pydantic's own int parser.
"""

from __future__ import annotations

import reprlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from json.encoder import encode_basestring_ascii as _esc
from typing import Any, Final, Literal, NamedTuple

from pydantic import TypeAdapter, ValidationError

from airflow_provider_hubcomm import models
from airflow_provider_hubcomm.constants import INT64_MAX
from airflow_provider_hubcomm.exceptions import HubCommValidationError
from airflow_provider_hubcomm.models import Channel, LegalBasis, StatusState, SubscriptionId, is_valid_email

__all__ = ["API_FIELDS", "RowError", "RowValidator", "WriteRow", "format_errors", "render_value"]

SUBSCRIBER_ID_STRING: Final = "subscriberIdString"
SUBSCRIPTION_ID: Final = "subscriptionId"
STATUS_STATE: Final = "statusState"
CHANNEL: Final = "channel"
LEGAL_BASIS: Final = "legalBasis"
LEGAL_BASIS_EXPLANATION: Final = "legalBasisExplanation"
#: HubSpot's names of the batch-write input fields, in :class:`WriteRow` order.
API_FIELDS: Final = (SUBSCRIBER_ID_STRING, SUBSCRIPTION_ID, STATUS_STATE, CHANNEL, LEGAL_BASIS, LEGAL_BASIS_EXPLANATION)
_REQUIRED: Final = frozenset({SUBSCRIBER_ID_STRING, SUBSCRIPTION_ID, STATUS_STATE, CHANNEL})
_PAIR: Final = (LEGAL_BASIS, LEGAL_BASIS_EXPLANATION)
_STATE_ALLOWED: Final = tuple(s.value for s in StatusState)
_CHANNEL_ALLOWED: Final = tuple(c.value for c in Channel)
_BASIS_ALLOWED: Final = tuple(b.value for b in LegalBasis)
_DEFAULT_CHANNEL: Final = Channel.EMAIL.value
#: Common spellings -> canonical value (the hot path); other spellings go through ``strip().upper()``.
_STATES: Final = {s: v for v in _STATE_ALLOWED for s in (v, v.lower(), v.title())}
_CHANNELS: Final = {s: v for v in _CHANNEL_ALLOWED for s in (v, v.lower(), v.title())}
_BASES: Final = {s: v for v in _BASIS_ALLOWED for s in (v, v.lower(), v.title())}
_SUBSCRIPTION_ID_ADAPTER: Final[TypeAdapter[int]] = TypeAdapter(SubscriptionId)
_SUBSCRIPTION_ID_MESSAGE: Final = f"must be a positive whole number no greater than {INT64_MAX}"
#: Floats below this are exact integers far from the int64 bound; bigger ones take pydantic's path.
_FLOAT_FAST_MAX: Final = 9.0e18
_repr = reprlib.Repr()
_repr.maxstring = _repr.maxother = 80
_repr.maxlist = _repr.maxtuple = _repr.maxset = _repr.maxdict = 4
_VALUE_MAX: Final = 90
#: :func:`is_valid_email` inlined on the hot path (length + this regex); the cross-check test guards it.
_email_fullmatch: Final = models._EMAIL_RE.fullmatch
_EMAIL_MAX_LEN: Final = models.EMAIL_MAX_LEN
_make_row: Callable[[type[WriteRow], tuple[Any, ...]], WriteRow] = tuple.__new__
#: Source key of a field that no column feeds: never a key of a user mapping, so ``raw.get`` gives ``None``.
_NO_COLUMN: Final = object()
_UNKNOWN_CACHE_MAX: Final = 1024


def render_value(value: Any) -> str:
    """Return a short, repr-safe rendering of ``value`` (at most ~90 characters) for error messages.

    :param value: any input value.
    """
    text = _repr.repr(value)
    return text if len(text) <= _VALUE_MAX else text[: _VALUE_MAX - 3] + "..."


class WriteRow(NamedTuple):
    """One validated batch-write input, canonical: enums upper-case, subscriber stripped."""

    subscriber: str
    subscription_id: int
    state: str
    channel: str
    legal_basis: str | None
    explanation: str | None

    @property
    def key(self) -> tuple[str, int]:
        """Dedupe key: subscriber lower-cased (addresses match case-insensitively) and subscription id."""
        return (self.subscriber.lower(), self.subscription_id)

    def to_api(self) -> dict[str, Any]:
        """Return the batch-write input with HubSpot's field names, omitting unset optional fields."""
        sub, sid, state, channel, basis, expl = self
        body = {SUBSCRIBER_ID_STRING: sub, SUBSCRIPTION_ID: sid, STATUS_STATE: state, CHANNEL: channel}
        if basis is not None:
            body[LEGAL_BASIS] = basis
        if expl is not None:
            body[LEGAL_BASIS_EXPLANATION] = expl
        return body

    def to_json(self) -> str:
        """Return :meth:`to_api` as compact JSON text, about 4x faster than ``json.dumps(row.to_api())``."""
        sub, sid, state, channel, basis, expl = self
        text = f'{{"subscriberIdString":{_esc(sub)},"subscriptionId":{sid:d},"statusState":{_esc(state)}'
        text += f',"channel":{_esc(channel)}'
        if basis is not None:
            text += f',"legalBasis":{_esc(basis)}'
        if expl is not None:
            text += f',"legalBasisExplanation":{_esc(expl)}'
        return text + "}"


@dataclass(frozen=True, slots=True)
class RowError:
    """Why one field of one input row was refused.

    :param row: 1-based row number in input order (see :func:`~.sources.iter_rows`).
    :param field: the API field name, or the unknown column's name.
    :param value: short repr of the offending value (see :func:`render_value`); ``None`` when missing.
    :param message: what is wrong.
    :param allowed: the allowed values, for enum fields.
    """

    row: int
    field: str
    value: str | None
    message: str
    allowed: tuple[str, ...] | None = None

    def __str__(self) -> str:
        value = "" if self.value is None else f"value {self.value} "
        allowed = "; allowed values: " + ", ".join(self.allowed) if self.allowed else ""
        return f"row {self.row}, field {self.field!r}: {value}{self.message}{allowed}"

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-able dict (the shape of :attr:`HubCommValidationError.errors` entries)."""
        allowed = None if self.allowed is None else list(self.allowed)
        return {"row": self.row, "field": self.field, "value": self.value, "message": self.message, "allowed": allowed}


def format_errors(errors: Sequence[RowError], total_bad: int, limit: int = 20) -> str:
    """Render row errors for a log or exception: the first ``limit``, one per line, then the rest counted.

    :param errors: the errors collected (possibly several per row, possibly only the first rows').
    :param total_bad: how many rows were invalid in total.
    :param limit: how many errors to print.
    """
    shown = errors[:limit]
    lines = [str(error) for error in shown]
    more_rows, more = total_bad - len({error.row for error in shown}), len(errors) - len(shown)
    if more_rows > 0:
        lines.append(f"… and {more_rows} more invalid row{'s' if more_rows != 1 else ''}")
    elif more > 0:
        lines.append(f"… and {more} more error{'s' if more != 1 else ''} in these rows")
    return "\n".join(lines)


class _Invalid(Exception):
    """Internal: a field value was refused; ``args`` are the message and the allowed values (or ``None``)."""


def _enum(value: Any, spellings: dict[str, str], allowed: tuple[str, ...]) -> str:
    if isinstance(value, str):
        canonical = spellings.get(value.strip().upper())
        if canonical is None:
            raise _Invalid("is not allowed", allowed)
        return canonical
    raise _Invalid(f"must be a string, got {type(value).__name__}", allowed)


def _subscriber(value: Any) -> str:
    if not isinstance(value, str):
        raise _Invalid(f"must be a string (an e-mail address), got {type(value).__name__}", None)
    value = value.strip()
    if not is_valid_email(value):
        raise _Invalid("is not an e-mail address (subscriberIdString must be the contact's e-mail)", None)
    return value


def _subscription_id(value: Any) -> int:
    """Refuse bool and fractional floats (like the model), then use pydantic's own int parser."""
    if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
        raise _Invalid(_SUBSCRIPTION_ID_MESSAGE, None)
    try:
        return _SUBSCRIPTION_ID_ADAPTER.validate_python(value)
    except ValidationError:
        raise _Invalid(_SUBSCRIPTION_ID_MESSAGE, None) from None


def _explanation(value: Any) -> str:
    if isinstance(value, str) and value:
        return value
    got = "" if isinstance(value, str) else f", got {type(value).__name__}"
    raise _Invalid(f"must be a non-empty string{got}", None)


_CHECKS: Final[dict[str, Callable[[Any], Any]]] = {
    SUBSCRIBER_ID_STRING: _subscriber,
    SUBSCRIPTION_ID: _subscription_id,
    STATUS_STATE: lambda v: _enum(v, _STATES, _STATE_ALLOWED),
    CHANNEL: lambda v: _enum(v, _CHANNELS, _CHANNEL_ALLOWED),
    LEGAL_BASIS: lambda v: _enum(v, _BASES, _BASIS_ALLOWED),
    LEGAL_BASIS_EXPLANATION: _explanation,
}


class RowValidator:
    """Validate raw rows into :class:`WriteRow` with ``StatusWrite`` semantics, without pydantic per row.

    ``defaults`` are keyed by **API field names** (not source columns) and fill a field that is absent or
    ``None`` after ``column_map``. ``legalBasis`` + ``legalBasisExplanation`` default as a pair, only into rows
    giving neither. ``subscriberIdString`` has no default. Defaults are checked here, before any row is read.

    Accepted columns are the ``column_map`` keys plus the API field names no ``column_map`` entry targets: a
    targeted field is read from its source column only, and its API-named column is then unknown.

    :param column_map: warehouse column -> API field name.
    :param defaults: API field name -> value used when a row does not give the field.
    :param extra_columns: ``"fail"``: a column that is not accepted is a row error; ``"ignore"``: drop it.
    :raises HubCommValidationError: on a bad ``column_map``, ``defaults`` or ``extra_columns``.
    """

    def __init__(
        self,
        column_map: Mapping[str, str] | None = None,
        defaults: Mapping[str, Any] | None = None,
        extra_columns: Literal["fail", "ignore"] = "fail",
    ) -> None:
        if extra_columns not in ("fail", "ignore"):
            raise HubCommValidationError(f"extra_columns must be 'fail' or 'ignore', got {extra_columns!r}")
        self.column_map: dict[str, str] = dict(column_map or {})
        self.extra_columns = extra_columns
        self._sources = self._resolve_sources(self.column_map)
        #: The columns a row may have, in API field order; ``defaults`` below are canonical.
        self.accepted_columns: tuple[str, ...] = tuple(s for s in self._sources.values() if s is not None)
        self._accepted = frozenset(self.accepted_columns)
        self.defaults: dict[str, Any] = self._validate_defaults(defaults or {})
        self._unknown_cache: dict[tuple[Any, ...], tuple[Any, ...]] = {}
        src, dft = self._sources, self.defaults
        self._plan: tuple[Any, ...] = (
            *(_NO_COLUMN if src[f] is None else src[f] for f in API_FIELDS),
            *(dft.get(f) for f in (SUBSCRIPTION_ID, STATUS_STATE)),
            dft.get(CHANNEL, _DEFAULT_CHANNEL),
            *(dft.get(f) for f in _PAIR),
            self._accepted if extra_columns == "fail" else None,
        )

    @staticmethod
    def _resolve_sources(column_map: dict[str, str]) -> dict[str, str | None]:
        problems: list[str] = []
        targeted: dict[str, str] = {}
        for column, field in column_map.items():
            if not isinstance(column, str) or not column:
                problems.append(f"column_map key {column!r} must be a non-empty column name")
            elif field not in API_FIELDS:
                problems.append(f"column_map[{column!r}] = {field!r} is not an API field")
            elif field in targeted:
                problems.append(f"columns {targeted[field]!r} and {column!r} are both mapped to {field!r}")
            else:
                targeted[field] = column
        if problems:
            message = "invalid column_map: " + "; ".join(problems) + "; allowed fields: " + ", ".join(API_FIELDS)
            errors = [
                {"row": None, "field": None, "value": None, "message": p, "allowed": list(API_FIELDS)} for p in problems
            ]
            raise HubCommValidationError(message, errors)
        # An API name used as another field's source column feeds that other field only.
        return {f: targeted.get(f, None if f in column_map else f) for f in API_FIELDS}

    def _validate_defaults(self, defaults: Mapping[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        problems: list[RowError] = []  # row 0: a default, not a row
        for field, value in defaults.items():
            if value is None:
                continue
            if field not in API_FIELDS:
                mapped = self.column_map.get(field)
                message = "is not an API field name" + (f" ({field!r} is mapped to {mapped!r})" if mapped else "")
                problems.append(RowError(0, str(field), None, f"{message}; use one of: {', '.join(API_FIELDS)}"))
            elif field == SUBSCRIBER_ID_STRING:
                problems.append(RowError(0, field, render_value(value), "cannot have a default"))
            else:
                try:
                    out[field] = _CHECKS[field](value)
                except _Invalid as exc:
                    problems.append(RowError(0, field, render_value(value), *exc.args))
        if not problems and (LEGAL_BASIS in out) != (LEGAL_BASIS_EXPLANATION in out):
            given, missing = _PAIR if LEGAL_BASIS in out else _PAIR[::-1]
            problems.append(RowError(0, missing, None, f"is required when {given} has a default (they go together)"))
        if problems:
            lines = "\n".join(str(p).replace("row 0, field", "defaults key", 1) for p in problems)
            raise HubCommValidationError(
                "invalid defaults:\n" + lines, [{**p.to_dict(), "row": None} for p in problems]
            )
        return out

    def validate(self, row_number: int, raw: Mapping[str, Any]) -> WriteRow | list[RowError]:
        """Validate one raw row.

        :param row_number: 1-based row number, used in errors.
        :param raw: column -> value; ``None`` values count as absent.
        :return: the canonical :class:`WriteRow` (a tuple), or a non-empty list of :class:`RowError`.
        """
        (s_sub, s_id, s_state, s_ch, s_basis, s_expl, d_id, d_state, d_ch, d_basis, d_expl, accepted) = self._plan
        get = raw.get
        sub = get(s_sub)
        # Fast path for the common valid shapes; anything unusual or wrong takes the full check. ``absent``
        # counts fields without a value: when the others make up all of ``raw``, no column is unknown.
        if type(sub) is str:
            sub = sub.strip()
            sid = get(s_id)
            state = get(s_state)
            channel = get(s_ch)
            basis: Any = get(s_basis)
            expl: Any = get(s_expl)
            absent = (sid is None) + (state is None) + (channel is None)
            if sid is None:
                sid = d_id
            if type(sid) is not int and (
                (type(sid) is str and sid.isdigit() and sid.isascii())
                or (type(sid) is float and sid.is_integer() and 0.0 < sid < _FLOAT_FAST_MAX)
            ):
                sid = int(sid)
            try:
                state = d_state if state is None else _STATES.get(state)
                channel = d_ch if channel is None else _CHANNELS.get(channel)
                if basis is None and expl is None:
                    absent += 2
                    basis, expl = d_basis, d_expl
                elif type(expl) is str and expl:
                    basis = _BASES.get(basis)
                else:
                    state = None  # half a pair, or a bad explanation: the full check says why
            except TypeError:  # an unhashable value (list, dict): the full check describes it
                state = None
            if (
                state is not None
                and channel is not None
                and (basis is not None or expl is None)
                and type(sid) is int
                and 0 < sid <= INT64_MAX
                and len(sub) <= _EMAIL_MAX_LEN
                and _email_fullmatch(sub)
                and (accepted is None or len(raw) == 6 - absent or raw.keys() <= accepted)
            ):
                return _make_row(WriteRow, (sub, sid, state, channel, basis, expl))
        return self._full_check(row_number, raw)

    def _unknown_columns(self, raw: Mapping[str, Any]) -> tuple[Any, ...]:
        """Columns of ``raw`` that are not accepted, computed once per distinct header."""
        header = tuple(raw)
        unknown = self._unknown_cache.get(header)
        if unknown is None:
            if len(self._unknown_cache) >= _UNKNOWN_CACHE_MAX:
                self._unknown_cache.clear()
            unknown = self._unknown_cache[header] = tuple(c for c in header if c not in self._accepted)
        return unknown

    def _unknown_error(self, row_number: int, column: Any) -> RowError:
        source = self._sources.get(column, column)
        why = f"unknown column ({column} is read from column {source!r} per column_map)" if source else ""
        why = why if source != column else "unknown column"
        allowed = ", ".join(self.accepted_columns)
        message = f"{why}; allowed: {allowed} (map it with column_map or pass extra_columns='ignore')"
        return RowError(row_number, column if isinstance(column, str) else repr(column), None, message)

    def _missing_error(self, row_number: int, field: str) -> RowError:
        source = self._sources[field]
        message = "is required but missing or empty"
        if source is None:
            message += f" (no column feeds it: column {field!r} is mapped to {self.column_map[field]!r})"
        elif source != field:
            message += f" (mapped from column {source!r})"
        return RowError(row_number, field, None, message)

    def _full_check(self, row_number: int, raw: Mapping[str, Any]) -> WriteRow | list[RowError]:
        """Check every field and collect every error (the slow path; it also accepts unusual valid values)."""
        errors: list[RowError] = []
        if self.extra_columns == "fail":
            errors.extend(self._unknown_error(row_number, c) for c in self._unknown_columns(raw))
        values = {f: None if s is None else raw.get(s) for f, s in self._sources.items()}
        if values[LEGAL_BASIS] is None and values[LEGAL_BASIS_EXPLANATION] is None:
            values.update({f: self.defaults.get(f) for f in _PAIR})
        for field in (SUBSCRIPTION_ID, STATUS_STATE, CHANNEL):
            if values[field] is None:
                values[field] = self.defaults.get(field, _DEFAULT_CHANNEL if field == CHANNEL else None)
        out: dict[str, Any] = dict.fromkeys(API_FIELDS)
        for field, value in values.items():
            if value is None:
                if field in _REQUIRED:
                    errors.append(self._missing_error(row_number, field))
                continue
            try:
                out[field] = _CHECKS[field](value)
            except _Invalid as exc:
                errors.append(RowError(row_number, field, render_value(value), *exc.args))
        if (values[LEGAL_BASIS] is None) != (values[LEGAL_BASIS_EXPLANATION] is None):
            given, missing = _PAIR if values[LEGAL_BASIS_EXPLANATION] is None else _PAIR[::-1]
            message = f"is required when {given} is given ({LEGAL_BASIS} and {LEGAL_BASIS_EXPLANATION} go together)"
            errors.append(RowError(row_number, missing, None, message))
        return errors or WriteRow(*(out[field] for field in API_FIELDS))
