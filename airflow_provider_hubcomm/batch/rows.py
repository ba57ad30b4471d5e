"""Fast validation of batch-write input rows (the hot path of ``BatchWriteStatusesOperator``).

:class:`RowValidator` turns a raw row into a :class:`WriteRow` or a list of :class:`RowError`, with the rules of
:mod:`~airflow_provider_hubcomm.rules` (the checks :class:`~airflow_provider_hubcomm.models.StatusWrite` runs
too; the tests cross-check both) after two pre-steps: a ``None`` value counts as absent (an empty CSV cell, a
SQL ``NULL``), so ``defaults`` fill it and ``channel`` falls back to ``EMAIL``; and keys are API field names or
``column_map`` sources (pydantic's ``status_state``-style names are unknown columns). Text fields accept
``str`` only. No pydantic per row, except for unusual ``subscriptionId`` values (padded strings,
``Decimal``), which go through pydantic's own int parser. Errors name the row, the field (and the user's
column when ``column_map`` renames it), the value and the allowed values.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from json.encoder import encode_basestring_ascii as _esc
from typing import Any, Final, Literal, NamedTuple

from pydantic import TypeAdapter, ValidationError

from airflow_provider_hubcomm.exceptions import HubCommValidationError
from airflow_provider_hubcomm.models import SubscriptionId
from airflow_provider_hubcomm.rules import (
    API_FIELDS,
    CHANNEL,
    DEFAULT_CHANNEL,
    EMAIL_MAX_LEN,
    EMAIL_RE,
    LEGAL_BASIS,
    LEGAL_BASIS_EXPLANATION,
    LEGAL_BASIS_PAIR,
    MISSING_VALUE,
    REQUIRED_FIELDS,
    SPELLINGS,
    STATUS_STATE,
    SUBSCRIBER_ID_STRING,
    SUBSCRIPTION_ID,
    SUBSCRIPTION_ID_MAX,
    SUBSCRIPTION_ID_MESSAGE,
    Invalid,
    Problem,
    RowError,
    check_enum,
    check_explanation,
    check_subscriber,
    pair_problem,
    refuse_bool_or_fraction,
    render_value,
)

__all__ = [
    "API_FIELDS",
    "STATUS_STATE",
    "SUBSCRIBER_ID_STRING",
    "SUBSCRIPTION_ID",
    "RowError",
    "RowValidator",
    "WriteRow",
    "defaults_error",
    "format_errors",
    "render_value",
]

_STATES: Final = SPELLINGS[STATUS_STATE]
_CHANNELS: Final = SPELLINGS[CHANNEL]
_BASES: Final = SPELLINGS[LEGAL_BASIS]
_SUBSCRIPTION_ID_ADAPTER: Final[TypeAdapter[int]] = TypeAdapter(SubscriptionId)
#: Floats below this are exact integers far from the int64 bound; bigger ones take pydantic's path.
_FLOAT_FAST_MAX: Final = 9.0e18
#: :func:`~.rules.is_valid_email` inlined on the hot path (length + this regex); the cross-check test guards it.
_email_fullmatch: Final = EMAIL_RE.fullmatch
_make_row: Callable[[type[WriteRow], tuple[Any, ...]], WriteRow] = tuple.__new__
#: Source key of a field that no column feeds: never a key of a user mapping, so ``raw.get`` gives ``None``.
_NO_COLUMN: Final = object()
_UNKNOWN_CACHE_MAX: Final = 1024


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
        tail = _JSON_TAILS.get((state, channel, basis))
        if tail is None:
            tail = f',"statusState":{_esc(state)},"channel":{_esc(channel)}'
            if basis is not None:
                tail += f',"legalBasis":{_esc(basis)}'
        if expl is None:
            return f'{{"subscriberIdString":{_esc(sub)},"subscriptionId":{sid:d}{tail}}}'
        head = f'{{"subscriberIdString":{_esc(sub)},"subscriptionId":{sid:d}{tail}'
        return f'{head},"legalBasisExplanation":{_esc(expl)}}}'


#: The JSON of the enum fields of :meth:`WriteRow.to_json` for every canonical combination, built once.
_JSON_TAILS: Final[dict[tuple[str, str, str | None], str]] = {
    (state, channel, basis): f',"statusState":{_esc(state)},"channel":{_esc(channel)}'
    + ("" if basis is None else f',"legalBasis":{_esc(basis)}')
    for state in set(_STATES.values())
    for channel in set(_CHANNELS.values())
    for basis in (None, *set(_BASES.values()))
}


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


def defaults_error(problems: Sequence[RowError]) -> HubCommValidationError:
    """Return the error refusing a run's ``defaults``, one line per bad entry.

    :param problems: the bad entries (row errors with ``row=None``).
    """
    lines = "\n".join(str(p) for p in problems)
    return HubCommValidationError("invalid defaults:\n" + lines, [p.to_dict() for p in problems])


def _subscription_id(value: Any) -> int:
    """Refuse bool and fractional floats (like the model), then use pydantic's own int parser."""
    refuse_bool_or_fraction(value)
    try:
        return _SUBSCRIPTION_ID_ADAPTER.validate_python(value)
    except ValidationError:
        raise Invalid(Problem(SUBSCRIPTION_ID_MESSAGE)) from None


#: The check of each API field: the rules' own functions.
_CHECKS: Final[dict[str, Callable[[Any], Any]]] = {
    SUBSCRIBER_ID_STRING: check_subscriber,
    SUBSCRIPTION_ID: _subscription_id,
    STATUS_STATE: functools.partial(check_enum, STATUS_STATE),
    CHANNEL: functools.partial(check_enum, CHANNEL),
    LEGAL_BASIS: functools.partial(check_enum, LEGAL_BASIS),
    LEGAL_BASIS_EXPLANATION: check_explanation,
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
        #: The input column the subscriber id is read from (``None``: no column gives it).
        self.subscriber_column: str | None = self._sources[SUBSCRIBER_ID_STRING]
        #: The columns a row may have, in API field order; ``defaults`` below are canonical.
        self.accepted_columns: tuple[str, ...] = tuple(s for s in self._sources.values() if s is not None)
        self._accepted = frozenset(self.accepted_columns)
        self.defaults: dict[str, Any] = self._validate_defaults(defaults or {})
        self._unknown_cache: dict[tuple[Any, ...], tuple[Any, ...]] = {}
        src, dft = self._sources, self.defaults
        self._plan: tuple[Any, ...] = (
            *(_NO_COLUMN if src[f] is None else src[f] for f in API_FIELDS),
            *(dft.get(f) for f in (SUBSCRIPTION_ID, STATUS_STATE)),
            dft.get(CHANNEL, DEFAULT_CHANNEL),
            *(dft.get(f) for f in LEGAL_BASIS_PAIR),
            self._accepted if extra_columns == "fail" else None,
        )

    @property
    def sources(self) -> dict[str, str | None]:
        """API field -> the input column it is read from (``None``: no column gives it)."""
        return dict(self._sources)

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
        problems: list[RowError] = []  # row None: a default, not a row
        for field, value in defaults.items():
            if value is None:
                continue
            if field not in API_FIELDS:
                mapped = self.column_map.get(field)
                message = "is not an API field name" + (f" ({field!r} is mapped to {mapped!r})" if mapped else "")
                unknown = Problem(f"{message}; use one of: {', '.join(API_FIELDS)}", kind="unknown")
                problems.append(RowError.of(None, str(field), unknown))
            elif field == SUBSCRIBER_ID_STRING:
                problems.append(RowError.of(None, field, Problem("cannot have a default"), value))
            else:
                try:
                    out[field] = _CHECKS[field](value)
                except Invalid as exc:
                    problems.append(RowError.of(None, field, exc.problem, value))
        if not problems and (LEGAL_BASIS in out) != (LEGAL_BASIS_EXPLANATION in out):
            given, missing = LEGAL_BASIS_PAIR if LEGAL_BASIS in out else LEGAL_BASIS_PAIR[::-1]
            problems.append(RowError.of(None, missing, pair_problem(given, "has a default")))
        if problems:
            raise defaults_error(problems)
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
                and 0 < sid <= SUBSCRIPTION_ID_MAX
                and len(sub) <= EMAIL_MAX_LEN
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
        name = column if isinstance(column, str) else repr(column)
        return RowError.of(row_number, name, Problem(message, kind="unknown"))

    def _missing_error(self, row_number: int, field: str) -> RowError:
        source = self._sources[field]
        problem = MISSING_VALUE
        if source is None:
            why = f" (no column feeds it: column {field!r} is mapped to {self.column_map[field]!r})"
            problem = problem._replace(message=problem.message + why)
        return RowError.of(row_number, field, problem, column=source)

    def _full_check(self, row_number: int, raw: Mapping[str, Any]) -> WriteRow | list[RowError]:
        """Check every field and collect every error (the slow path; it also accepts unusual valid values)."""
        errors: list[RowError] = []
        if self.extra_columns == "fail":
            errors.extend(self._unknown_error(row_number, c) for c in self._unknown_columns(raw))
        values = {f: None if s is None else raw.get(s) for f, s in self._sources.items()}
        if values[LEGAL_BASIS] is None and values[LEGAL_BASIS_EXPLANATION] is None:
            values.update({f: self.defaults.get(f) for f in LEGAL_BASIS_PAIR})
        for field in (SUBSCRIPTION_ID, STATUS_STATE, CHANNEL):
            if values[field] is None:
                values[field] = self.defaults.get(field, DEFAULT_CHANNEL if field == CHANNEL else None)
        out: dict[str, Any] = dict.fromkeys(API_FIELDS)
        for field, value in values.items():
            if value is None:
                if field in REQUIRED_FIELDS:
                    errors.append(self._missing_error(row_number, field))
                continue
            try:
                out[field] = _CHECKS[field](value)
            except Invalid as exc:
                errors.append(RowError.of(row_number, field, exc.problem, value, self._sources[field]))
        if (values[LEGAL_BASIS] is None) != (values[LEGAL_BASIS_EXPLANATION] is None):
            pair = LEGAL_BASIS_PAIR if values[LEGAL_BASIS_EXPLANATION] is None else LEGAL_BASIS_PAIR[::-1]
            given, missing = pair
            errors.append(RowError.of(row_number, missing, pair_problem(given), column=self._sources[missing]))
        return errors or WriteRow(*(out[field] for field in API_FIELDS))
