"""The fault harness's forced token expiry never kills a token refreshed a moment ago (issue 17.1/17.2).

A real HubSpot access token lives 30 minutes, so a 401 on a freshly refreshed token is a real
authentication failure; the harness must not manufacture one. (Kept here, not in ``tests/faults``, so that
it runs with the fast suites.)
"""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path
from typing import Any

import pytest

from tests.faults.harness import (
    UNKNOWN_REASON,
    RunResult,
    Scenario,
    check,
    expire_old_access_tokens,
    make_dataset,
    preload,
    read_jsonl,
)
from tests.testing.test_fake_auth import get_defs, refresh


def issue(fake: Any) -> str:
    answer = refresh(fake)
    assert answer.status_code == 200
    token: str = answer.json()["access_token"]
    return token


def test_only_tokens_older_than_the_minimum_age_are_expired(hubcomm_fake_factory: Any) -> None:
    fake = hubcomm_fake_factory(token_ttl=600.0)
    old = issue(fake)
    old_issued_by = time.monotonic()
    time.sleep(0.5)
    young_issued_after = time.monotonic()
    young = issue(fake)
    # A minimum age halfway between the two issue times: ``old`` is older, ``young`` is younger.
    min_age = time.monotonic() - (old_issued_by + young_issued_after) / 2
    assert expire_old_access_tokens(fake, min_age=min_age) == 1
    expired = get_defs(fake, old)
    assert expired.status_code == 401
    assert expired.json()["category"] == "EXPIRED_AUTHENTICATION"
    assert get_defs(fake, young).status_code == 200


def test_a_token_issued_just_now_survives_the_default_minimum_age(hubcomm_fake_factory: Any) -> None:
    fake = hubcomm_fake_factory(token_ttl=600.0)
    token = issue(fake)
    assert expire_old_access_tokens(fake) == 0
    assert get_defs(fake, token).status_code == 200
    assert expire_old_access_tokens(fake, min_age=0.0) == 1
    assert get_defs(fake, token).status_code == 401


def test_expired_tokens_are_not_counted_twice(hubcomm_fake_factory: Any) -> None:
    fake = hubcomm_fake_factory(token_ttl=600.0)
    issue(fake)
    assert expire_old_access_tokens(fake, min_age=0.0) == 1
    assert expire_old_access_tokens(fake, min_age=0.0) == 0


def test_check_accepts_unknown_subscription_rows_failed_or_skipped(
    hubcomm_fake_factory: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """``check()`` takes the unknown-subscription rows failed (HubSpot's 207) or skipped by a preflight."""
    from airflow_provider_hubcomm.batch.engine import BatchWriteEngine
    from airflow_provider_hubcomm.batch.options import BatchWriteOptions
    from airflow_provider_hubcomm.hooks.hubcomm import HubCommHook

    fake = hubcomm_fake_factory()
    ds = make_dataset(tmp_path / "consent.csv", 3000, seed=11)
    assert ds.unknown_rows
    preload(fake, ds)
    monkeypatch.setenv("AIRFLOW_CONN_HUBCOMM_DEFAULT", fake.connection_json(requests_per_10s=10_000))
    failed_path = tmp_path / "failed.jsonl"
    options = BatchWriteOptions(
        output_dir=str(tmp_path / "out"), failed_rows_path=str(failed_path), batch_size=500, on_invalid="skip"
    )
    engine = BatchWriteEngine(HubCommHook(), options)
    summary = engine.run(str(ds.path))
    scenario = Scenario("unit")
    # The preflight contract (today): the unknown-subscription rows skipped before any write.
    assert summary["skipped_by_reason"][UNKNOWN_REASON] >= len(ds.unknown_rows)
    check(ds, fake, RunResult("success", 1.0, summary, {}), scenario)

    # HubSpot's own per-input error: the same rows failed with HubSpot's reason.
    lines = read_jsonl(failed_path)
    n = 0
    for line in lines:
        if line["row"] in ds.unknown_rows:
            assert (line["outcome"], line["reason"]) == ("skipped", UNKNOWN_REASON)
            line.update(outcome="failed", reason="VALIDATION_ERROR", message="subscription 999 does not exist")
            n += 1
    assert n == len(ds.unknown_rows)
    failed_path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    as_failed = copy.deepcopy(summary)
    as_failed["failed"] += n
    as_failed["skipped"] -= n
    as_failed["skipped_by_reason"][UNKNOWN_REASON] -= n
    check(ds, fake, RunResult("success", 1.0, as_failed, {}), scenario)

    # A known subscription's row skipped as unknown is a violation.
    known_row = next(iter(ds.last_row.values()))
    lines.append({"row": known_row, "outcome": "skipped", "reason": UNKNOWN_REASON, "input": {}})
    failed_path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    as_failed["skipped_by_reason"][UNKNOWN_REASON] += 1
    with pytest.raises(AssertionError, match="skipped unknown_subscription for a known subscription"):
        check(ds, fake, RunResult("success", 1.0, as_failed, {}), scenario)
