"""Operators that write HubSpot communication preferences: one status, unsubscribe-all, and batches."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow_provider_hubcomm.exceptions import HubCommValidationError
from airflow_provider_hubcomm.operators._arguments import check_status_arguments, check_unsubscribe_all_arguments
from airflow_provider_hubcomm.operators._base import HubCommBaseOperator
from airflow_provider_hubcomm.operators.batch import BatchWriteStatusesOperator

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_provider_hubcomm.models import StatusUpdate
    from airflow_provider_hubcomm.operators._arguments import StatusArguments

__all__ = [
    "BatchWriteStatusesOperator",
    "HubCommBaseOperator",
    "SetStatusOperator",
    "UnsubscribeAllOperator",
]


class SetStatusOperator(HubCommBaseOperator):
    """Set one subscription status of one contact (``POST /communication-preferences/2026-03/statuses/{id}``).

    Arguments are validated before any request (case-insensitive enums; the message names the argument,
    shows the value as given and lists the allowed values). ``subscription_id`` may be the subscription's
    name (e.g. ``"Newsletter"``, case-insensitive): it is resolved through the account's subscription
    definitions first (an unknown or ambiguous name fails, naming ``subscription_id``).

    Returns HubSpot's answer as JSON: ``results`` holds the status written, with ``setStatusSuccessReason``
    (``REQUESTED_CHANGE_OCCURRED``, ``NO_STATUS_CHANGE``, …).

    **Re-subscribe guardrail.** Setting ``SUBSCRIBED`` on a subscription the contact is ``UNSUBSCRIBED`` from
    re-subscribes someone who opted out; HubSpot allows it, the law and the contact usually do not (stale
    warehouse data is the common cause). Unless ``allow_resubscribe=True``, a ``SUBSCRIBED`` write first
    reads the contact's statuses and fails, sending nothing, if it would re-subscribe.

    Retrying the task is safe: the write sets a state, so repeating it changes nothing (``NO_STATUS_CHANGE``).
    When HubSpot answers ``PENDING`` or ``PROCESSING`` (it has not confirmed the change yet), the task
    succeeds and logs a warning.

    .. code-block:: python

        SetStatusOperator(
            task_id="opt_out",
            subscriber_id="{{ params.email }}",
            subscription_id=101,
            status="UNSUBSCRIBED",
            legal_basis="LEGITIMATE_INTEREST_CLIENT",
            legal_basis_explanation="Customer asked support to stop newsletters",
        )

    :param subscriber_id: the contact's e-mail address (templated).
    :param subscription_id: the subscription id or name (templated).
    :param status: ``SUBSCRIBED``, ``UNSUBSCRIBED`` or ``NOT_SPECIFIED``, any case (templated).
    :param legal_basis: GDPR legal basis, given together with ``legal_basis_explanation`` (templated).
    :param legal_basis_explanation: free-text explanation of the legal basis (templated).
    :param channel: the channel; HubSpot supports only ``EMAIL`` (templated).
    :param allow_resubscribe: allow re-subscribing a contact who is ``UNSUBSCRIBED`` (see above).
    :param hubcomm_conn_id: the ``hubcomm`` connection to use.
    """

    template_fields: Sequence[str] = (
        "subscriber_id",
        "subscription_id",
        "status",
        "legal_basis",
        "legal_basis_explanation",
        "channel",
    )

    def __init__(
        self,
        *,
        subscriber_id: str,
        subscription_id: int | str,
        status: str,
        legal_basis: str | None = None,
        legal_basis_explanation: str | None = None,
        channel: str = "EMAIL",
        allow_resubscribe: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.subscriber_id = subscriber_id
        self.subscription_id = subscription_id
        self.status = status
        self.legal_basis = legal_basis
        self.legal_basis_explanation = legal_basis_explanation
        self.channel = channel
        self.allow_resubscribe = allow_resubscribe

    def _arguments(self) -> StatusArguments:
        return check_status_arguments(
            subscriber_id=self.subscriber_id,
            subscription_id=self.subscription_id,
            status=self.status,
            channel=self.channel,
            legal_basis=self.legal_basis,
            legal_basis_explanation=self.legal_basis_explanation,
        )

    def _update(self, args: StatusArguments) -> StatusUpdate:
        """Build the request body; resolve a subscription name through the catalog (one read)."""
        from airflow_provider_hubcomm.hooks._catalog import SubscriptionLookupError
        from airflow_provider_hubcomm.models import StatusUpdate
        from airflow_provider_hubcomm.rules import argument_problem, arguments_message

        subscription = args.subscription
        if isinstance(subscription, str):
            try:
                found = self.hook.subscription_catalog().resolve(subscription)
            except SubscriptionLookupError as err:
                problems = [argument_problem("subscription_id", subscription, str(err))]
                raise HubCommValidationError(arguments_message(problems), problems) from None
            self.log.info("subscription_id %r is subscription %s.", subscription, found.describe())
            subscription = found.id
        return StatusUpdate.model_validate(
            {
                "subscriptionId": subscription,
                "statusState": args.status,
                "channel": args.channel,
                "legalBasis": args.legal_basis,
                "legalBasisExplanation": args.legal_basis_explanation,
            }
        )

    def execute(self, context: Context) -> dict[str, Any]:
        """Validate, check the re-subscribe guardrail, write the status; return HubSpot's answer."""
        args = self._arguments()
        subscriber = args.subscriber
        self._start(context)
        try:
            update = self._update(args)
            answer = self.hook.set_status(subscriber, update, allow_resubscribe=self.allow_resubscribe)
        finally:
            self.hook.close()
        reasons = sorted({s.set_status_success_reason or "n/a" for s in answer.results})
        self.log.info(
            "Set %s on subscription %d for %s: %s.",
            update.status_state.value,
            update.subscription_id,
            subscriber,
            ", ".join(reasons),
        )
        if str(answer.status or "").upper() in ("PENDING", "PROCESSING"):
            self.log.warning(
                "HubSpot answered %s: it accepted the change but has not confirmed it yet; read the status "
                "back later (BatchStatusSensor) to verify it.",
                answer.status,
            )
        return answer.model_dump(mode="json", by_alias=True, exclude_none=True)


class UnsubscribeAllOperator(HubCommBaseOperator):
    """Unsubscribe one contact from all e-mail (``POST …/{api_version}/statuses/{id}/unsubscribe-all``).

    Returns HubSpot's answer as JSON; with ``verbose=True`` its ``results`` list every status that changed
    (``setStatusSuccessReason: UNSUBSCRIBE_FROM_ALL_OCCURRED``), otherwise they are empty. Idempotent:
    retrying the task is safe.

    :param subscriber_id: the contact's e-mail address (templated).
    :param channel: the channel; HubSpot supports only ``EMAIL`` (templated).
    :param business_unit_id: the brand to opt out of; required by HubSpot with the Brands add-on (templated).
    :param verbose: ask HubSpot to list every status it changed.
    :param hubcomm_conn_id: the ``hubcomm`` connection to use.
    """

    template_fields: Sequence[str] = ("subscriber_id", "channel", "business_unit_id")

    def __init__(
        self,
        *,
        subscriber_id: str,
        channel: str = "EMAIL",
        business_unit_id: int | str | None = None,
        verbose: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.subscriber_id = subscriber_id
        self.channel = channel
        self.business_unit_id = business_unit_id
        self.verbose = verbose

    def execute(self, context: Context) -> dict[str, Any]:
        """Validate and unsubscribe the contact from all e-mail; return HubSpot's answer."""
        from airflow_provider_hubcomm.rules import Channel

        subscriber, channel_name, unit = check_unsubscribe_all_arguments(
            subscriber_id=self.subscriber_id, channel=self.channel, business_unit_id=self.business_unit_id
        )
        channel = Channel(channel_name)
        self._start(context)
        try:
            answer = self.hook.unsubscribe_all(
                subscriber, channel=channel, business_unit_id=unit, verbose=bool(self.verbose)
            )
        finally:
            self.hook.close()
        self.log.info("Unsubscribed %s from all %s (%d statuses reported).", subscriber, channel, len(answer.results))
        return answer.model_dump(mode="json", by_alias=True, exclude_none=True)
