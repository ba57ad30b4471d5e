"""The contracts module, docs/dev/CONTRACTS.md and the real producers say the same.

* every key of every ``TypedDict`` of :mod:`airflow_provider_hubcomm.contracts` is named in the doc's section of
  that type (or of a contract it extends, named in that section);
* the summaries of two small real runs (a status write and an opt-out, against the in-memory HubSpot of the
  engine tests), their output files' lines and a read-back result have exactly the keys their types declare,
  nested contracts included: a producer and its type cannot drift apart.
"""

from __future__ import annotations

import json
import re
import types
from pathlib import Path
from typing import Any, NotRequired, Union, get_args, get_origin, get_type_hints, is_typeddict

import pytest

from airflow_provider_hubcomm import contracts
from airflow_provider_hubcomm.batch.options import UnsubscribeAllOptions
from airflow_provider_hubcomm.batch.optout import BatchUnsubscribeAllRun
from airflow_provider_hubcomm.batch.optout_account import OptOutAccount
from airflow_provider_hubcomm.batch.outputs import JsonLinesSink
from airflow_provider_hubcomm.batch.sources import iter_rows
from airflow_provider_hubcomm.hooks.hubcomm import HubCommHook
from airflow_provider_hubcomm.readback.rows import iter_written_rows
from airflow_provider_hubcomm.readback.state import VerificationState, build_result
from tests.batch._mini import MiniHubSpot, read_lines, rows, run
from tests.docs.snippets import ROOT

DOC = (ROOT / "docs" / "dev" / "CONTRACTS.md").read_text(encoding="utf-8")
CONTRACTS: dict[str, type] = {name: obj for name, obj in vars(contracts).items() if is_typeddict(obj)}


def _keys(contract: type) -> set[str]:
    return set(contract.__annotations__)


def _optional(contract: type) -> set[str]:
    """Return the ``NotRequired`` keys (from the hints: 3.11 misses them in string annotations)."""
    hints = get_type_hints(contract, include_extras=True)
    return {key for key, hint in hints.items() if get_origin(hint) is NotRequired}


def _section(name: str) -> str:
    """The body of the doc's ``### `Name``` section (up to the next heading of level 3 or above)."""
    found = re.search(rf"^### `{name}`\n(?P<body>.*?)(?=^#{{1,3}} |\Z)", DOC, re.MULTILINE | re.DOTALL)
    assert found, f"docs/dev/CONTRACTS.md has no section '### `{name}`'"
    return found["body"]


def test_the_module_holds_the_contracts() -> None:
    assert len(CONTRACTS) >= 15
    assert {"RunSummary", "OptOutSummary", "WrittenStatusRecord", "FailedRecord", "ReadBackResult"} <= set(CONTRACTS)
    assert {"TriggerPayload", "ReadBackMeta", "HandOverState"} <= set(CONTRACTS)


def _documented(name: str) -> set[str]:
    """Keys of ``name`` its section names, and those of each contract it extends that the section names."""
    contract, section = CONTRACTS[name], _section(name)
    documented = {key for key in _keys(contract) if f"`{key}`" in section}
    for other_name, other in CONTRACTS.items():
        # "every key of `Base`": the keys of a contract this one extends are documented in the base's section.
        if other is not contract and f"`{other_name}`" in section and _keys(other) < _keys(contract):
            documented |= _documented(other_name)
    return documented


@pytest.mark.parametrize("name", sorted(CONTRACTS))
def test_every_key_is_documented(name: str) -> None:
    missing = _keys(CONTRACTS[name]) - _documented(name)
    assert not missing, f"keys of {name} missing from its section of docs/dev/CONTRACTS.md: {sorted(missing)}"


# -- producers and types cannot drift ----------------------------------------------------------------------------


def assert_shape(value: Any, hint: Any, where: str) -> None:
    """Assert that ``value`` has exactly the keys ``hint`` declares, through nested contracts, lists and unions."""
    if is_typeddict(hint):
        assert isinstance(value, dict), f"{where}: {type(value).__name__}, not a dict"
        keys, optional = _keys(hint), _optional(hint)
        missing, undeclared = keys - optional - set(value), set(value) - keys
        assert not missing, f"{where} ({hint.__name__}): missing {missing}"
        assert not undeclared, f"{where} ({hint.__name__}): undeclared {undeclared}"
        hints = get_type_hints(hint)
        for key, item in value.items():
            assert_shape(item, hints[key], f"{where}.{key}")
    elif get_origin(hint) is list:
        for index, item in enumerate(value):
            assert_shape(item, get_args(hint)[0], f"{where}[{index}]")
    elif get_origin(hint) in (Union, types.UnionType):
        problems = []
        for option in get_args(hint):
            if option is type(None) and value is None:
                return
            if option is type(None):
                continue
            try:
                assert_shape(value, option, where)
            except AssertionError as err:
                problems.append(str(err))
            else:
                return
        raise AssertionError(f"{where}: matches none of {hint}: {problems}")


def test_the_shape_checker_catches_drift() -> None:
    good: dict[str, Any] = {"index": 1, "rows": 2, "reason": "x"}
    assert_shape(good, contracts.CanceledOperation, "c")
    with pytest.raises(AssertionError, match="undeclared"):
        assert_shape({**good, "extra": 1}, contracts.CanceledOperation, "c")
    with pytest.raises(AssertionError, match="missing"):
        assert_shape({"index": 1, "rows": 2}, contracts.CanceledOperation, "c")
    with pytest.raises(AssertionError, match="matches none"):
        assert_shape([{"row": 1}], list[contracts.WrittenRecord], "w")


def test_a_status_write_summary_and_its_files(tmp_path: Path) -> None:
    api = MiniHubSpot(status="PENDING")
    inputs = [
        *rows(4),
        *rows(1, start=1),  # a duplicate
        {"subscriberIdString": "not-an-address", "subscriptionId": 101, "statusState": "SUBSCRIBED"},
        *rows(2, start=10, sid=999),  # every write to 999 fails
    ]
    summary = run(api, inputs, tmp_path, on_invalid="skip", batch_size=3)
    assert (summary["written"], summary["failed"], summary["skipped"]) == (4, 2, 2)
    assert summary["operations"]["not_complete"]
    assert_shape(summary, contracts.RunSummary, "summary")
    for line in read_lines(summary["written_rows_path"]):
        assert_shape(line, contracts.WrittenStatusRecord, "written line")
    failed = read_lines(summary["failed_rows_path"])
    assert {line["outcome"] for line in failed} == {"failed", "skipped"}
    for line in failed:
        assert_shape(line, contracts.FailedRecord, "failed line")
    result = build_result(_meta(summary), _read_back(summary))
    assert_shape(result, contracts.ReadBackResult, "result")
    assert_shape(VerificationState().to_json(), contracts.HandOverState, "state")


def test_an_opt_out_summary_and_its_files(hubcomm_fake: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_HUBCOMM_DEFAULT", hubcomm_fake.connection_json(max_retries=0))
    hook = HubCommHook()
    failed = JsonLinesSink(output_dir=str(tmp_path), kind="failed")
    written = JsonLinesSink(output_dir=str(tmp_path), kind="written")
    account = OptOutAccount(hook, failed, written, 0)
    options = UnsubscribeAllOptions(batch_size=2, max_concurrency=1, on_invalid="skip", business_unit_id=0)
    opt_out = BatchUnsubscribeAllRun(hook, (failed, written), options)
    inputs = [{"subscriberIdString": f"gdpr{i}@example.com"} for i in range(3)] + [{"subscriberIdString": "x"}]
    try:
        summary = opt_out.run(iter_rows(inputs), account)
    finally:
        hook.close()
    summary.update({"failed_rows_path": failed.close(), "written_rows_path": written.close()})
    assert (summary["written"], summary["skipped"]) == (3, 1)
    assert_shape(summary, contracts.OptOutSummary, "summary")
    for line in read_lines(summary["written_rows_path"]):
        assert_shape(line, contracts.WrittenOptOutRecord, "written line")
    for line in read_lines(summary["failed_rows_path"]):
        assert_shape(line, contracts.FailedRecord, "failed line")
    assert len(list(iter_written_rows(json.loads(json.dumps(summary))))) == 3


def _meta(summary: Any) -> contracts.ReadBackMeta:
    return {
        "verify": "all",
        "sample_size": 10,
        "sample_seed": 0,
        "fail_on_mismatch": True,
        "conn_id": summary["conn_id"],
        "channel": summary["channel"],
        "rows_written": summary["written"],
        "operations": summary["operations"],
        "read_mode": "batch",
        "unconfirmed_at_write": summary["unconfirmed"],
    }


def _read_back(summary: Any) -> VerificationState:
    """A state that read every written row once and found none (so every row is pending)."""
    state = VerificationState()
    state.observe(list(iter_written_rows(summary)), {}, first_read=True)
    return state
