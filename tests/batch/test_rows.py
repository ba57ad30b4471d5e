from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest

from airflow_provider_hubcomm.batch.rows import API_FIELDS, RowError, RowValidator, WriteRow, format_errors
from airflow_provider_hubcomm.exceptions import HubCommValidationError

GOOD: dict[str, Any] = {"subscriberIdString": "a@b.co", "subscriptionId": 7, "statusState": "SUBSCRIBED"}
STATES = "SUBSCRIBED, UNSUBSCRIBED, NOT_SPECIFIED"


def ok(raw: dict[str, Any], validator: RowValidator | None = None) -> WriteRow:
    result = (validator or RowValidator()).validate(1, raw)
    assert isinstance(result, WriteRow), result
    return result


def bad(raw: dict[str, Any], validator: RowValidator | None = None, row: int = 3) -> list[RowError]:
    result = (validator or RowValidator()).validate(row, raw)
    assert isinstance(result, list), result
    assert result
    return result


def only(raw: dict[str, Any], validator: RowValidator | None = None) -> RowError:
    errors = bad(raw, validator)
    assert len(errors) == 1, errors
    return errors[0]


class TestWriteRow:
    def test_canonical_values_and_api_dict(self):
        row = ok({**GOOD, "subscriberIdString": "  Ann@Example.COM ", "statusState": " unsubscribed "})
        assert row == WriteRow("Ann@Example.COM", 7, "UNSUBSCRIBED", "EMAIL", None, None)
        assert row.to_api() == {
            "subscriberIdString": "Ann@Example.COM",
            "subscriptionId": 7,
            "statusState": "UNSUBSCRIBED",
            "channel": "EMAIL",
        }
        assert row.key == ("ann@example.com", 7)

    def test_api_dict_with_legal_basis(self):
        row = ok({**GOOD, "legalBasis": "consent_with_notice", "legalBasisExplanation": "web form"})
        assert row.to_api() == {
            "subscriberIdString": "a@b.co",
            "subscriptionId": 7,
            "statusState": "SUBSCRIBED",
            "channel": "EMAIL",
            "legalBasis": "CONSENT_WITH_NOTICE",
            "legalBasisExplanation": "web form",
        }

    @pytest.mark.parametrize(
        "row",
        [
            WriteRow("a@b.co", 1, "SUBSCRIBED", "EMAIL", None, None),
            WriteRow('q"u\\o@b.co', 2**63 - 1, "UNSUBSCRIBED", "EMAIL", "NON_GDPR", 'Sa\u00efd "yes"\n\u2028'),
            WriteRow("a@b.co", 1, "SUBSCRIBED", "EMAIL", "NON_GDPR", None),
            WriteRow("a@b.co", 1, "SUBSCRIBED", "EMAIL", None, "why"),
        ],
    )
    def test_to_json_is_the_api_dict(self, row):
        text = row.to_json()
        assert json.loads(text) == row.to_api()
        assert text == json.dumps(row.to_api(), separators=(",", ":"))

    def test_to_api_omits_each_none_field_separately(self):
        row = WriteRow("a@b.co", 1, "SUBSCRIBED", "EMAIL", "NON_GDPR", None)
        assert row.to_api()["legalBasis"] == "NON_GDPR"
        assert "legalBasisExplanation" not in row.to_api()


class TestFieldRules:
    @pytest.mark.parametrize("spelling", ["SUBSCRIBED", "subscribed", " Subscribed\t", "sUbScRiBeD", "\u017fubscribed"])
    def test_state_case_insensitive(self, spelling):
        assert ok({**GOOD, "statusState": spelling}).state == "SUBSCRIBED"

    def test_state_not_allowed_names_row_field_value_and_allowed(self):
        error = only({**GOOD, "statusState": "SUBSCRIBD"})
        assert str(error) == (f"row 3, field 'statusState': value 'SUBSCRIBD' is not allowed; allowed values: {STATES}")
        assert error.allowed == ("SUBSCRIBED", "UNSUBSCRIBED", "NOT_SPECIFIED")
        assert error.to_dict() == {
            "row": 3,
            "field": "statusState",
            "value": "'SUBSCRIBD'",
            "message": "is not allowed",
            "allowed": ["SUBSCRIBED", "UNSUBSCRIBED", "NOT_SPECIFIED"],
        }

    def test_state_non_string(self):
        error = only({**GOOD, "statusState": 1})
        assert "must be a string, got int" in str(error)
        assert error.allowed is not None

    @pytest.mark.parametrize("value", [None, "email", " EMAIL "])
    def test_channel_defaults_to_email_and_is_case_insensitive(self, value):
        raw = dict(GOOD) if value is None else {**GOOD, "channel": value}
        assert ok(raw).channel == "EMAIL"

    def test_channel_not_allowed(self):
        assert str(only({**GOOD, "channel": "SMS"})) == (
            "row 3, field 'channel': value 'SMS' is not allowed; allowed values: EMAIL"
        )

    @pytest.mark.parametrize(
        ("value", "expected"),
        [
            (123, 123),
            ("123", 123),
            (" 123 ", 123),
            ("00123", 123),
            ("+7", 7),
            ("1_000", 1000),
            ("123.0", 123),
            (123.0, 123),
            (Decimal("5"), 5),
            (2**63 - 1, 2**63 - 1),
            (str(2**63 - 1), 2**63 - 1),
        ],
    )
    def test_subscription_id_accepted(self, value, expected):
        assert ok({**GOOD, "subscriptionId": value}).subscription_id == expected

    @pytest.mark.parametrize(
        "value", [0, -1, "0", "-4", True, False, 12.5, "12.5", "abc", "", "1e3", 2**63, str(2**63), float("nan"), [1]]
    )
    def test_subscription_id_refused(self, value):
        error = only({**GOOD, "subscriptionId": value})
        assert error.field == "subscriptionId"
        assert error.row == 3
        assert error.value == repr(value)
        assert "positive whole number no greater than 9223372036854775807" in str(error)

    def test_subscriber_is_stripped_and_checked(self):
        assert ok({**GOOD, "subscriberIdString": "\t x@y.org \n"}).subscriber == "x@y.org"
        error = only({**GOOD, "subscriberIdString": "not-an-email"})
        assert str(error).startswith("row 3, field 'subscriberIdString': value 'not-an-email' is not an e-mail")

    @pytest.mark.parametrize("value", [5, b"a@b.co"])
    def test_subscriber_must_be_text(self, value):
        # bytes are refused here although StatusWrite lets them through unchecked (see module docstring)
        error = only({**GOOD, "subscriberIdString": value})
        assert "must be a string" in error.message

    @pytest.mark.parametrize("field", ["subscriberIdString", "subscriptionId", "statusState"])
    @pytest.mark.parametrize("how", ["absent", "none"])
    def test_required_fields(self, field, how):
        raw = dict(GOOD)
        if how == "absent":
            del raw[field]
        else:
            raw[field] = None
        error = only(raw)
        assert (error.field, error.value) == (field, None)
        assert str(error) == f"row 3, field '{field}': is required but missing or empty"

    def test_legal_basis_without_explanation_names_both(self):
        error = only({**GOOD, "legalBasis": "NON_GDPR"})
        assert error.field == "legalBasisExplanation"
        assert error.message.startswith("is required when legalBasis is given")

    def test_explanation_without_legal_basis_names_both(self):
        error = only({**GOOD, "legalBasisExplanation": "because"})
        assert error.field == "legalBasis"
        assert "legalBasisExplanation" in error.message

    def test_empty_explanation(self):
        error = only({**GOOD, "legalBasis": "NON_GDPR", "legalBasisExplanation": ""})
        assert (error.field, error.message) == ("legalBasisExplanation", "must be a non-empty string")

    def test_explanation_must_be_text(self):
        error = only({**GOOD, "legalBasis": "NON_GDPR", "legalBasisExplanation": 5})
        assert error.message == "must be a non-empty string, got int"

    def test_legal_basis_allowed_values_listed(self):
        error = only({**GOOD, "legalBasis": "GDPR", "legalBasisExplanation": "x"})
        assert error.allowed is not None
        assert len(error.allowed) == 7
        assert "allowed values: CONSENT_WITH_NOTICE, LEGITIMATE_INTEREST_CLIENT" in str(error)

    def test_every_error_of_a_row_is_reported(self):
        errors = bad({"subscriberIdString": "x", "subscriptionId": "y", "statusState": "z", "channel": "w"})
        assert [e.field for e in errors] == ["subscriberIdString", "subscriptionId", "statusState", "channel"]

    def test_huge_value_is_truncated_in_the_message(self):
        error = only({**GOOD, "subscriberIdString": "x" * 10_000_000})
        assert error.value is not None
        assert len(error.value) <= 90
        assert len(str(error)) < 250

    def test_unhashable_values_are_described(self):
        error = only({**GOOD, "statusState": ["SUBSCRIBED"]})
        assert error.value == "['SUBSCRIBED']"


class TestColumns:
    def test_unknown_column_fails_with_hint(self):
        error = only({**GOOD, "email_hash": "abc"})
        assert error.field == "email_hash"
        assert error.message.startswith("unknown column; allowed: subscriberIdString, subscriptionId, statusState")
        assert "map it with column_map or pass extra_columns='ignore'" in error.message

    def test_unknown_column_is_ignored_on_request(self):
        validator = RowValidator(extra_columns="ignore")
        assert ok({**GOOD, "email_hash": "abc", "x": None}, validator).subscriber == "a@b.co"

    def test_unknown_columns_are_computed_once_per_header(self):
        validator = RowValidator()
        for n in range(1, 500):
            assert isinstance(validator.validate(n, {**GOOD, "extra": n}), list)
        validator.validate(1, {"extra": 1, **GOOD})  # another key order: another header
        assert len(validator._unknown_cache) == 2

    def test_none_valued_api_columns_are_not_unknown(self):
        assert ok({**GOOD, "legalBasis": None, "legalBasisExplanation": None, "channel": None}).channel == "EMAIL"

    def test_bad_extra_columns_value(self):
        with pytest.raises(HubCommValidationError, match="extra_columns must be 'fail' or 'ignore'"):
            RowValidator(extra_columns="drop")  # type: ignore[arg-type]

    def test_column_map(self):
        validator = RowValidator(column_map={"email": "subscriberIdString", "state": "statusState"})
        row = ok({"email": "a@b.co", "subscriptionId": 1, "state": "unsubscribed"}, validator)
        assert (row.subscriber, row.state) == ("a@b.co", "UNSUBSCRIBED")
        assert validator.accepted_columns == (
            "email",
            "subscriptionId",
            "state",
            "channel",
            "legalBasis",
            "legalBasisExplanation",
        )

    def test_column_map_missing_source_names_the_column(self):
        validator = RowValidator(column_map={"email": "subscriberIdString"})
        error = only({"subscriptionId": 1, "statusState": "SUBSCRIBED"}, validator)
        assert str(error) == "row 3, column 'email' (subscriberIdString): is required but missing or empty"
        assert (error.field, error.column, error.kind) == ("subscriberIdString", "email", "missing")

    def test_a_mapped_column_is_named_with_its_api_field(self):
        validator = RowValidator(column_map={"state": "statusState"})
        raw = {"subscriberIdString": "a@b.co", "subscriptionId": 1, "state": "SUBSCRIBD"}
        error = only(raw, validator)
        assert str(error) == (
            f"row 3, column 'state' (statusState): value 'SUBSCRIBD' is not allowed; allowed values: {STATES}"
        )
        assert error.to_dict()["field"] == "statusState"

    def test_mapped_api_name_becomes_unknown(self):
        validator = RowValidator(column_map={"email": "subscriberIdString"})
        errors = bad({**GOOD, "email": "c@d.co"}, validator)
        assert [e.field for e in errors] == ["subscriberIdString"]
        assert "read from column 'email' per column_map" in errors[0].message

    def test_api_name_used_as_source_of_another_field(self):
        validator = RowValidator(column_map={"channel": "legalBasisExplanation", "basis": "legalBasis"})
        row = ok({**GOOD, "channel": "signed contract", "basis": "PERFORMANCE_OF_CONTRACT"}, validator)
        assert (row.channel, row.explanation) == ("EMAIL", "signed contract")

    @pytest.mark.parametrize(
        ("column_map", "text"),
        [
            ({"email": "subscriber"}, "column_map['email'] = 'subscriber' is not an API field"),
            ({"a": "statusState", "b": "statusState"}, "columns 'a' and 'b' are both mapped to 'statusState'"),
            ({"": "statusState"}, "must be a non-empty column name"),
        ],
    )
    def test_bad_column_map(self, column_map, text):
        with pytest.raises(HubCommValidationError) as info:
            RowValidator(column_map=column_map)
        assert text in str(info.value)
        assert "allowed fields: " + ", ".join(API_FIELDS) in str(info.value)
        assert info.value.errors[0]["allowed"] == list(API_FIELDS)


class TestDefaults:
    def test_defaults_fill_absent_and_none_and_are_canonical(self):
        validator = RowValidator(defaults={"statusState": " unsubscribed", "subscriptionId": "42"})
        row = ok({"subscriberIdString": "a@b.co", "statusState": None}, validator)
        assert (row.state, row.subscription_id) == ("UNSUBSCRIBED", 42)
        assert validator.defaults == {"statusState": "UNSUBSCRIBED", "subscriptionId": 42}

    def test_row_values_win_over_defaults(self):
        validator = RowValidator(defaults={"statusState": "UNSUBSCRIBED"})
        assert ok(GOOD, validator).state == "SUBSCRIBED"

    def test_bad_default_fails_at_construction(self):
        with pytest.raises(HubCommValidationError) as info:
            RowValidator(defaults={"statusState": "SUBSCRIBD", "subscriptionId": -1})
        message = str(info.value)
        assert f"defaults key 'statusState': value 'SUBSCRIBD' is not allowed; allowed values: {STATES}" in message
        assert "defaults key 'subscriptionId': value -1 must be a positive whole number" in message
        assert [e["field"] for e in info.value.errors] == ["statusState", "subscriptionId"]
        assert info.value.errors[0]["row"] is None

    def test_default_keys_are_api_names(self):
        with pytest.raises(
            HubCommValidationError, match=r"key 'state': is not an API field name \('state' is mapped to"
        ):
            RowValidator(column_map={"state": "statusState"}, defaults={"state": "SUBSCRIBED"})
        with pytest.raises(
            HubCommValidationError, match="key 'status': is not an API field name; use one of: subscriberIdString, "
        ):
            RowValidator(defaults={"status": "SUBSCRIBED"})

    def test_subscriber_cannot_have_a_default(self):
        with pytest.raises(HubCommValidationError, match="cannot have a default"):
            RowValidator(defaults={"subscriberIdString": "a@b.co"})

    def test_legal_basis_defaults_come_as_a_pair(self):
        with pytest.raises(HubCommValidationError, match="'legalBasisExplanation': is required when legalBasis"):
            RowValidator(defaults={"legalBasis": "NON_GDPR"})

    def test_pair_default_fills_only_rows_that_give_neither(self):
        validator = RowValidator(defaults={"legalBasis": "non_gdpr", "legalBasisExplanation": "US contact"})
        assert ok(GOOD, validator)[4:] == ("NON_GDPR", "US contact")
        own = ok({**GOOD, "legalBasis": "CONSENT_WITH_NOTICE", "legalBasisExplanation": "form"}, validator)
        assert own[4:] == ("CONSENT_WITH_NOTICE", "form")
        error = only({**GOOD, "legalBasis": "CONSENT_WITH_NOTICE"}, validator)
        assert error.field == "legalBasisExplanation"

    def test_none_default_means_no_default(self):
        validator = RowValidator(defaults={"statusState": None})
        assert only({"subscriberIdString": "a@b.co", "subscriptionId": 1}, validator).field == "statusState"


def test_format_errors():
    errors = [RowError(n, "statusState", "'x'", "is not allowed", ("A", "B")) for n in range(1, 31)]
    text = format_errors(errors, total_bad=30, limit=20)
    lines = text.splitlines()
    assert len(lines) == 21
    assert lines[0] == "row 1, field 'statusState': value 'x' is not allowed; allowed values: A, B"
    assert lines[-1] == "… and 10 more invalid rows"
    assert format_errors(errors[:2], total_bad=3, limit=20).splitlines()[-1] == "… and 1 more invalid row"
    assert format_errors(errors[:2], total_bad=2) == "\n".join(str(e) for e in errors[:2])
    same_row = [RowError(1, f, None, "is required but missing or empty") for f in API_FIELDS[:3]]
    assert format_errors(same_row, total_bad=1, limit=1).splitlines()[-1] == "… and 2 more errors in these rows"
