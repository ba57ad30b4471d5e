"""Subscriptions before any write: names resolved to ids, unknown and inactive ids found up front.

* :class:`NamingValidator` lets a row (or ``defaults``) name its subscription by its name (``Newsletter``)
  instead of its id; the name is resolved through the account's subscription catalog (read only when a
  name appears). An unknown or ambiguous name makes the row invalid with that reason.
* :func:`check_spool` reads the validated rows once more before the send pass: every distinct
  ``subscriptionId`` is looked up in the catalog, and the rows to send and to read are counted (for the
  plan and the single-call fallback's estimate). With ``on_invalid="fail"`` an unknown or inactive id stops
  the run before the first write (:func:`refusal` names rows, ids and the known subscriptions); with
  ``"skip"`` its rows are skipped as ``unknown_subscription``/``inactive_subscription``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from airflow_provider_hubcomm.batch.rows import RowValidator, defaults_error
from airflow_provider_hubcomm.exceptions import HubCommValidationError
from airflow_provider_hubcomm.rules import SUBSCRIPTION_ID, Problem, RowError

if TYPE_CHECKING:
    from airflow_provider_hubcomm.batch.rows import WriteRow
    from airflow_provider_hubcomm.batch.spool import Records
    from airflow_provider_hubcomm.hooks._catalog import SubscriptionCatalog

__all__ = ["NamingValidator", "Preflight", "check_spool", "refusal"]

#: Rows named in the refusal's message.
MAX_NAMED_ROWS = 20


def _is_name(value: Any) -> bool:
    return isinstance(value, str) and any(c.isalpha() for c in value)


class NamingValidator(RowValidator):
    """A :class:`RowValidator` that also accepts a subscription's name where its id is expected.

    :param column_map: warehouse column -> API field name.
    :param defaults: API field name -> default value (``subscriptionId`` may be a name).
    :param extra_columns: ``"fail"`` or ``"ignore"``.
    :param catalog: returns the account's subscription catalog (called at the first name).
    """

    def __init__(
        self,
        column_map: Mapping[str, str] | None,
        defaults: Mapping[str, Any] | None,
        extra_columns: Literal["fail", "ignore"],
        catalog: Callable[[], SubscriptionCatalog],
    ) -> None:
        self._catalog_loader = catalog
        self._names: dict[str, int | str] = {}
        defaults = dict(defaults or {})
        default = defaults.get(SUBSCRIPTION_ID)
        if isinstance(default, str) and _is_name(default):
            resolved = self._resolve(default)
            if isinstance(resolved, str):
                raise defaults_error([RowError.of(None, SUBSCRIPTION_ID, Problem(resolved), default)])
            defaults[SUBSCRIPTION_ID] = resolved
        super().__init__(column_map, defaults, extra_columns)
        targets = {target: column for column, target in (column_map or {}).items()}
        cmap = column_map or {}
        self._id_source: str | None = targets.get(SUBSCRIPTION_ID, None if SUBSCRIPTION_ID in cmap else SUBSCRIPTION_ID)

    def _resolve(self, name: str) -> int | str:
        """Return the id a name refers to, or the reason it refers to none (cached per name)."""
        from airflow_provider_hubcomm.hooks._catalog import SubscriptionLookupError

        key = name.strip().casefold()
        found = self._names.get(key)
        if found is None:
            try:
                found = self._catalog_loader().resolve(name).id
            except SubscriptionLookupError as err:
                found = f"{err.reason} subscription name: {err}"
            self._names[key] = found
        return found

    def _full_check(self, row_number: int, raw: Mapping[str, Any]) -> WriteRow | list[RowError]:
        """Resolve a subscription name in ``subscriptionId``, then validate the row with the id.

        A name (a string with a letter) never passes :meth:`RowValidator.validate`'s fast path, so every row
        naming a subscription arrives here; rows with ids keep the fast path without an extra call per row.

        :param row_number: 1-based row number.
        :param raw: column -> value.
        """
        source = self._id_source
        if source is not None:
            value = raw.get(source)
            if type(value) is str and _is_name(value):
                resolved = self._resolve(value)
                if isinstance(resolved, str):
                    return [RowError.of(row_number, SUBSCRIPTION_ID, Problem(resolved), value, source)]
                return RowValidator.validate(self, row_number, {**raw, source: resolved})
        return RowValidator._full_check(self, row_number, raw)


@dataclass
class Preflight:
    """What the send pass will meet.

    :param problems: subscription id -> ``(reason, message)`` for unknown and inactive ids.
    :param sendable: rows that are neither superseded duplicates nor refused by ``problems``.
    :param to_read: of those, rows that need a status read first (guard or ``only_changes``).
    :param refused: rows refused by ``problems``.
    """

    problems: dict[int, tuple[str, str]] = field(default_factory=dict)
    sendable: int = 0
    to_read: int = 0
    refused: int = 0


def check_spool(
    spool: Records, catalog: SubscriptionCatalog | None, needs_read: Callable[[WriteRow], bool]
) -> Preflight:
    """Look every distinct subscription id up in the catalog and count the rows to send and to read.

    :param spool: the validated rows.
    :param catalog: the account's subscriptions (``None``: unreadable, nothing is refused).
    :param needs_read: whether a row needs a status read before its write; it may depend on the row's
        subscription id and state only (it is asked once per distinct pair).
    """
    out = Preflight()
    # Rows are counted per (subscription id, state): the catalog is asked once per subscription id (a refusal
    # depends on it only) and ``needs_read`` once per pair, with the pair's first row.
    # A spool that can count them itself (the Parquet spool, in DuckDB) is not read back row by row.
    counted: Callable[[], dict[tuple[int, str], list[Any]]] | None = getattr(spool, "groups", None)
    groups: dict[tuple[int, str], list[Any]] = {} if counted is None else counted()
    for _, write, superseded in () if counted is not None else spool.records():
        if superseded:
            continue
        group = groups.get((write[1], write[2]))
        if group is None:
            groups[(write[1], write[2])] = [write, 1]
        else:
            group[1] += 1
    problems: dict[int, tuple[str, str] | None] = {}
    for (sid, _), (write, count) in groups.items():
        if sid not in problems:
            problems[sid] = catalog.problem(sid) if catalog is not None else None
        problem = problems[sid]
        if problem is not None:
            out.problems[sid] = problem
            out.refused += count
            continue
        out.sendable += count
        out.to_read += count if needs_read(write) else 0
    return out


def refusal(spool: Records, check: Preflight, catalog: SubscriptionCatalog) -> HubCommValidationError:
    """Build the error that stops a run with unknown or inactive subscriptions (``on_invalid="fail"``).

    :param spool: the validated rows.
    :param check: the preflight's findings.
    :param catalog: the account's subscriptions.
    """
    errors: list[dict[str, Any]] = []
    for row, write, superseded in spool.records():
        if superseded or write.subscription_id not in check.problems:
            continue
        reason, message = check.problems[write.subscription_id]
        errors.append(
            {
                "row": row,
                "field": SUBSCRIPTION_ID,
                "value": str(write.subscription_id),
                "message": f"{reason}: {message}",
                "allowed": [s.describe() for s in catalog if s.active][:MAX_NAMED_ROWS],
            }
        )
        if len(errors) >= MAX_NAMED_ROWS:
            break
    ids = "\n".join(f"subscription {sid}: {reason}: {message}" for sid, (reason, message) in check.problems.items())
    rows = ", ".join(str(e["row"]) for e in errors)
    more = check.refused - len(errors)
    return HubCommValidationError(
        f"{check.refused} rows name a subscription that cannot be written; nothing was sent (on_invalid='fail'; "
        f"pass on_invalid='skip' to send the other rows):\n{ids}\nrows: {rows}"
        + (f" … and {more} more" if more > 0 else ""),
        errors,
    )
