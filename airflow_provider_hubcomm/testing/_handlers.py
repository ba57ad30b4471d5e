"""Endpoint handlers of the fake: request validation, state changes and HubSpot-shaped answers.

Whole-request problems (bad JSON, missing ``inputs``, bad enum, non-integer ``subscriptionId``, batch over
``max_batch_size``, missing ``channel`` query parameter) raise :class:`ValidationFailed` (a 400). Per-input
problems in an otherwise valid batch (unknown or inactive subscription, subscriber id that is not an e-mail
address, missing legal basis under ``require_legal_basis``) become ``StandardError`` entries in ``errors[]``:
HTTP 200 on the batch writes (``partial_status``), 207 on the batch reads, as HubSpot's spec declares. A single
write to an unknown subscription answers ``unknown_subscription_status`` (400 ``VALIDATION_ERROR`` by default).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow_provider_hubcomm.testing._config import CHANNELS, INT64_MAX, LEGAL_BASES, STATUS_STATES, is_email
from airflow_provider_hubcomm.testing._responses import (
    ValidationFailed,
    definition,
    envelope,
    error_response,
    json_response,
    public_status,
    standard_error,
    wide_status,
)
from airflow_provider_hubcomm.testing._state import Write

if TYPE_CHECKING:
    from airflow_provider_hubcomm.testing._config import FakeConfig
    from airflow_provider_hubcomm.testing._messages import HttpResponse
    from airflow_provider_hubcomm.testing._state import ConsentStore

__all__ = ["HANDLERS", "Ctx", "Result"]


@dataclass(slots=True)
class Ctx:
    """Everything a handler needs about one request."""

    body: bytes
    subscriber: str | None
    query: dict[str, str]
    config: FakeConfig
    store: ConsentStore
    correlation_id: str
    requested_at: str
    started_at: str
    now: float
    cancel: bool


@dataclass(slots=True)
class Result:
    """A handler's answer plus what the request log and counters need."""

    response: HttpResponse
    outcome: str
    n_inputs: int = 0
    wrote: bool = False
    applied: int = 0


# -- validation helpers ------------------------------------------------------------------------------------
def _parse_json(body: bytes) -> Any:
    if not body.strip():
        raise ValidationFailed([{"message": "Request body is required", "in": "body"}])
    try:
        return json.loads(body)
    except json.JSONDecodeError as exc:
        msg = f"Invalid input JSON on line {exc.lineno}, column {exc.colno}: {exc.msg}"
        raise ValidationFailed([{"message": msg, "in": "body"}]) from None
    except UnicodeDecodeError:
        raise ValidationFailed([{"message": "Invalid input JSON: body is not UTF-8", "in": "body"}]) from None


def _enum(obj: dict[str, Any], key: str, allowed: tuple[str, ...], where: str, errors: list[dict[str, str]]) -> Any:
    value = obj.get(key)
    if value is None:
        errors.append({"message": f"Some required fields were not set: [{key}]", "in": where + key})
    elif value not in allowed:
        errors.append(
            {
                "message": f"Cannot deserialize value of type `{key}` from String {json.dumps(value)}: not one "
                f"of the values accepted for Enum class: [{', '.join(allowed)}]",
                "in": where + key,
            }
        )
    return value


def _parse_write(obj: Any, where: str, errors: list[dict[str, str]], subscriber: str | None) -> Write | None:
    """Check one ``PartialPublicStatusRequest`` / ``PublicStatusRequest``; collect errors, return the write."""
    if not isinstance(obj, dict):
        errors.append({"message": "Expected a JSON object", "in": where.rstrip(".") or "body"})
        return None
    n = len(errors)
    _enum(obj, "channel", CHANNELS, where, errors)
    state = _enum(obj, "statusState", STATUS_STATES, where, errors)
    sid = obj.get("subscriptionId")
    if sid is None:
        errors.append(
            {"message": "Some required fields were not set: [subscriptionId]", "in": where + "subscriptionId"}
        )
    elif isinstance(sid, bool) or not isinstance(sid, int) or not -INT64_MAX - 1 <= sid <= INT64_MAX:
        errors.append(
            {
                "message": f"Cannot deserialize value of type `long` from {json.dumps(sid)}: not a valid integer",
                "in": where + "subscriptionId",
            }
        )
    basis = obj.get("legalBasis")
    if basis is not None and basis not in LEGAL_BASES:
        _enum(obj, "legalBasis", LEGAL_BASES, where, errors)
    explanation = obj.get("legalBasisExplanation")
    if explanation is not None and not isinstance(explanation, str):
        errors.append({"message": "legalBasisExplanation must be a string", "in": where + "legalBasisExplanation"})
    if subscriber is None:
        subscriber = obj.get("subscriberIdString")
        if not isinstance(subscriber, str):
            what = "were not set" if subscriber is None else "must be strings"
            errors.append(
                {"message": f"Some required fields {what}: [subscriberIdString]", "in": where + "subscriberIdString"}
            )
    if len(errors) > n:
        return None
    assert isinstance(subscriber, str)  # narrowed by the checks above
    assert isinstance(sid, int)
    return Write(subscriber.strip(), sid, state, basis, explanation)


def _inputs(body: bytes, max_size: int | None) -> list[Any]:
    obj = _parse_json(body)
    if not isinstance(obj, dict) or "inputs" not in obj:
        raise ValidationFailed([{"message": "Some required fields were not set: [inputs]", "in": "inputs"}])
    inputs = obj["inputs"]
    if not isinstance(inputs, list):
        raise ValidationFailed([{"message": "inputs must be a JSON array", "in": "inputs"}])
    if max_size is not None and len(inputs) > max_size:
        msg = f"Batch too large: {len(inputs)} inputs, the limit is {max_size} inputs per request"
        raise ValidationFailed([{"message": msg, "in": "inputs"}])
    return inputs


def _string_inputs(ctx: Ctx) -> list[str]:
    inputs = _inputs(ctx.body, ctx.config.max_batch_size)
    bad = [
        {"message": "Expected a string", "in": f"inputs[{i}]"} for i, v in enumerate(inputs) if not isinstance(v, str)
    ]
    if bad:
        raise ValidationFailed(bad)
    return [v.strip() for v in inputs]


def _channel(query: dict[str, str]) -> None:
    value = query.get("channel")
    if value is None:
        raise ValidationFailed([{"message": "Required query parameter 'channel' is missing", "in": "channel"}])
    if value not in CHANNELS:
        msg = f"Invalid value {value!r} for query parameter 'channel'; expected one of [{', '.join(CHANNELS)}]"
        raise ValidationFailed([{"message": msg, "in": "channel"}])


def _business_unit(query: dict[str, str]) -> int | None:
    value = query.get("businessUnitId")
    if value is None or value == "":
        return None
    try:
        return int(value)
    except ValueError:
        msg = f"Invalid value {value!r} for query parameter 'businessUnitId'; expected an int64"
        raise ValidationFailed([{"message": msg, "in": "businessUnitId"}]) from None


def _flag(query: dict[str, str], key: str) -> bool:
    return query.get(key, "false").lower() == "true"


def _subscriber(ctx: Ctx) -> str:
    sub = (ctx.subscriber or "").strip()
    if not is_email(sub):
        msg = f"Invalid subscriberIdString {sub!r}: not a valid email address"
        raise ValidationFailed([{"message": msg, "in": "subscriberIdString"}])
    return sub.lower()


def _split_subscribers(inputs: list[str]) -> tuple[list[str], list[dict[str, Any]]]:
    """Split a batch's subscriber ids into the valid ones (lowercased) and a ``StandardError`` per invalid one."""
    subs: list[str] = []
    problems: list[dict[str, Any]] = []
    for raw in inputs:
        if is_email(raw):
            subs.append(raw.lower())
        else:
            msg = f"Invalid subscriberIdString {raw!r}: not a valid email address"
            problems.append(standard_error(400, "VALIDATION_ERROR", msg, {"subscriberIdString": [raw]}))
    return subs, problems


def _input_problem(ctx: Ctx, w: Write) -> dict[str, Any] | None:
    context = {"subscriberIdString": [w.subscriber], "subscriptionId": [str(w.subscription_id)]}
    if not is_email(w.subscriber):
        msg = f"Invalid subscriberIdString {w.subscriber!r}: not a valid email address"
        return standard_error(400, "VALIDATION_ERROR", msg, context)
    d = ctx.store.definitions.get(w.subscription_id)
    if d is None:
        status = ctx.config.unknown_subscription_status
        category = "OBJECT_NOT_FOUND" if status == 404 else "VALIDATION_ERROR"
        return standard_error(status, category, f"Subscription {w.subscription_id} does not exist", context)
    if not d.is_active:
        return standard_error(400, "VALIDATION_ERROR", f"Subscription {w.subscription_id} is not active", context)
    if ctx.config.require_legal_basis and (w.legal_basis is None or w.legal_basis_explanation is None):
        msg = "legalBasis and legalBasisExplanation are required: this account's data privacy (GDPR) settings are on"
        return standard_error(400, "VALIDATION_ERROR", msg, context, "LEGAL_BASIS_REQUIRED")
    return None


def _ok(
    ctx: Ctx, results: list[Any], errors: list[dict[str, Any]] | None = None, partial: int = 207, **kw: Any
) -> HttpResponse:
    """Build an envelope answer: 200, or ``partial`` when there are per-input ``errors``."""
    completed_at = kw.pop("completed_at", ctx.started_at)
    body = envelope(results, ctx.requested_at, ctx.started_at, completed_at, errors=errors, **kw)
    return json_response(partial if errors else 200, body)


def _brand(ctx: Ctx) -> int | None:
    """Brand a definitions or single opt-out-of-all read covers: the one asked, else 0 (all when not strict)."""
    bu = _business_unit(ctx.query)
    if bu is None and ctx.config.strict_brands:
        return 0
    return bu


# -- endpoints ---------------------------------------------------------------------------------------------
def definitions(ctx: Ctx) -> Result:
    """``GET /definitions``."""
    bu = _brand(ctx)
    translations = _flag(ctx.query, "includeTranslations")
    results = [definition(d, ctx.store.created_at, translations) for d in ctx.store.defs_for(bu)]
    return Result(_ok(ctx, results), "ok")


def get_statuses(ctx: Ctx) -> Result:
    """``GET /statuses/{subscriberIdString}``: one status per subscription of the brand."""
    _channel(ctx.query)
    sub = _subscriber(ctx)
    bu = _business_unit(ctx.query) or 0
    store = ctx.store
    with store.lock:
        results = [public_status(d, sub, store.get(sub, d.id), store.created_at) for d in store.defs_for(bu)]
    return Result(_ok(ctx, results), "ok", 1)


def set_status(ctx: Ctx) -> Result:
    """``POST /statuses/{subscriberIdString}``: write one status."""
    errors: list[dict[str, str]] = []
    w = _parse_write(_parse_json(ctx.body), "", errors, ctx.subscriber or "")
    if w is None:
        raise ValidationFailed(errors)
    sub = _subscriber(ctx)
    problem = _input_problem(ctx, w)
    if problem is not None:
        resp = error_response(int(problem["status"]), problem["message"], ctx.correlation_id, problem["category"])
        return Result(resp, "not_found" if problem["status"] == "404" else "validation_error", 1)
    rec, reason = ctx.store.write(w)
    d = ctx.store.definitions[w.subscription_id]
    return Result(_ok(ctx, [public_status(d, sub, rec, "", reason)]), "ok", 1, wrote=True, applied=1)


def batch_write(ctx: Ctx) -> Result:
    """``POST /statuses/batch/write``, honouring ``batch_mode`` (immediate, delayed or cancel)."""
    inputs = _inputs(ctx.body, ctx.config.max_batch_size)
    errors: list[dict[str, str]] = []
    writes = [_parse_write(item, f"inputs[{i}].", errors, None) for i, item in enumerate(inputs)]
    if errors:
        raise ValidationFailed(errors)
    store, good, problems = ctx.store, [], []
    for w in writes:
        assert w is not None  # no errors means every input parsed
        problem = _input_problem(ctx, w)
        if problem is None:
            good.append(Write(w.subscriber.lower(), *_rest(w)))
        else:
            problems.append(problem)
    mode, partial = ctx.config.batch_mode, ctx.config.partial_status
    if (mode == "cancel" and ctx.cancel) or mode == "delayed":
        # HubSpot never promised to echo inputs it has not processed: results stay empty.
        if mode == "delayed":
            store.defer(good, ctx.now + ctx.config.batch_delay)
            resp = _ok(ctx, [], problems, partial, status="PENDING")
            return Result(resp, "pending", len(inputs), wrote=bool(good))
        return Result(_ok(ctx, [], problems, partial, status="CANCELED"), "canceled", len(inputs))
    results = []
    with store.lock:
        for w in good:
            rec, reason = store.write(w)
            results.append(public_status(store.definitions[w.subscription_id], w.subscriber, rec, "", reason))
    outcome = "partial" if problems else "ok"
    resp = _ok(ctx, results, problems, partial)
    return Result(resp, outcome, len(inputs), wrote=bool(good), applied=len(good))


def _rest(w: Write) -> tuple[int, str, str | None, str | None]:
    return w.subscription_id, w.status, w.legal_basis, w.legal_basis_explanation


def batch_read(ctx: Ctx) -> Result:
    """``POST /statuses/batch/read``: statuses of many subscribers; 207 for non-e-mail inputs."""
    _channel(ctx.query)
    bu = _business_unit(ctx.query) or 0
    inputs = _string_inputs(ctx)
    subs, problems = _split_subscribers(inputs)
    store, results = ctx.store, []
    with store.lock:
        defs = list(store.defs_for(bu))
        for sub in subs:
            statuses = [public_status(d, sub, store.get(sub, d.id), store.created_at) for d in defs]
            results.append({"subscriberIdString": sub, "statuses": statuses})
    return Result(_ok(ctx, results, problems), "partial" if problems else "ok", len(inputs))


def get_unsubscribe_all(ctx: Ctx) -> Result:
    """``GET /statuses/{subscriberIdString}/unsubscribe-all``: empty results unless opted out of all."""
    _channel(ctx.query)
    sub = _subscriber(ctx)
    bu = _brand(ctx)
    results = [wide_status(sub, b, ts) for b, ts in ctx.store.wide_statuses(sub, bu)]
    return Result(_ok(ctx, results), "ok", 1)


def _unsubscribe(ctx: Ctx, sub: str, bu: int, verbose: bool) -> list[dict[str, Any]]:
    store = ctx.store
    with store.lock:
        changed = store.unsubscribe_all(sub, bu)
        if not verbose:
            return []
        return [
            public_status(store.definitions[sid], sub, rec, "", "UNSUBSCRIBE_FROM_ALL_OCCURRED") for sid, rec in changed
        ]


def post_unsubscribe_all(ctx: Ctx) -> Result:
    """``POST /statuses/{subscriberIdString}/unsubscribe-all`` (no body)."""
    _channel(ctx.query)
    sub = _subscriber(ctx)
    bu = _business_unit(ctx.query) or 0
    results = _unsubscribe(ctx, sub, bu, _flag(ctx.query, "verbose"))
    return Result(_ok(ctx, results), "ok", 1, wrote=True, applied=1)


def batch_unsubscribe_all(ctx: Ctx) -> Result:
    """``POST /statuses/batch/unsubscribe-all``: opt many subscribers out of everything."""
    _channel(ctx.query)
    bu = _business_unit(ctx.query) or 0
    verbose = _flag(ctx.query, "verbose")
    inputs = _string_inputs(ctx)
    subs, problems = _split_subscribers(inputs)
    results = [{"subscriberIdString": sub, "statuses": _unsubscribe(ctx, sub, bu, verbose)} for sub in subs]
    n_ok = len(results)
    outcome = "partial" if problems else "ok"
    resp = _ok(ctx, results, problems, ctx.config.partial_status)
    return Result(resp, outcome, len(inputs), wrote=n_ok > 0, applied=n_ok)


def batch_unsubscribe_all_read(ctx: Ctx) -> Result:
    """``POST /statuses/batch/unsubscribe-all/read``: opt-out-of-all statuses of many subscribers."""
    _channel(ctx.query)
    bu = _business_unit(ctx.query)
    inputs = _string_inputs(ctx)
    subs, problems = _split_subscribers(inputs)
    results = [
        {
            "subscriberIdString": sub,
            "wideStatuses": [wide_status(sub, b, ts) for b, ts in ctx.store.wide_statuses(sub, bu)],
        }
        for sub in subs
    ]
    return Result(_ok(ctx, results, problems), "partial" if problems else "ok", len(inputs))


#: (endpoint name, method) -> handler; the router in ``_app`` maps paths to endpoint names.
HANDLERS = {
    ("definitions", "GET"): definitions,
    ("statuses", "GET"): get_statuses,
    ("statuses", "POST"): set_status,
    ("unsubscribe_all", "GET"): get_unsubscribe_all,
    ("unsubscribe_all", "POST"): post_unsubscribe_all,
    ("batch_write", "POST"): batch_write,
    ("batch_read", "POST"): batch_read,
    ("batch_unsubscribe_all", "POST"): batch_unsubscribe_all,
    ("batch_unsubscribe_all_read", "POST"): batch_unsubscribe_all_read,
}

#: Endpoints whose success changes state (candidates for ``drop_after_write_rate``).
WRITE_ENDPOINTS = frozenset({"statuses:POST", "unsubscribe_all:POST", "batch_write:POST", "batch_unsubscribe_all:POST"})
