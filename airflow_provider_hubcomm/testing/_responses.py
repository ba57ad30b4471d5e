"""JSON bodies the fake answers with, shaped like HubSpot's: envelopes, records and error bodies."""

from __future__ import annotations

import html
import json
from typing import TYPE_CHECKING, Any

from airflow_provider_hubcomm.testing._messages import HttpResponse

if TYPE_CHECKING:
    from airflow_provider_hubcomm.testing._config import SubscriptionDef
    from airflow_provider_hubcomm.testing._state import StatusRecord

__all__ = [
    "ValidationFailed",
    "definition",
    "envelope",
    "error_response",
    "html_response",
    "json_response",
    "missing_scopes_body",
    "public_status",
    "rate_limit_body",
    "standard_error",
    "wide_status",
]

_ERROR_CATEGORY = {
    400: "VALIDATION_ERROR",
    401: "INVALID_AUTHENTICATION",
    403: "MISSING_SCOPES",
    404: "OBJECT_NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    413: "VALIDATION_ERROR",
    431: "VALIDATION_ERROR",
    500: "INTERNAL_ERROR",
    502: "BAD_GATEWAY",
    503: "SERVICE_UNAVAILABLE",
    504: "GATEWAY_TIMEOUT",
}


class ValidationFailed(Exception):
    """A whole-request 400: ``errors`` are ``{"message", "in"}`` items naming each bad field.

    :param errors: the problems found, in request order.
    """

    def __init__(self, errors: list[dict[str, str]]) -> None:
        self.errors = errors
        first = errors[0]["message"] if errors else "Invalid input"
        more = f" (and {len(errors) - 1} more error(s))" if len(errors) > 1 else ""
        super().__init__(first + more)


_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


def dumps(obj: Any) -> bytes:
    """Encode ``obj`` as compact UTF-8 JSON.

    :param obj: JSON-ready data.
    """
    return _ENCODER.encode(obj).encode()


def json_response(status: int, obj: Any, headers: list[tuple[str, str]] | None = None) -> HttpResponse:
    """Build a JSON answer.

    :param status: HTTP status.
    :param obj: JSON-ready body.
    :param headers: extra headers.
    """
    return HttpResponse(status, dumps(obj), headers)


def error_body(
    message: str, correlation_id: str, category: str, errors: list[dict[str, str]] | None = None
) -> dict[str, Any]:
    """Return HubSpot's standard ``Error`` body.

    :param message: human-readable message.
    :param correlation_id: the request's correlation id.
    :param category: e.g. ``VALIDATION_ERROR``.
    :param errors: per-field details (``message`` and ``in``).
    """
    body: dict[str, Any] = {
        "status": "error",
        "message": message,
        "correlationId": correlation_id,
        "category": category,
    }
    if errors:
        body["errors"] = errors
    return body


def error_response(
    status: int,
    message: str,
    correlation_id: str,
    category: str | None = None,
    errors: list[dict[str, str]] | None = None,
) -> HttpResponse:
    """Build an error answer with the standard body.

    :param status: HTTP status.
    :param message: human-readable message.
    :param correlation_id: the request's correlation id.
    :param category: defaults to the usual category of ``status``.
    :param errors: per-field details.
    """
    cat = category or _ERROR_CATEGORY.get(status, "ERROR")
    return json_response(status, error_body(message, correlation_id, cat, errors))


def html_response(status: int, message: str, correlation_id: str) -> HttpResponse:
    """Build a load-balancer style HTML error page (for ``html_5xx``).

    :param status: HTTP status.
    :param message: the sentence shown on the page.
    :param correlation_id: shown as a reference, as edge pages do.
    """
    text = html.escape(message)
    page = (
        f"<!DOCTYPE html>\n<html><head><title>{status} Error</title></head>"
        f"<body><h1>{status} Error</h1><p>{text}</p><p>Reference: {correlation_id}</p></body></html>\n"
    )
    return HttpResponse(status, page.encode(), content_type="text/html; charset=utf-8")


def missing_scopes_body(correlation_id: str, scope: str) -> dict[str, Any]:
    """Return the ``Error`` body of a 403 ``MISSING_SCOPES`` (batch endpoints on a smaller account).

    :param correlation_id: the request's correlation id.
    :param scope: the granular scope the endpoint needs.
    """
    return {
        "status": "error",
        "message": "This app hasn't been granted all required scopes to make this call. Read more about "
        "required scopes here: https://developers.hubspot.com/scopes.",
        "correlationId": correlation_id,
        "category": "MISSING_SCOPES",
        "context": {"requiredGranularScopes": [scope]},
        "errors": [
            {
                "message": "One or more of the following scopes are required.",
                "context": {"requiredGranularScopes": [scope]},
            }
        ],
        "links": {"scopes": "https://developers.hubspot.com/scopes"},
    }


def rate_limit_body(correlation_id: str, policy: str = "TEN_SECONDLY_ROLLING") -> dict[str, Any]:
    """Return the body of a 429 of one of HubSpot's rate-limit policies.

    :param correlation_id: the request's correlation id.
    :param policy: ``TEN_SECONDLY_ROLLING`` (the rolling window) or ``DAILY`` (the account's daily budget).
    """
    return {
        "status": "error",
        "message": f"You have reached your {policy.lower()} limit.",
        "errorType": "RATE_LIMIT",
        "correlationId": correlation_id,
        "policyName": policy,
        "requestId": correlation_id,
    }


def standard_error(
    status: int, category: str, message: str, context: dict[str, list[str]], sub_category: str | None = None
) -> dict[str, Any]:
    """Return a per-input ``StandardError`` with every field HubSpot's schema requires.

    Required: ``status``, ``category``, ``message``, ``context``, ``errors``, ``links``; ``subCategory`` is optional.

    :param status: HTTP status it stands for (sent as a string, as HubSpot does).
    :param category: e.g. ``VALIDATION_ERROR``.
    :param message: human-readable message.
    :param context: names the failing input, e.g. ``{"subscriberIdString": ["x"], "subscriptionId": ["101"]}``.
    :param sub_category: optional ``subCategory``.
    """
    out: dict[str, Any] = {
        "status": str(status),
        "category": category,
        "message": message,
        "context": context,
        "errors": [],
        "links": {},
    }
    if sub_category is not None:
        out["subCategory"] = sub_category
    return out


def envelope(
    results: list[Any],
    requested_at: str,
    started_at: str,
    completed_at: str,
    status: str = "COMPLETE",
    errors: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Return an action/batch envelope.

    :param results: the records.
    :param requested_at: when the request arrived.
    :param started_at: when its processing started (after any injected latency).
    :param completed_at: when the answer was complete (the spec requires it, even on ``PENDING``).
    :param status: ``COMPLETE``, ``PENDING``, ``PROCESSING`` or ``CANCELED``.
    :param errors: per-input errors; when given, ``numErrors`` is added.
    """
    body: dict[str, Any] = {"status": status, "results": results, "requestedAt": requested_at}
    body["startedAt"] = started_at
    body["completedAt"] = completed_at
    if errors:
        body["errors"] = errors
        body["numErrors"] = len(errors)
    return body


def public_status(
    d: SubscriptionDef,
    subscriber: str,
    rec: StatusRecord | None,
    default_timestamp: str,
    reason: str | None = None,
) -> dict[str, Any]:
    """Return a ``PublicStatus`` record.

    :param d: the subscription definition.
    :param subscriber: the subscriber id as HubSpot shows it (lowercase).
    :param rec: the stored record, or ``None`` for a never-set status (``NOT_SPECIFIED``).
    :param default_timestamp: timestamp shown for a never-set status.
    :param reason: ``setStatusSuccessReason`` (write answers only).
    """
    out: dict[str, Any] = {
        "channel": "EMAIL",
        "source": rec.source if rec else "Default",
        "status": rec.status if rec else "NOT_SPECIFIED",
        "subscriberIdString": subscriber,
        "subscriptionId": d.id,
        "timestamp": rec.timestamp if rec else default_timestamp,
        "businessUnitId": d.business_unit_id,
        "subscriptionName": d.name,
    }
    # Optional enum/string fields are left out when unset (the spec has no null for them).
    if rec is not None and rec.legal_basis is not None:
        out["legalBasis"] = rec.legal_basis
    if rec is not None and rec.legal_basis_explanation is not None:
        out["legalBasisExplanation"] = rec.legal_basis_explanation
    if reason is not None:
        out["setStatusSuccessReason"] = reason
    return out


def wide_status(subscriber: str, business_unit_id: int, timestamp: str) -> dict[str, Any]:
    """Return a ``PublicWideStatus`` record (the subscriber opted out of all e-mail).

    :param subscriber: the subscriber id (lowercase).
    :param business_unit_id: the brand.
    :param timestamp: when the opt-out happened.
    """
    return {
        "channel": "EMAIL",
        "status": "UNSUBSCRIBED",
        "subscriberIdString": subscriber,
        "timestamp": timestamp,
        "wideStatusType": "PORTAL_WIDE" if business_unit_id == 0 else "BUSINESS_UNIT_WIDE",
        "businessUnitId": business_unit_id,
    }


def definition(d: SubscriptionDef, created_at: str, translations: bool) -> dict[str, Any]:
    """Return a ``SubscriptionDefinition`` record (``id`` is a string, as in HubSpot's answers).

    :param d: the definition.
    :param created_at: ``createdAt`` and ``updatedAt`` value.
    :param translations: add an (empty) ``subscriptionTranslations`` list.
    """
    out: dict[str, Any] = {
        "id": str(d.id),
        "name": d.name,
        "description": d.description,
        "purpose": d.purpose,
        "communicationMethod": d.communication_method,
        "isActive": d.is_active,
        "isDefault": d.is_default,
        "isInternal": d.is_internal,
        "createdAt": created_at,
        "updatedAt": created_at,
        "businessUnitId": d.business_unit_id,
    }
    if translations:
        out["subscriptionTranslations"] = []
    return out
