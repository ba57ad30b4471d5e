"""``BatchWriteStatusesOperator``: new arguments, per-run outputs, config typos (issues 17.6, 17.7)."""

from __future__ import annotations

import gzip
import stat
import tempfile
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from unittest import mock

import pytest

from airflow_provider_hubcomm.batch.single import DEFAULT_DAILY_REQUEST_BUDGET
from airflow_provider_hubcomm.exceptions import HubCommConfigError, HubCommValidationError
from airflow_provider_hubcomm.operators import BatchWriteStatusesOperator
from airflow_provider_hubcomm.operators._base import run_names
from tests.operators.test_hubcomm import Api, batch_handler, with_hook

MAP = {"email": "subscriberIdString", "sub": "subscriptionId", "state": "statusState"}


def ti(**kw: Any) -> SimpleNamespace:
    base = {"dag_id": "gdpr", "task_id": "write", "run_id": "manual__2026-12-01T10:00:00+00:00", "try_number": 2}
    return SimpleNamespace(**{**base, **kw})


def test_run_names_from_the_task_instance() -> None:
    assert run_names({"ti": ti()}) == ("gdpr", "write", "manual__2026-12-01T10:00:00+00:00", 2)
    assert run_names({"ti": ti(map_index=3)})[1] == "write.3"  # type: ignore[index]
    assert run_names({"ti": ti(map_index=-1)})[1] == "write"  # type: ignore[index]


@pytest.mark.parametrize("context", [{}, {"ti": mock.MagicMock()}, {"ti": ti(try_number=None)}])
def test_run_names_outside_a_task_run(context: dict[str, Any]) -> None:
    assert run_names(context) is None


class TestEngineOptions:
    def test_new_arguments_default_to_the_engine_defaults(self, tmp_path: Path) -> None:
        op = BatchWriteStatusesOperator(task_id="t", inputs=[], output_dir=str(tmp_path))
        options = op._options({})
        # The engine's own defaults: no ratio bound, the single-call fallback.
        assert options.max_invalid_ratio is None
        assert options.on_missing_batch_scope == "single"
        # The budget is HubSpot's smallest daily limit unless set.
        assert options.daily_request_budget == DEFAULT_DAILY_REQUEST_BUDGET
        assert options.output_dir == str(tmp_path)
        assert options.output_name is None
        op = BatchWriteStatusesOperator(
            task_id="t",
            inputs=[],
            output_dir=str(tmp_path),
            max_invalid_ratio="0.05",
            on_missing_batch_scope="fail",
            daily_request_budget=20_000,
        )
        options = op._options({})
        assert options.max_invalid_ratio == 0.05
        assert options.on_missing_batch_scope == "fail"
        assert options.daily_request_budget == 20_000

    @pytest.mark.parametrize(
        ("kwargs", "match"),
        [
            ({"max_invalid_ratio": 2}, r"\nmax_invalid_ratio: invalid value 2: must be a number between 0 and 1"),
            (
                {"on_missing_batch_scope": "retry"},
                r"\non_missing_batch_scope: invalid value 'retry': must be 'single' or 'fail'",
            ),
            ({"batch_size": 1001, "on_invalid": "drop"}, r"\nbatch_size: .*\non_invalid: invalid value 'drop'"),
        ],
    )
    def test_bad_values_fail_before_any_request(self, kwargs: dict[str, Any], match: str) -> None:
        api = Api(batch_handler)
        op = with_hook(BatchWriteStatusesOperator(task_id="t", inputs=[{"a": 1}], **kwargs), api)
        with pytest.raises(HubCommConfigError, match=match):
            op.execute({})
        assert api.requests == []

    def test_default_output_dir_is_a_private_run_folder(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
        op = BatchWriteStatusesOperator(task_id="write", inputs=[])
        options = op._options({"ti": ti()})
        expected = tmp_path / "hubcomm" / "gdpr" / "manual__2026-12-01T10_00_00_00_00" / "write"
        assert options.output_dir == str(expected)
        assert stat.S_IMODE(expected.stat().st_mode) == 0o700
        assert stat.S_IMODE((tmp_path / "hubcomm").stat().st_mode) == 0o700
        assert options.output_name == "gdpr-write-manual__2026-12-01T10_00_00_00_00-try2"

    def test_a_given_output_dir_is_kept(self, tmp_path: Path) -> None:
        op = BatchWriteStatusesOperator(task_id="write", inputs=[], output_dir=str(tmp_path / "mine"))
        assert op._options({"ti": ti()}).output_dir == str(tmp_path / "mine")
        assert not (tmp_path / "mine").exists()  # created only when a file is written


def test_a_column_map_typo_in_a_file_fails_before_any_request(tmp_path: Path) -> None:
    path = tmp_path / "extract.csv.gz"
    with gzip.open(path, "wt") as fh:
        fh.write("email,sub,state\n" + "".join(f"u{i}@x.com,101,UNSUBSCRIBED\n" for i in range(3)))
    api = Api(batch_handler)
    typo = {"emial": "subscriberIdString", "sub": "subscriptionId", "state": "statusState"}
    op = BatchWriteStatusesOperator(
        task_id="t", inputs=str(path), column_map=typo, on_invalid="skip", output_dir=str(tmp_path / "out")
    )
    with pytest.raises(HubCommValidationError, match=r"column_map\['emial'\]: no column 'emial'") as info:
        with_hook(op, api).execute({"ti": mock.MagicMock()})
    assert "input columns: 'email', 'sub', 'state'" in str(info.value)
    assert api.requests == []
    assert not (tmp_path / "out").exists()


def test_a_column_map_typo_in_rows_fails_before_any_request(tmp_path: Path) -> None:
    api = Api(batch_handler)
    data = [{"email": f"u{i}@x.com", "sub": 101, "state": "UNSUBSCRIBED"} for i in range(5)]
    op = BatchWriteStatusesOperator(
        task_id="t", inputs=data, column_map={**MAP, "basis": "legalBasis", "basis_why": "legalBasisExplanation"}
    )
    with pytest.raises(HubCommValidationError, match=r"column_map\['basis'\]"):
        with_hook(op, api).execute({"ti": mock.MagicMock()})
    assert api.requests == []


def test_every_row_invalid_fails_even_when_skipping(tmp_path: Path) -> None:
    api = Api(batch_handler)
    data = [{"email": f"u{i}@x.com", "sub": 101, "state": "maybe"} for i in range(4)]
    op = BatchWriteStatusesOperator(task_id="t", inputs=data, column_map=MAP, on_invalid="skip")
    with pytest.raises(HubCommValidationError, match=r"all 4 input rows are invalid"):
        with_hook(op, api).execute({"ti": mock.MagicMock()})
    assert api.requests == []


def test_max_invalid_ratio_fails_before_any_write(tmp_path: Path) -> None:
    api = Api(batch_handler)
    data = [{"email": f"u{i}@x.com", "sub": 101, "state": "maybe" if i < 3 else "SUBSCRIBED"} for i in range(10)]
    op = BatchWriteStatusesOperator(
        task_id="t", inputs=data, column_map=MAP, on_invalid="skip", max_invalid_ratio=0.1, allow_resubscribe=True
    )
    with pytest.raises(HubCommValidationError, match=r"3 of 10 input rows are invalid.*max_invalid_ratio=0.1"):
        with_hook(op, api).execute({"ti": mock.MagicMock()})
    assert api.requests == []


def test_a_partial_rows_file_never_has_the_final_name(tmp_path: Path) -> None:
    """An engine run killed mid-send (simulated by an exception in the transport) leaves no truncated file
    under a final name: what it wrote is either renamed complete on close, or still ``.partial``."""

    def handler(request: Any) -> Any:
        raise KeyboardInterrupt  # like a SIGTERM mid-request

    api = Api(handler)
    data = [
        {"subscriberIdString": f"u{i}@x.com", "subscriptionId": 101, "statusState": "UNSUBSCRIBED"} for i in range(3)
    ]
    op = with_hook(BatchWriteStatusesOperator(task_id="t", inputs=data, output_dir=str(tmp_path)), api)
    with pytest.raises(BaseException):
        op.execute({"ti": mock.MagicMock()})
    for path in tmp_path.iterdir():
        assert path.name.endswith(".partial") or path.stat().st_size > 0, path
