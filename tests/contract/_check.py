"""Validation helpers for the contract tests: schema checks with readable failures, path classification."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from jsonschema import Draft202012Validator  # type: ignore[import-untyped]

from tests.contract import schemas

PREFIX = "/communication-preferences/2026-03"


def problems(instance: Any, schema: dict[str, Any]) -> list[str]:
    """Return every violation of ``schema`` by ``instance``, as ``path: message`` lines.

    :param instance: decoded JSON.
    :param schema: a schema from :mod:`tests.contract.schemas`.
    """
    validator = Draft202012Validator(schema)
    return [
        f"{'/'.join(str(p) for p in err.absolute_path) or '<root>'}: {err.message}"
        for err in sorted(validator.iter_errors(instance), key=lambda e: list(e.absolute_path))
    ]


def assert_valid(instance: Any, schema: dict[str, Any], what: str) -> None:
    """Fail with every violation listed when ``instance`` does not follow ``schema``.

    :param instance: decoded JSON.
    :param schema: the contract.
    :param what: names the message in the failure.
    """
    found = problems(instance, schema)
    assert not found, f"{what} breaks the contract:\n" + "\n".join(found) + "\n" + json.dumps(instance)[:2000]


def path_of(endpoint: str, subscriber: str = "a@x.com", prefix: str = PREFIX) -> str:
    """Return the path of ``endpoint`` with ``subscriber`` percent-encoded into it.

    :param endpoint: a key of :data:`schemas.ENDPOINTS`.
    :param subscriber: the e-mail address for single-subscriber paths.
    :param prefix: ``/communication-preferences/{ver}``.
    """
    template = schemas.ENDPOINTS[endpoint][1]
    return f"{prefix}/{template.replace('{subscriberIdString}', quote(subscriber, safe=''))}"


def endpoint_of(method: str, path: str) -> str:
    """Name the endpoint a request went to (the reverse of :func:`path_of`).

    :param method: HTTP method.
    :param path: the request's path (any API version).
    """
    parts = path.split("/")
    assert parts[1] == "communication-preferences", path
    rest = "/".join(parts[3:])
    for name, (m, template, _) in schemas.ENDPOINTS.items():
        t_parts, r_parts = template.split("/"), rest.split("/")
        if m != method or len(t_parts) != len(r_parts):
            continue
        if all(t == r or (t == "{subscriberIdString}" and r != "batch") for t, r in zip(t_parts, r_parts, strict=True)):
            return name
    raise AssertionError(f"{method} {path} is no endpoint of the contract")
