"""The re-subscribe guard of a single write, brand-aware (issue 16.1).

A ``SUBSCRIBED`` write with ``allow_resubscribe=False`` is refused, nothing sent, when:

* the subscription is unknown to the account's definitions, or inactive;
* HubSpot has the subscription ``UNSUBSCRIBED`` for the contact, read WITH the subscription's brand
  (``businessUnitId``: a read without it, or with another brand, does not see that brand's statuses);
* the contact opted out of all e-mail, for that brand or portal-wide.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from airflow_provider_hubcomm.exceptions import HubCommValidationError
from airflow_provider_hubcomm.models import StatusState

if TYPE_CHECKING:
    from airflow_provider_hubcomm.hooks._catalog import SubscriptionCatalog
    from airflow_provider_hubcomm.models import Channel, StatusResponse, StatusUpdate, WideStatusResponse

__all__ = ["GuardReads", "afind_resubscribe_problem", "find_resubscribe_problem"]


class GuardReads(Protocol):
    """What the guard needs of the hook: the subscription catalog and the two status reads, sync and async."""

    def subscription_catalog(self) -> SubscriptionCatalog:
        """Return the account's subscriptions."""

    async def asubscription_catalog(self) -> SubscriptionCatalog:
        """Async twin of :meth:`subscription_catalog`."""

    def get_statuses(
        self, subscriber_id: str, *, channel: Channel | str = ..., business_unit_id: int | None = ...
    ) -> StatusResponse:
        """Read a subscriber's statuses in one brand."""

    async def aget_statuses(
        self, subscriber_id: str, *, channel: Channel | str = ..., business_unit_id: int | None = ...
    ) -> StatusResponse:
        """Async twin of :meth:`get_statuses`."""

    def get_unsubscribe_all_status(
        self, subscriber_id: str, *, channel: Channel | str = ..., business_unit_id: int | None = ...
    ) -> WideStatusResponse:
        """Read whether a subscriber opted out of all e-mail of a brand (or portal-wide)."""

    async def aget_unsubscribe_all_status(
        self, subscriber_id: str, *, channel: Channel | str = ..., business_unit_id: int | None = ...
    ) -> WideStatusResponse:
        """Async twin of :meth:`get_unsubscribe_all_status`."""


_ALLOW = "Pass allow_resubscribe=True only with the contact's explicit permission."


def _refusal(subscriber_id: str, update: StatusUpdate, why: str, reason: str) -> HubCommValidationError:
    error: dict[str, Any] = {
        "row": None,
        "field": "statusState",
        "value": "SUBSCRIBED",
        "message": reason,
        "allowed": None,
    }
    return HubCommValidationError(
        f"refusing to re-subscribe {subscriber_id} to subscription {update.subscription_id}: {why}. Nothing was sent.",
        [error],
    )


def _catalog_problem(
    subscriber_id: str, update: StatusUpdate, catalog: SubscriptionCatalog
) -> HubCommValidationError | None:
    problem = catalog.problem(update.subscription_id)
    if problem is None:
        return None
    reason, message = problem
    error: dict[str, Any] = {
        "row": None,
        "field": "subscriptionId",
        "value": update.subscription_id,
        "message": reason,
        "allowed": catalog.known(),
    }
    return HubCommValidationError(
        f"refusing to write subscription {update.subscription_id} for {subscriber_id}: {message} "
        f"(known subscriptions: {catalog.known()}). Nothing was sent.",
        [error],
    )


def _status_problem(
    subscriber_id: str, update: StatusUpdate, brand: int, current: StatusResponse
) -> HubCommValidationError | None:
    for status in current.results:
        if status.subscription_id == update.subscription_id and (status.status or "").upper() == "UNSUBSCRIBED":
            return _refusal(
                subscriber_id,
                update,
                f"HubSpot has it UNSUBSCRIBED in brand {brand} (the contact opted out). {_ALLOW}",
                "would re-subscribe an UNSUBSCRIBED contact",
            )
    return None


def _wide_problem(
    subscriber_id: str, update: StatusUpdate, brand: int, wide: WideStatusResponse
) -> HubCommValidationError | None:
    if wide.results:
        scope = ", ".join(sorted({str(w.wide_status_type or "opted out of all e-mail") for w in wide.results}))
        return _refusal(
            subscriber_id,
            update,
            f"the contact opted out of all e-mail for brand {brand} or portal-wide ({scope}). {_ALLOW}",
            "would re-subscribe a contact who opted out of all e-mail",
        )
    return None


def _guarded(update: StatusUpdate) -> bool:
    return update.status_state is StatusState.SUBSCRIBED


def find_resubscribe_problem(
    hook: GuardReads, subscriber_id: str, update: StatusUpdate
) -> HubCommValidationError | None:
    """Return the error refusing this write (see the module docstring), or ``None`` when it may be sent.

    :param hook: the hook (catalog and reads).
    :param subscriber_id: the subscriber's e-mail address.
    :param update: the write.
    """
    if not _guarded(update):
        return None
    catalog = hook.subscription_catalog()
    refused = _catalog_problem(subscriber_id, update, catalog)
    if refused is not None:
        return refused
    brand = catalog.brand_of(update.subscription_id)
    assert brand is not None
    current = hook.get_statuses(subscriber_id, channel=update.channel, business_unit_id=brand)
    refused = _status_problem(subscriber_id, update, brand, current)
    if refused is not None:
        return refused
    wide = hook.get_unsubscribe_all_status(subscriber_id, channel=update.channel, business_unit_id=brand)
    return _wide_problem(subscriber_id, update, brand, wide)


async def afind_resubscribe_problem(
    hook: GuardReads, subscriber_id: str, update: StatusUpdate
) -> HubCommValidationError | None:
    """Async twin of :func:`find_resubscribe_problem`.

    :param hook: the hook.
    :param subscriber_id: the subscriber's e-mail address.
    :param update: the write.
    """
    if not _guarded(update):
        return None
    catalog = await hook.asubscription_catalog()
    refused = _catalog_problem(subscriber_id, update, catalog)
    if refused is not None:
        return refused
    brand = catalog.brand_of(update.subscription_id)
    assert brand is not None
    current = await hook.aget_statuses(subscriber_id, channel=update.channel, business_unit_id=brand)
    refused = _status_problem(subscriber_id, update, brand, current)
    if refused is not None:
        return refused
    wide = await hook.aget_unsubscribe_all_status(subscriber_id, channel=update.channel, business_unit_id=brand)
    return _wide_problem(subscriber_id, update, brand, wide)
