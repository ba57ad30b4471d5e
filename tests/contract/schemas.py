"""HubSpot's published contract for the Communication Preferences API (``2026-03`` = ``v4``), as JSON Schema data.

Written by hand from the project's API notes (``shared/hubspot/API.md`` §2.1, §6, §8 and its Update block),
which summarise HubSpot's OpenAPI files; nothing is copied from HubSpot's spec files. "req" in the notes
becomes ``required`` here, and every enum the notes list becomes ``enum``.

* Request bodies are closed (``additionalProperties: false``): the provider must send only what the spec
  declares, with strict enums.
* Responses are open (extra fields allowed), as HubSpot may add fields at any time.
"""

from __future__ import annotations

from typing import Any, Final

INT64: Final[dict[str, Any]] = {"type": "integer", "minimum": -(2**63), "maximum": 2**63 - 1}
INT32: Final[dict[str, Any]] = {"type": "integer", "minimum": -(2**31), "maximum": 2**31 - 1}
#: ``format: date-time`` (RFC 3339); a pattern so no optional format checker package is needed.
DATE_TIME: Final[dict[str, Any]] = {
    "type": "string",
    "pattern": r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$",
}
STRING: Final[dict[str, Any]] = {"type": "string"}

CHANNEL: Final[dict[str, Any]] = {"type": "string", "enum": ["EMAIL"]}
STATUS_STATE: Final[dict[str, Any]] = {"type": "string", "enum": ["SUBSCRIBED", "UNSUBSCRIBED", "NOT_SPECIFIED"]}
LEGAL_BASIS: Final[dict[str, Any]] = {
    "type": "string",
    "enum": [
        "CONSENT_WITH_NOTICE",
        "LEGITIMATE_INTEREST_CLIENT",
        "LEGITIMATE_INTEREST_OTHER",
        "LEGITIMATE_INTEREST_PQL",
        "NON_GDPR",
        "PERFORMANCE_OF_CONTRACT",
        "PROCESS_AND_STORE",
    ],
}
ENVELOPE_STATUS: Final[dict[str, Any]] = {"type": "string", "enum": ["PENDING", "PROCESSING", "CANCELED", "COMPLETE"]}
SET_STATUS_SUCCESS_REASON: Final[dict[str, Any]] = {
    "type": "string",
    "enum": ["NO_STATUS_CHANGE", "REQUESTED_CHANGE_OCCURRED", "RESUBSCRIBE_OCCURRED", "UNSUBSCRIBE_FROM_ALL_OCCURRED"],
}
WIDE_STATUS_TYPE: Final[dict[str, Any]] = {"type": "string", "enum": ["PORTAL_WIDE", "BUSINESS_UNIT_WIDE"]}
STRING_MAP: Final[dict[str, Any]] = {"type": "object", "additionalProperties": {"type": "string"}}
#: ``context`` of errors: a map of string to list of strings (e.g. ``{"missingScopes": ["a", "b"]}``).
CONTEXT: Final[dict[str, Any]] = {"type": "object", "additionalProperties": {"type": "array", "items": STRING}}


def _closed(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": required, "additionalProperties": False}


def _open(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": required}


# -- request bodies ------------------------------------------------------------------------------------------
_WRITE_FIELDS: Final = {
    "channel": CHANNEL,
    "statusState": STATUS_STATE,
    "subscriptionId": INT64,
    "legalBasis": LEGAL_BASIS,
    "legalBasisExplanation": STRING,
}
PARTIAL_PUBLIC_STATUS_REQUEST: Final = _closed(_WRITE_FIELDS, ["channel", "statusState", "subscriptionId"])
PUBLIC_STATUS_REQUEST: Final = _closed(
    {**_WRITE_FIELDS, "subscriberIdString": STRING}, ["channel", "statusState", "subscriptionId", "subscriberIdString"]
)
BATCH_INPUT_PUBLIC_STATUS_REQUEST: Final = _closed(
    {"inputs": {"type": "array", "items": PUBLIC_STATUS_REQUEST}}, ["inputs"]
)
BATCH_INPUT_STRING: Final = _closed({"inputs": {"type": "array", "items": STRING}}, ["inputs"])

# -- records -------------------------------------------------------------------------------------------------
PUBLIC_STATUS: Final = _open(
    {
        "channel": CHANNEL,
        "source": STRING,
        "status": STATUS_STATE,
        "subscriberIdString": STRING,
        "subscriptionId": INT64,
        "timestamp": DATE_TIME,
        "businessUnitId": INT64,
        "legalBasis": LEGAL_BASIS,
        "legalBasisExplanation": STRING,
        "subscriptionName": STRING,
        "setStatusSuccessReason": SET_STATUS_SUCCESS_REASON,
    },
    ["channel", "source", "status", "subscriberIdString", "subscriptionId", "timestamp"],
)
PUBLIC_WIDE_STATUS: Final = _open(
    {
        "channel": CHANNEL,
        "status": STRING,  # the notes give no enum for the wide status
        "subscriberIdString": STRING,
        "timestamp": DATE_TIME,
        "wideStatusType": WIDE_STATUS_TYPE,
        "businessUnitId": INT64,
    },
    ["channel", "status", "subscriberIdString", "timestamp", "wideStatusType"],
)
PUBLIC_SUBSCRIPTION_TRANSLATION: Final = _open(
    {
        "subscriptionId": INT64,
        "languageCode": STRING,
        "name": STRING,
        "description": STRING,
        "createdAt": INT64,  # epoch milliseconds, unlike the definition's own timestamps
        "updatedAt": INT64,
    },
    [],
)
SUBSCRIPTION_DEFINITION: Final = _open(
    {
        "id": STRING,  # a string, although statuses carry subscriptionId as an integer
        "name": STRING,
        "description": STRING,
        "isActive": {"type": "boolean"},
        "isDefault": {"type": "boolean"},
        "isInternal": {"type": "boolean"},
        "createdAt": DATE_TIME,
        "updatedAt": DATE_TIME,
        "businessUnitId": INT64,
        "communicationMethod": STRING,
        "purpose": STRING,
        "subscriptionTranslations": {"type": "array", "items": PUBLIC_SUBSCRIPTION_TRANSLATION},
    },
    ["id", "name", "description", "isActive", "isDefault", "isInternal", "createdAt", "updatedAt"],
)
ERROR_DETAIL: Final = _open(
    {"message": STRING, "code": STRING, "in": STRING, "context": CONTEXT},  # subCategory: any
    ["message"],
)
STANDARD_ERROR: Final = _open(
    {
        "status": {"type": "string", "pattern": r"^\d{3}$"},  # the HTTP code, as a string
        "category": STRING,
        "message": STRING,
        "context": CONTEXT,
        "errors": {"type": "array", "items": ERROR_DETAIL},
        "links": STRING_MAP,
        "id": STRING,
        # subCategory is an object in StandardError and a string in Error: left unconstrained.
    },
    ["status", "category", "message", "context", "errors", "links"],
)
#: The ``default`` answer of every operation (§8).
ERROR: Final = _open(
    {
        "message": STRING,
        "correlationId": STRING,
        "category": STRING,
        "context": CONTEXT,
        "links": STRING_MAP,
        "errors": {"type": "array", "items": ERROR_DETAIL},
    },
    ["category", "correlationId", "message"],
)
#: The 429 body (§6): no ``category``; ``errorType`` and ``policyName`` instead.
RATE_LIMIT_ERROR: Final = _open(
    {
        "status": {"const": "error"},
        "message": STRING,
        "errorType": {"const": "RATE_LIMIT"},
        "correlationId": STRING,
        "policyName": {"enum": ["DAILY", "TEN_SECONDLY_ROLLING", "SECONDLY"]},
        "requestId": STRING,
    },
    ["status", "message", "errorType", "correlationId", "policyName"],
)
#: ``AccessTokenResponse`` of the OAuth token endpoints (§5).
ACCESS_TOKEN_RESPONSE: Final = _open(
    {
        "access_token": STRING,
        "refresh_token": STRING,
        "expires_in": {"type": "number", "exclusiveMinimum": 0},
        "token_type": STRING,
        "token_use": STRING,
    },
    ["access_token", "refresh_token", "expires_in", "token_type"],
)
#: Token endpoint refusals: legacy ``status``/``message`` plus RFC 6749 ``error``/``error_description`` (§5).
OAUTH_ERROR: Final = _open(
    {"status": STRING, "message": STRING, "error": STRING, "error_description": STRING},
    ["status", "message", "error", "error_description"],
)


# -- envelopes -----------------------------------------------------------------------------------------------
def envelope(result: dict[str, Any], *, with_errors: bool | None) -> dict[str, Any]:
    """Return an action or batch envelope whose ``results`` items follow ``result``.

    :param result: schema of one ``results`` item.
    :param with_errors: ``True`` for a ``…WithErrors`` variant (``errors`` and ``numErrors`` required),
        ``None`` where they are optional (batch write, batch unsubscribe-all, action answers).
    """
    schema = _open(
        {
            "status": ENVELOPE_STATUS,
            "results": {"type": "array", "items": result},
            "requestedAt": DATE_TIME,
            "startedAt": DATE_TIME,
            "completedAt": DATE_TIME,
            "links": STRING_MAP,
            "errors": {"type": "array", "items": STANDARD_ERROR},
            "numErrors": INT32,
        },
        ["status", "results", "startedAt", "completedAt"],
    )
    if with_errors:
        schema["required"] = [*schema["required"], "errors", "numErrors"]
    return schema


_BULK_STATUS: Final = _open(
    {"subscriberIdString": STRING, "statuses": {"type": "array", "items": PUBLIC_STATUS}},
    ["subscriberIdString", "statuses"],
)
_BULK_OPT_OUT: Final = _open(
    {"subscriberIdString": STRING, "statuses": {"type": "array", "items": PUBLIC_STATUS}}, ["subscriberIdString"]
)
_BULK_WIDE: Final = _open(
    {"subscriberIdString": STRING, "wideStatuses": {"type": "array", "items": PUBLIC_WIDE_STATUS}},
    ["subscriberIdString", "wideStatuses"],
)

ACTION_RESPONSE_PUBLIC_STATUS: Final = envelope(PUBLIC_STATUS, with_errors=None)
ACTION_RESPONSE_PUBLIC_WIDE_STATUS: Final = envelope(PUBLIC_WIDE_STATUS, with_errors=None)
ACTION_RESPONSE_SUBSCRIPTION_DEFINITION: Final = envelope(SUBSCRIPTION_DEFINITION, with_errors=None)
BATCH_RESPONSE_PUBLIC_STATUS: Final = envelope(PUBLIC_STATUS, with_errors=None)
BATCH_RESPONSE_PUBLIC_STATUS_BULK: Final = envelope(_BULK_STATUS, with_errors=False)
BATCH_RESPONSE_PUBLIC_STATUS_BULK_WITH_ERRORS: Final = envelope(_BULK_STATUS, with_errors=True)
BATCH_RESPONSE_PUBLIC_BULK_OPT_OUT: Final = envelope(_BULK_OPT_OUT, with_errors=None)
BATCH_RESPONSE_PUBLIC_WIDE_STATUS_BULK: Final = envelope(_BULK_WIDE, with_errors=False)
BATCH_RESPONSE_PUBLIC_WIDE_STATUS_BULK_WITH_ERRORS: Final = envelope(_BULK_WIDE, with_errors=True)

#: Endpoint -> {declared 2xx status: schema}. Anything else is answered with :data:`ERROR` (or the 429 body).
SUCCESS: Final[dict[str, dict[int, dict[str, Any]]]] = {
    "definitions": {200: ACTION_RESPONSE_SUBSCRIPTION_DEFINITION},
    "get_statuses": {200: ACTION_RESPONSE_PUBLIC_STATUS},
    "set_status": {200: ACTION_RESPONSE_PUBLIC_STATUS},
    "get_unsubscribe_all": {200: ACTION_RESPONSE_PUBLIC_WIDE_STATUS},
    "unsubscribe_all": {200: ACTION_RESPONSE_PUBLIC_STATUS},
    "batch_read": {200: BATCH_RESPONSE_PUBLIC_STATUS_BULK, 207: BATCH_RESPONSE_PUBLIC_STATUS_BULK_WITH_ERRORS},
    "batch_write": {200: BATCH_RESPONSE_PUBLIC_STATUS},
    "batch_unsubscribe_all": {200: BATCH_RESPONSE_PUBLIC_BULK_OPT_OUT},
    "batch_unsubscribe_all_read": {
        200: BATCH_RESPONSE_PUBLIC_WIDE_STATUS_BULK,
        207: BATCH_RESPONSE_PUBLIC_WIDE_STATUS_BULK_WITH_ERRORS,
    },
}
#: Endpoint -> (method, path template under ``/communication-preferences/{ver}``, required query parameters).
ENDPOINTS: Final[dict[str, tuple[str, str, tuple[str, ...]]]] = {
    "definitions": ("GET", "definitions", ()),
    "get_statuses": ("GET", "statuses/{subscriberIdString}", ("channel",)),
    "set_status": ("POST", "statuses/{subscriberIdString}", ()),
    "get_unsubscribe_all": ("GET", "statuses/{subscriberIdString}/unsubscribe-all", ("channel",)),
    "unsubscribe_all": ("POST", "statuses/{subscriberIdString}/unsubscribe-all", ("channel",)),
    "batch_read": ("POST", "statuses/batch/read", ("channel",)),
    "batch_write": ("POST", "statuses/batch/write", ()),
    "batch_unsubscribe_all": ("POST", "statuses/batch/unsubscribe-all", ("channel",)),
    "batch_unsubscribe_all_read": ("POST", "statuses/batch/unsubscribe-all/read", ("channel",)),
}
#: Endpoint -> schema of its request body (``None``: the spec declares no body).
REQUEST_BODY: Final[dict[str, dict[str, Any] | None]] = {
    "definitions": None,
    "get_statuses": None,
    "set_status": PARTIAL_PUBLIC_STATUS_REQUEST,
    "get_unsubscribe_all": None,
    "unsubscribe_all": None,
    "batch_read": BATCH_INPUT_STRING,
    "batch_write": BATCH_INPUT_PUBLIC_STATUS_REQUEST,
    "batch_unsubscribe_all": BATCH_INPUT_STRING,
    "batch_unsubscribe_all_read": BATCH_INPUT_STRING,
}
#: Endpoint -> every query parameter the spec declares for it (anything else is not in the contract).
QUERY_PARAMS: Final[dict[str, frozenset[str]]] = {
    "definitions": frozenset({"businessUnitId", "includeTranslations"}),
    "get_statuses": frozenset({"channel", "businessUnitId"}),
    "set_status": frozenset(),
    "get_unsubscribe_all": frozenset({"channel", "businessUnitId", "verbose"}),
    "unsubscribe_all": frozenset({"channel", "businessUnitId", "verbose"}),
    "batch_read": frozenset({"channel", "businessUnitId"}),
    "batch_write": frozenset(),
    "batch_unsubscribe_all": frozenset({"channel", "businessUnitId", "verbose"}),
    "batch_unsubscribe_all_read": frozenset({"channel", "businessUnitId"}),
}
