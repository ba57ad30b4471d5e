"""A config typo or dirty data never succeeds green (issue 17.6): the checks after the validation pass."""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_hubcomm.batch.header import check_header
from airflow_provider_hubcomm.batch.rows import RowValidator
from airflow_provider_hubcomm.batch.sources import iter_rows
from airflow_provider_hubcomm.batch.spool import ValidationPass, validate_rows
from airflow_provider_hubcomm.batch.thresholds import check_validation
from airflow_provider_hubcomm.exceptions import HubCommValidationError

MAP = {"email": "subscriberIdString", "sub": "subscriptionId", "state": "statusState"}


def rows(n: int, *, bad_every: int = 0, **extra: Any) -> list[dict[str, Any]]:
    out = []
    for i in range(n):
        state = "maybe" if bad_every and i % bad_every == 0 else "UNSUBSCRIBED"
        out.append({"email": f"u{i}@x.com", "sub": 101, "state": state, **extra})
    return out


def validated(data: list[dict[str, Any]], column_map: dict[str, str] | None = MAP, **kw: Any) -> ValidationPass:
    validator = RowValidator(column_map, extra_columns=kw.pop("extra_columns", "ignore"), **kw)
    result = validate_rows(enumerate(data, 1), validator, stop_at_invalid=False)
    if result.spool is not None:
        result.spool.close()
    return result


class TestColumnMapTypos:
    def test_a_key_no_row_has_is_reported_with_the_columns_seen(self) -> None:
        typo = {**MAP, "emial_basis": "legalBasis", "why": "legalBasisExplanation"}
        checked = validated(rows(5), typo)
        assert checked.invalid == 0  # the rows are valid without the optional pair: the typo would pass
        assert checked.columns_unseen == {"emial_basis", "why"}
        with pytest.raises(HubCommValidationError) as info:
            check_validation(checked, on_invalid="skip")
        message = str(info.value)
        assert "column_map['emial_basis']: no column 'emial_basis' in any of the 5 input rows" in message
        assert "column_map['why']" in message
        assert "input columns: 'email', 'sub', 'state'" in message
        assert [e["field"] for e in info.value.errors] == ["column_map['emial_basis']", "column_map['why']"]

    def test_a_key_some_row_has_is_fine(self) -> None:
        data = [*rows(3), {"email": "z@x.com", "sub": 101, "state": "SUBSCRIBED", "basis": None, "why": None}]
        checked = validated(data, {**MAP, "basis": "legalBasis", "why": "legalBasisExplanation"})
        assert checked.columns_unseen == set()
        check_validation(checked, on_invalid="skip")

    def test_the_typo_wins_over_the_invalid_rows_it_causes(self) -> None:
        checked = validated(rows(4), {"emale": "subscriberIdString", "sub": "subscriptionId", "state": "statusState"})
        assert checked.invalid == 4
        with pytest.raises(HubCommValidationError, match=r"column_map\['emale'\]"):
            check_validation(checked, on_invalid="fail")

    def test_no_rows_no_typo_error(self) -> None:
        check_validation(validated([], {**MAP, "nope": "legalBasis"}), on_invalid="skip")

    def test_seen_columns_stop_being_tracked(self) -> None:
        checked = validated(rows(50))
        assert checked.columns_unseen == set()
        assert list(checked.columns_seen) == ["email", "sub", "state"]

    def test_a_file_header_without_the_key_fails_before_the_first_row(self, tmp_path: Path) -> None:
        path = tmp_path / "extract.csv.gz"
        with gzip.open(path, "wt") as fh:
            fh.write("mail,sub,state\na@x.com,101,UNSUBSCRIBED\n")
        validator = RowValidator(MAP)
        reader = iter_rows(str(path), on_header=lambda name, cols: check_header(validator, name, cols))
        with pytest.raises(HubCommValidationError) as info:
            next(reader)  # the header check runs before the first row is yielded
        message = str(info.value)
        assert "column_map['email']: no column 'email' in the header (line 1) of" in message
        assert "extract.csv.gz" in message
        assert "input columns: 'mail', 'sub', 'state'" in message


class TestInvalidRows:
    def test_all_invalid_fails_even_when_skipping(self) -> None:
        checked = validated(rows(3, bad_every=1))
        with pytest.raises(HubCommValidationError) as info:
            check_validation(checked, on_invalid="skip")
        message = str(info.value)
        assert message.startswith("all 3 input rows are invalid, nothing was sent")
        assert "row 1, column 'state' (statusState): value 'maybe' is not allowed" in message
        assert info.value.errors[0]["row"] == 1

    def test_some_invalid_pass_when_skipping_without_a_bound(self) -> None:
        check_validation(validated(rows(10, bad_every=2)), on_invalid="skip")

    def test_any_invalid_fails_with_on_invalid_fail(self) -> None:
        with pytest.raises(HubCommValidationError, match=r"^1 of 10 input rows are invalid; nothing was sent"):
            check_validation(validated(rows(10, bad_every=10)), on_invalid="fail")

    @pytest.mark.parametrize(("ratio", "fails"), [(0.0, True), (0.19, True), (0.2, False), (1.0, False), (None, False)])
    def test_max_invalid_ratio(self, ratio: float | None, fails: bool) -> None:
        checked = validated(rows(10, bad_every=5))  # rows 1 and 6: 20 %
        assert (checked.invalid, checked.rows_read) == (2, 10)
        if fails:
            with pytest.raises(
                HubCommValidationError, match=r"2 of 10 input rows are invalid \(20.0%\).*max_invalid_ratio"
            ):
                check_validation(checked, on_invalid="skip", max_invalid_ratio=ratio)
        else:
            check_validation(checked, on_invalid="skip", max_invalid_ratio=ratio)

    def test_clean_input_passes_any_bound(self) -> None:
        check_validation(validated(rows(10)), on_invalid="fail", max_invalid_ratio=0.0)
