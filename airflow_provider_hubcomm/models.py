"""Pydantic v2 models of HubSpot's Communication Preferences API.

Requests we build are strict (``extra="forbid"``, enums, positive int64 ids, e-mail-like subscriber ids), by
the rules of :mod:`~airflow_provider_hubcomm.rules` (whose enums and ``is_valid_email`` are re-exported here);
responses are tolerant (``extra="allow"``, every field optional, enum-like fields as plain ``str``), because
HubSpot's own examples break its schema and a new field must never break a run.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Generic, TypeVar

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationInfo,
    field_validator,
    model_validator,
)

from airflow_provider_hubcomm.rules import (
    EMAIL_MAX_LEN,
    PAIR_RULE,
    SUBSCRIPTION_ID_MAX,
    Channel,
    LegalBasis,
    StatusState,
    check_enum,
    check_explanation,
    check_subscriber,
    is_valid_email,
    refuse_bool_or_fraction,
)

__all__ = [
    "AccessTokenResponse",
    "ActionResponse",
    "BatchReadResponse",
    "BatchStatus",
    "BatchUnsubscribeAllResponse",
    "BatchWideReadResponse",
    "BatchWriteResponse",
    "Channel",
    "LegalBasis",
    "PublicStatus",
    "PublicWideStatus",
    "StandardError",
    "StatusState",
    "StatusUpdate",
    "StatusWrite",
    "SubscriberOptOut",
    "SubscriberStatuses",
    "SubscriberWideStatuses",
    "SubscriptionDefinition",
    "is_valid_email",
]


class BatchStatus(StrEnum):
    """Status of a HubSpot batch/action envelope."""

    PENDING = "PENDING"
    PROCESSING = "PROCESSING"
    CANCELED = "CANCELED"
    COMPLETE = "COMPLETE"


T = TypeVar("T")


def _none_to_list(value: Any) -> Any:
    return [] if value is None else value


#: A list HubSpot may send as ``null`` (read as empty).
ListOrNull = Annotated[list[T], BeforeValidator(_none_to_list)]

#: ``subscriptionId``: pydantic's int parser, bounded; :func:`~.rules.refuse_bool_or_fraction` runs first.
SubscriptionId = Annotated[int, Field(gt=0, le=SUBSCRIPTION_ID_MAX, strict=False)]


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True, use_enum_values=False)


class StatusUpdate(_Request):
    """Body of the single-status write (``PartialPublicStatusRequest``).

    ``statusState``, ``channel`` and ``legalBasis`` are accepted case-insensitively. ``legalBasis`` and
    ``legalBasisExplanation`` go together: HubSpot needs both when the account's GDPR settings are on.
    """

    channel: Channel = Channel.EMAIL
    status_state: StatusState = Field(alias="statusState")
    subscription_id: SubscriptionId = Field(alias="subscriptionId")
    legal_basis: LegalBasis | None = Field(default=None, alias="legalBasis")
    legal_basis_explanation: str | None = Field(default=None, alias="legalBasisExplanation")

    @field_validator("channel", "status_state", "legal_basis", mode="before")
    @classmethod
    def _enum(cls, value: Any, info: ValidationInfo) -> Any:
        name = info.field_name or ""
        return value if value is None else check_enum(cls.model_fields[name].alias or name, value)

    @field_validator("subscription_id", mode="before")
    @classmethod
    def _no_bool_or_float(cls, value: Any) -> Any:
        return refuse_bool_or_fraction(value)

    @field_validator("legal_basis_explanation", mode="before")
    @classmethod
    def _explanation(cls, value: Any) -> Any:
        return value if value is None else check_explanation(value)

    @model_validator(mode="after")
    def _basis_pair(self) -> StatusUpdate:
        if (self.legal_basis is None) != (self.legal_basis_explanation is None):
            raise ValueError(PAIR_RULE)
        return self

    def to_api(self) -> dict[str, Any]:
        """Return the JSON body with HubSpot's field names, omitting unset optional fields."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class StatusWrite(StatusUpdate):
    """One input of the batch write (``PublicStatusRequest``): a status update plus the subscriber."""

    subscriber_id_string: str = Field(alias="subscriberIdString", max_length=EMAIL_MAX_LEN)

    @field_validator("subscriber_id_string", mode="before")
    @classmethod
    def _email(cls, value: Any) -> Any:
        return check_subscriber(value)


class _Response(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)


class PublicStatus(_Response):
    """One subscription status as HubSpot reports it."""

    channel: str | None = None
    source: str | None = None
    status: str | None = None
    subscriber_id_string: str | None = Field(default=None, alias="subscriberIdString")
    subscription_id: int | None = Field(default=None, alias="subscriptionId")
    timestamp: str | None = None
    business_unit_id: int | None = Field(default=None, alias="businessUnitId")
    legal_basis: str | None = Field(default=None, alias="legalBasis")
    legal_basis_explanation: str | None = Field(default=None, alias="legalBasisExplanation")
    subscription_name: str | None = Field(default=None, alias="subscriptionName")
    set_status_success_reason: str | None = Field(default=None, alias="setStatusSuccessReason")


class PublicWideStatus(_Response):
    """Whether a subscriber opted out of all email (portal- or brand-wide)."""

    channel: str | None = None
    status: str | None = None
    subscriber_id_string: str | None = Field(default=None, alias="subscriberIdString")
    timestamp: str | None = None
    wide_status_type: str | None = Field(default=None, alias="wideStatusType")
    business_unit_id: int | None = Field(default=None, alias="businessUnitId")


class StandardError(_Response):
    """One per-input error inside a batch answer."""

    status: str | None = None
    category: str | None = None
    message: str | None = None
    context: dict[str, Any] = Field(default_factory=dict)
    errors: list[Any] = Field(default_factory=list)
    links: dict[str, Any] | None = None
    id: str | None = None
    sub_category: Any = Field(default=None, alias="subCategory")

    @field_validator("context", mode="before")
    @classmethod
    def _context_dict(cls, value: Any) -> Any:
        return value if isinstance(value, dict) else {}


class ActionResponse(_Response, Generic[T]):
    """HubSpot's action/batch envelope: ``status``, ``results``, errors and timestamps."""

    status: str | None = None
    results: ListOrNull[T] = Field(default_factory=list)
    requested_at: str | None = Field(default=None, alias="requestedAt")
    started_at: str | None = Field(default=None, alias="startedAt")
    completed_at: str | None = Field(default=None, alias="completedAt")
    links: dict[str, Any] | None = None
    errors: ListOrNull[StandardError] = Field(default_factory=list)
    num_errors: int | None = Field(default=None, alias="numErrors")
    #: HubSpot's correlation id of the HTTP answer (from its ``X-HubSpot-Correlation-Id`` header), if any.
    _correlation_id: str | None = PrivateAttr(default=None)

    @property
    def correlation_id(self) -> str | None:
        """HubSpot's correlation id of the answer this envelope came from (for support requests)."""
        return self._correlation_id


class SubscriberStatuses(_Response):
    """One subscriber's statuses in a batch read answer."""

    subscriber_id_string: str | None = Field(default=None, alias="subscriberIdString")
    statuses: list[PublicStatus] = Field(default_factory=list)


class SubscriberWideStatuses(_Response):
    """One subscriber's opt-out-of-all statuses in a ``batch/unsubscribe-all/read`` answer."""

    subscriber_id_string: str | None = Field(default=None, alias="subscriberIdString")
    wide_statuses: ListOrNull[PublicWideStatus] = Field(default_factory=list, alias="wideStatuses")


class SubscriberOptOut(_Response):
    """One subscriber's result in a ``batch/unsubscribe-all`` answer (``statuses`` only with ``verbose``)."""

    subscriber_id_string: str | None = Field(default=None, alias="subscriberIdString")
    statuses: ListOrNull[PublicStatus] = Field(default_factory=list)


class SubscriptionDefinition(_Response):
    """A subscription type defined in the account (``id`` is a string in HubSpot's schema)."""

    id: str | None = None
    name: str | None = None
    description: str | None = None
    is_active: bool | None = Field(default=None, alias="isActive")
    is_default: bool | None = Field(default=None, alias="isDefault")
    is_internal: bool | None = Field(default=None, alias="isInternal")
    business_unit_id: int | None = Field(default=None, alias="businessUnitId")
    communication_method: str | None = Field(default=None, alias="communicationMethod")
    purpose: str | None = None
    created_at: str | None = Field(default=None, alias="createdAt")
    updated_at: str | None = Field(default=None, alias="updatedAt")


class AccessTokenResponse(_Response):
    """Answer of the OAuth token endpoint. Its ``repr`` hides the tokens."""

    access_token: str = Field(repr=False)
    refresh_token: str | None = Field(default=None, repr=False)
    expires_in: float = 1800.0
    token_type: str | None = None


class WrittenKey(BaseModel):
    """The slim view of one written status the batch engine needs (which subscriber and subscription).

    Parsing thousands of full :class:`PublicStatus` records per second costs more CPU than the rest of a
    run; unknown fields are ignored here instead of kept.
    """

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    subscriber_id_string: str | None = Field(default=None, alias="subscriberIdString")
    subscription_id: int | None = Field(default=None, alias="subscriptionId")


#: Concrete envelopes.
StatusResponse = ActionResponse[PublicStatus]
BatchWriteResponse = ActionResponse[PublicStatus]
BatchWriteAck = ActionResponse[WrittenKey]
BatchReadResponse = ActionResponse[SubscriberStatuses]
BatchWideReadResponse = ActionResponse[SubscriberWideStatuses]
BatchUnsubscribeAllResponse = ActionResponse[SubscriberOptOut]
WideStatusResponse = ActionResponse[PublicWideStatus]
DefinitionsResponse = ActionResponse[SubscriptionDefinition]
