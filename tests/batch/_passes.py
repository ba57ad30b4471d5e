"""What the tests comparing the row path with a vectorised pass compare: a validation pass's outcome."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow_provider_hubcomm.batch.spool import ValidationPass

#: The validator configurations every comparison runs under, by test id.
VALIDATOR_CONFIGS: dict[str, dict[str, Any]] = {
    "plain": {},
    "id+state-defaults": {"defaults": {"subscriptionId": 77, "statusState": "UNSUBSCRIBED"}},
    "pair-default": {"defaults": {"legalBasis": "LEGITIMATE_INTEREST_CLIENT", "legalBasisExplanation": "default why"}},
    "ignore-extra": {"defaults": {"channel": "EMAIL"}, "extra_columns": "ignore"},
}


def clean_rows(n: int) -> list[dict[str, Any]]:
    """Return ``n`` rows of the shape the vectorised checks pass whole (to spoil a few, and see which ones the
    row-by-row validator is called for)."""
    return [
        {"subscriberIdString": f"c{i}@example.com", "subscriptionId": 100 + i % 3, "statusState": "SUBSCRIBED"}
        for i in range(n)
    ]


def pass_outcome(checked: ValidationPass, invalid: list[Any], **extra: Any) -> dict[str, Any]:
    """Return a pass's counts, errors, invalid-row callbacks, unseen keys and spooled rows (the spool closed).

    :param checked: the pass's result.
    :param invalid: the invalid-row callbacks it made.
    :param extra: more entries to compare.
    """
    records = None
    if checked.spool is not None:
        records = list(checked.spool.records())
        checked.spool.close()
    return {
        "counts": (checked.rows_read, checked.valid, checked.invalid),
        "errors": [str(e) for e in checked.errors],
        "invalid": invalid,
        "unseen": sorted(checked.columns_unseen),
        "records": records,
        **extra,
    }
