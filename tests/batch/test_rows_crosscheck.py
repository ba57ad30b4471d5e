"""Cross-check: the fast RowValidator and pydantic's StatusWrite accept and refuse the same rows."""

from __future__ import annotations

import json
import random
from decimal import Decimal
from typing import Any

import pytest
from pydantic import ValidationError

from airflow_provider_hubcomm.batch.rows import RowValidator, WriteRow
from airflow_provider_hubcomm.models import StatusWrite

POOLS: dict[str, list[Any]] = {
    "subscriberIdString": [
        "a@b.co",
        " A.B@Example.COM ",
        "x+tag@sub.domain.org",
        "\tuser@ex.io\n",
        "ü@exämple.de",
        "a@b..co",
        "",
        " ",
        "no-at",
        "a@b",
        "a@@b.co",
        "a b@c.co",
        "a@b.c.",
        "x" * 65 + "@b.co",
        "a@" + "b" * 250 + ".co",
        "a\x00@b.co",
        "a@b.co\nx",
        "\u200b@b.co",
        5,
        None,
    ],
    "subscriptionId": [
        1,
        123,
        2**63 - 1,
        2**63,
        0,
        -5,
        "42",
        " 42 ",
        "0042",
        "1_000",
        "4.0",
        "4.5",
        "",
        "x",
        7.0,
        7.5,
        True,
        False,
        float("nan"),
        float("inf"),
        9.2e18,
        1e19,
        Decimal("3"),
        Decimal("3.5"),
        "\u0663",
        "1e3",
        "+3",
        None,
    ],
    "statusState": [
        "SUBSCRIBED",
        "subscribed",
        " Unsubscribed ",
        "not_specified",
        "NOT SPECIFIED",
        "SUBSCRIBD",
        "",
        1,
        None,
        "Not_Specified",
    ],
    "channel": ["EMAIL", "email", " Email ", "SMS", "", None, None, 0],
    "legalBasis": ["NON_GDPR", "consent_with_notice", " Legitimate_Interest_PQL", "GDPR", "", None, None, 3],
    "legalBasisExplanation": ["ok", " ", "", None, None, 5, "x" * 500],
}


def _reference(raw: dict[str, Any], defaults: dict[str, Any]) -> WriteRow | None:
    """What StatusWrite says, after the validator's documented pre-steps (None = absent, defaults)."""
    data = {k: v for k, v in raw.items() if v is not None}
    if "legalBasis" not in data and "legalBasisExplanation" not in data:
        data.update({k: defaults[k] for k in ("legalBasis", "legalBasisExplanation") if k in defaults})
    for key in ("subscriptionId", "statusState", "channel"):
        if key not in data and key in defaults:
            data[key] = defaults[key]
    try:
        model = StatusWrite.model_validate(data)
    except ValidationError:
        return None
    basis = None if model.legal_basis is None else model.legal_basis.value
    return WriteRow(
        model.subscriber_id_string,
        model.subscription_id,
        model.status_state.value,
        model.channel.value,
        basis,
        model.legal_basis_explanation,
    )


def _generate(rng: random.Random, count: int) -> list[dict[str, Any]]:
    """Rows where each field is usually fine (so valid rows and single faults are both frequent)."""
    rows = []
    for _ in range(count):
        raw: dict[str, Any] = {}
        pair = rng.random() < 0.4
        for field, pool in POOLS.items():
            if rng.random() < 0.2:
                value = rng.choice(pool)
            elif field in ("legalBasis", "legalBasisExplanation"):
                value = ("NON_GDPR" if field == "legalBasis" else "reason") if pair else None
            else:
                value = pool[rng.randrange(4)]  # the first four of each pool are good
            if value is not None or rng.random() < 0.5:
                raw[field] = value  # None: sometimes a None value, sometimes an absent key
        if rng.random() < 0.03:
            raw["unknown"] = "x"
        rows.append(raw)
    return rows


@pytest.mark.parametrize(
    "defaults",
    [
        {},
        {"subscriptionId": "9", "statusState": "unsubscribed", "channel": "email"},
        {"legalBasis": "NON_GDPR", "legalBasisExplanation": "default reason"},
    ],
)
def test_cross_check_against_status_write(defaults):
    rng = random.Random(20260324)
    validator = RowValidator(defaults=defaults)
    rows = _generate(rng, 6000)
    outcomes = {"valid": 0, "invalid": 0}
    for number, raw in enumerate(rows, 1):
        expected = _reference(raw, defaults)
        got = validator.validate(number, raw)
        if expected is None:
            assert isinstance(got, list), raw
            assert got
            assert all(e.row == number for e in got)
            outcomes["invalid"] += 1
        else:
            assert got == expected, raw
            assert type(got.subscription_id) is int
            outcomes["valid"] += 1
        # the fast path and the full check agree
        slow = validator._full_check(number, raw)
        assert slow == got
    assert outcomes["valid"] > 1000, outcomes
    assert outcomes["invalid"] > 1000, outcomes


def test_cross_check_api_dict_matches_model_dump():
    rng = random.Random(7)
    validator = RowValidator()
    checked = 0
    for number, raw in enumerate(_generate(rng, 3000), 1):
        got = validator.validate(number, raw)
        if isinstance(got, WriteRow):
            model = StatusWrite.model_validate({k: v for k, v in raw.items() if v is not None})
            assert got.to_api() == model.to_api()
            assert json.loads(got.to_json()) == model.to_api()
            checked += 1
    assert checked > 100


@pytest.mark.parametrize(
    ("field", "argument"), [("statusState", "status"), ("channel", "channel"), ("legalBasis", None)]
)
def test_the_validators_share_one_vocabulary(field: str, argument: str | None) -> None:
    """The model, the row validator and the operator's check refuse a bad enum value with the same allowed values."""
    from airflow_provider_hubcomm.exceptions import HubCommValidationError
    from airflow_provider_hubcomm.operators._arguments import check_status_arguments
    from airflow_provider_hubcomm.rules import ALLOWED

    allowed = ALLOWED[field]
    good = {"subscriberIdString": "a@b.co", "subscriptionId": 1, "statusState": "SUBSCRIBED"}
    bad = {**good, field: "nope", **({"legalBasisExplanation": "why"} if field == "legalBasis" else {})}
    with pytest.raises(ValidationError) as model_error:
        StatusWrite.model_validate(bad)
    assert "allowed values: " + ", ".join(allowed) in str(model_error.value)
    (row_error,) = RowValidator().validate(1, bad)  # type: ignore[misc]
    assert row_error.allowed == allowed
    arguments = {"subscriber_id": "a@b.co", "subscription_id": 1, "status": "SUBSCRIBED", "channel": "EMAIL"}
    arguments |= {"legal_basis": None, "legal_basis_explanation": None}
    if argument is None:
        arguments |= {"legal_basis": "nope", "legal_basis_explanation": "why"}
    else:
        arguments[argument] = "nope"
    with pytest.raises(HubCommValidationError) as operator_error:
        check_status_arguments(**arguments)
    assert operator_error.value.errors[0]["allowed"] == list(allowed)
