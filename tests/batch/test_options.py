"""The run's options: validated once, typed, frozen, and refused in the words of the operator's arguments."""

from __future__ import annotations

import inspect
from typing import Any

import pytest

from airflow_provider_hubcomm.batch.options import NOT_ARGUMENTS, BatchWriteOptions, RunOptions, UnsubscribeAllOptions
from airflow_provider_hubcomm.exceptions import HubCommConfigError
from airflow_provider_hubcomm.operators import BatchUnsubscribeAllOperator, BatchWriteStatusesOperator


@pytest.mark.parametrize(
    ("options", "operator"),
    [(BatchWriteOptions, BatchWriteStatusesOperator), (UnsubscribeAllOptions, BatchUnsubscribeAllOperator)],
)
def test_fields_are_the_operators_arguments_with_the_same_defaults(options: type[RunOptions], operator: type) -> None:
    parameters = inspect.signature(operator.__init__).parameters
    fields = set(options.model_fields) - NOT_ARGUMENTS
    assert fields == set(parameters) - {"self", "inputs", "kwargs"}
    for name in fields:
        given, default = parameters[name].default, options.model_fields[name].default
        # None means "the default" for numbers; every other default is the same value.
        assert given == default or (given is None and options.model_validate({name: None}).__dict__[name] == default)


def test_none_means_the_default() -> None:
    options = BatchWriteOptions(batch_size=None, max_concurrency=None, daily_request_budget=None)
    assert (options.batch_size, options.max_concurrency, options.daily_request_budget) == (100, 4, 250_000)


def test_text_numbers_are_read() -> None:
    options = UnsubscribeAllOptions(batch_size="50", business_unit_id="7", max_invalid_ratio="0.25")
    assert (options.batch_size, options.business_unit_id, options.max_invalid_ratio) == (50, 7, 0.25)


def test_every_bad_argument_is_named_at_once() -> None:
    with pytest.raises(HubCommConfigError) as info:
        BatchWriteOptions.model_validate(
            {"batch_size": 0, "max_concurrency": 7.5, "on_invalid": "x", "dry_run": "maybe", "column_map": "a"}
        )
    assert str(info.value).splitlines() == [
        "invalid arguments, nothing was sent:",
        "batch_size: invalid value 0: must be a whole number between 1 and 1000",
        "max_concurrency: invalid value 7.5: must be a whole number between 1 and 32",
        "on_invalid: invalid value 'x': must be 'fail' or 'skip'",
        "dry_run: invalid value 'maybe': must be True or False",
        "column_map: invalid value 'a': must be a valid dictionary",
    ]


@pytest.mark.parametrize("value", [-0.1, 1.5, "half", True, float("nan")])
def test_ratios_outside_0_1_are_refused(value: Any) -> None:
    with pytest.raises(HubCommConfigError, match=r"\nmax_invalid_ratio: invalid value .*: must be a number between 0"):
        BatchWriteOptions(max_invalid_ratio=value)


def test_ratios_accept_numbers_and_none() -> None:
    assert BatchWriteOptions(max_invalid_ratio="0.25").max_invalid_ratio == 0.25
    assert BatchWriteOptions(max_failed_ratio=1).max_failed_ratio == 1.0
    assert BatchWriteOptions(max_invalid_ratio=None).max_invalid_ratio is None


@pytest.mark.parametrize(
    ("name", "value"), [("subscriber_column", ""), ("business_unit_id", -1), ("business_unit_id", True)]
)
def test_opt_out_options(name: str, value: Any) -> None:
    with pytest.raises(HubCommConfigError, match=rf"\n{name}: invalid value {value!r}"):
        UnsubscribeAllOptions.model_validate({name: value})


def test_frozen_and_copied_for_the_task_run() -> None:
    options = BatchWriteOptions(output_dir="/given")
    with pytest.raises(Exception, match="frozen"):
        options.batch_size = 5  # type: ignore[misc]
    run = options.for_task_run("/run", "dag-task-run-try1")
    assert (run.output_dir, run.output_name, options.output_name) == ("/run", "dag-task-run-try1", None)


def test_unknown_options_are_refused() -> None:
    with pytest.raises(HubCommConfigError, match="batchsize: invalid value 10: is not an option"):
        BatchWriteOptions.model_validate({"batchsize": 10})


def test_full_resync_needs_a_state_path() -> None:
    with pytest.raises(HubCommConfigError, match=r"\nfull_resync: invalid value True: needs a state_path"):
        BatchWriteOptions(full_resync=True)
    assert BatchWriteOptions(full_resync=True, state_path="/tmp/state").full_resync
