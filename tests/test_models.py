from __future__ import annotations

import pytest
from pydantic import ValidationError

from airflow_provider_hubcomm.models import BatchWriteResponse, LegalBasis, StatusUpdate, StatusWrite, is_valid_email


class TestStatusWrite:
    def test_case_insensitive_enums_and_api_dump(self) -> None:
        row = StatusWrite(
            subscriberIdString=" Jane@Example.com ",
            subscriptionId="42",
            statusState=" unsubscribed",
            legalBasis="consent_with_notice",
            legalBasisExplanation="form 7",
            channel="email",
        )
        assert row.to_api() == {
            "channel": "EMAIL",
            "statusState": "UNSUBSCRIBED",
            "subscriptionId": 42,
            "legalBasis": "CONSENT_WITH_NOTICE",
            "legalBasisExplanation": "form 7",
            "subscriberIdString": "Jane@Example.com",
        }

    @pytest.mark.parametrize(
        ("field", "value", "needle"),
        [
            ("statusState", "SUBSCRIBD", "allowed values: SUBSCRIBED, UNSUBSCRIBED, NOT_SPECIFIED"),
            ("subscriptionId", 0, "greater than 0"),
            ("subscriptionId", 2**63, "less than or equal"),
            ("subscriptionId", True, "whole number"),
            ("subscriptionId", 1.5, "whole number"),
            ("channel", "SMS", "allowed values: EMAIL"),
            ("subscriberIdString", "not-an-email", "e-mail address"),
            ("subscriberIdString", b"a@b.co", "must be a string"),
            ("subscriberIdString", 42, "must be a string"),
            ("legalBasis", "GDPR", "CONSENT_WITH_NOTICE"),
        ],
    )
    def test_errors_name_field_and_allowed_values(self, field: str, value: object, needle: str) -> None:
        data: dict[str, object] = {
            "subscriberIdString": "a@b.co",
            "subscriptionId": 1,
            "statusState": "SUBSCRIBED",
            "legalBasis": "NON_GDPR",
            "legalBasisExplanation": "x",
        }
        data[field] = value
        with pytest.raises(ValidationError) as info:
            StatusWrite.model_validate(data)
        text = str(info.value)
        assert field in text
        assert needle in text

    def test_extra_fields_forbidden(self) -> None:
        with pytest.raises(ValidationError, match="subscriberId"):
            StatusUpdate.model_validate({"statusState": "SUBSCRIBED", "subscriptionId": 1, "subscriberId": "x"})

    @pytest.mark.parametrize("given", [{"legalBasis": "NON_GDPR"}, {"legalBasisExplanation": "why"}])
    def test_legal_basis_pair(self, given: dict[str, str]) -> None:
        with pytest.raises(ValidationError, match="must be given together"):
            StatusUpdate.model_validate({"statusState": "SUBSCRIBED", "subscriptionId": 1, **given})

    def test_seven_legal_bases(self) -> None:
        assert len(LegalBasis) == 7


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("a@b.co", True),
        ("a+tag@sub.example.org", True),
        ("a@b", False),
        ("a b@c.de", False),
        ("@b.co", False),
        ("a@@b.co", False),
        ("x" * 250 + "@b.co", False),
        ("a@b.co\n", False),
    ],
)
def test_is_valid_email(value: str, ok: bool) -> None:
    assert is_valid_email(value) is ok


def test_batch_response_tolerates_doc_examples() -> None:
    answer = BatchWriteResponse.model_validate(
        {
            "status": "SUCCESS",
            "results": [{"legalBasis": None, "setStatusSuccessReason": None, "new": 1}],
            "errors": [{"subCategory": {"a": 1}, "context": "{missingScopes=[x]}"}],
        }
    )
    assert answer.results[0].model_extra == {"new": 1}
    assert answer.errors[0].context == {}
