"""The fault harness's forced token expiry never kills a token refreshed a moment ago (issue 17.1/17.2).

A real HubSpot access token lives 30 minutes, so a 401 on a freshly refreshed token is a real
authentication failure; the harness must not manufacture one. (Kept here, not in ``tests/faults``, so that
it runs with the fast suites.)
"""

from __future__ import annotations

import time
from typing import Any

from tests.faults.harness import expire_old_access_tokens
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
