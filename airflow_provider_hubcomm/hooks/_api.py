"""HubSpot API calls of :class:`~airflow_provider_hubcomm.hooks.hubcomm.HubCommHook`, sync and async.

Each call is described once as a :class:`_Call` (method, path, query, body, response model); the hook's
``_execute``/``_aexecute`` run it through the one HTTP policy (rate limiter, retries, error mapping).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow_provider_hubcomm.constants import DEFAULT_API_VERSION, PATH_PREFIX
from airflow_provider_hubcomm.hooks._call import M, _Call, _params, subscriber_segment
from airflow_provider_hubcomm.hooks._guard import afind_resubscribe_problem, find_resubscribe_problem
from airflow_provider_hubcomm.models import (
    BatchReadResponse,
    BatchUnsubscribeAllResponse,
    BatchWideReadResponse,
    BatchWriteAck,
    BatchWriteResponse,
    Channel,
    DefinitionsResponse,
    StatusResponse,
    StatusUpdate,
    StatusWrite,
    WideStatusResponse,
)

if TYPE_CHECKING:
    from airflow_provider_hubcomm.hooks._catalog import SubscriptionCatalog

__all__ = ["HubCommAPIMixin", "_Call", "subscriber_segment"]


class HubCommAPIMixin:
    """The Communication Preferences calls; the hook supplies ``_execute``, ``_aexecute`` and ``config``."""

    def _execute(self, call: _Call[M]) -> M:
        raise NotImplementedError

    async def _aexecute(self, call: _Call[M]) -> M:
        raise NotImplementedError

    def subscription_catalog(self) -> SubscriptionCatalog:
        """Return the account's subscriptions (the hook reads them once)."""
        raise NotImplementedError

    async def asubscription_catalog(self) -> SubscriptionCatalog:
        """Async twin of :meth:`subscription_catalog`."""
        raise NotImplementedError

    def _default_business_unit(self) -> int | None:
        return None

    def _api_version(self) -> str:
        return DEFAULT_API_VERSION

    def _path(self, tail: str) -> str:
        """Return ``/communication-preferences/{api_version}/{tail}`` for the configured API version."""
        return f"{PATH_PREFIX}/{self._api_version()}/{tail}"

    def _bu(self, business_unit_id: int | None) -> int | None:
        return business_unit_id if business_unit_id is not None else self._default_business_unit()

    def _set_status_call(self, subscriber_id: str, update: StatusUpdate) -> _Call[StatusResponse]:
        path = self._path(f"statuses/{subscriber_segment(subscriber_id)}")
        return _Call("POST", path, StatusResponse, json=update.to_api(), confirm=True)

    def _batch_write_call(self, inputs: Sequence[StatusWrite | Mapping[str, Any]]) -> _Call[BatchWriteResponse]:
        body = [i.to_api() if isinstance(i, StatusWrite) else i for i in inputs]
        return _Call("POST", self._path("statuses/batch/write"), BatchWriteResponse, json={"inputs": body})

    def _subscriber_call(
        self,
        method: str,
        tail: str,
        model: type[M],
        subscriber_id: str,
        channel: Channel | str,
        business_unit_id: int | None,
        **more: Any,
    ) -> _Call[M]:
        """Describe ``{method} statuses/{subscriber}{tail}``, with the channel and brand (and ``more``) as query."""
        path = self._path(f"statuses/{subscriber_segment(subscriber_id)}{tail}")
        return _Call(method, path, model, params=_params(channel, self._bu(business_unit_id), **more))

    def _batch_call(
        self,
        tail: str,
        model: type[M],
        subscriber_ids: Sequence[str],
        channel: Channel | str,
        business_unit_id: int | None,
        **more: Any,
    ) -> _Call[M]:
        """Describe ``POST statuses/batch/{tail}`` for many subscribers, channel and brand (and ``more``) as query."""
        params = _params(channel, self._bu(business_unit_id), **more)
        return _Call(
            "POST", self._path(f"statuses/batch/{tail}"), model, params=params, json={"inputs": list(subscriber_ids)}
        )

    def _definitions_call(self, business_unit_id: int | None, include_translations: bool) -> _Call[DefinitionsResponse]:
        params: dict[str, Any] = {}
        if (bu := self._bu(business_unit_id)) is not None:
            params["businessUnitId"] = bu
        if include_translations:
            params["includeTranslations"] = "true"
        path = self._path("definitions")
        return _Call("GET", path, DefinitionsResponse, params=params or None)

    def set_status(self, subscriber_id: str, update: StatusUpdate, *, allow_resubscribe: bool = True) -> StatusResponse:
        """Set one subscription status of one subscriber (``POST …/{api_version}/statuses/{id}``).

        :param subscriber_id: the subscriber's e-mail address.
        :param update: the status to set.
        :param allow_resubscribe: with ``False``, a ``SUBSCRIBED`` write first looks the subscription up in
            :meth:`subscription_catalog` (unknown or inactive: refused), then reads the subscriber's statuses
            and opt-out-of-all status *with that subscription's brand*, and raises
            :class:`~airflow_provider_hubcomm.exceptions.HubCommValidationError`, sending nothing, when the
            contact has it ``UNSUBSCRIBED`` or opted out of all e-mail (for the brand or portal-wide).
        :raises HubCommUnconfirmedError: HubSpot answered 2xx with a body that confirms nothing (``{}``, no
            ``results``); a ``PENDING``/``PROCESSING`` envelope is returned as is.
        """
        if not allow_resubscribe:
            problem = find_resubscribe_problem(self, subscriber_id, update)
            if problem is not None:
                raise problem
        return self._execute(self._set_status_call(subscriber_id, update))

    async def aset_status(
        self, subscriber_id: str, update: StatusUpdate, *, allow_resubscribe: bool = True
    ) -> StatusResponse:
        """Async twin of :meth:`set_status`.

        :param subscriber_id: the subscriber's e-mail address.
        :param update: the status to set.
        :param allow_resubscribe: see :meth:`set_status`.
        """
        if not allow_resubscribe:
            problem = await afind_resubscribe_problem(self, subscriber_id, update)
            if problem is not None:
                raise problem
        return await self._aexecute(self._set_status_call(subscriber_id, update))

    def batch_write(self, inputs: Sequence[StatusWrite | Mapping[str, Any]]) -> BatchWriteResponse:
        """Write one batch of statuses in one request (``POST …/{api_version}/statuses/batch/write``).

        200 and 207 answers are both returned: per-input failures are in ``errors``/``numErrors``.

        :param inputs: validated writes, as models or as API-shaped dicts.
        """
        return self._execute(self._batch_write_call(inputs))

    def batch_write_serialized(self, body: bytes) -> BatchWriteAck:
        """Write one batch from a ready JSON body (``{"inputs": [...]}``); parse only what accounting needs.

        The batch engine's fast path: rows are serialised once without intermediate dicts, and the answer's
        results are parsed as :class:`~airflow_provider_hubcomm.models.WrittenKey` (subscriber and
        subscription only). Same endpoint, rate limiter and retry policy as :meth:`batch_write`.

        :param body: UTF-8 JSON of a ``BatchInputPublicStatusRequest``, already validated.
        """
        return self._execute(_Call("POST", self._path("statuses/batch/write"), BatchWriteAck, content=body))

    def unsubscribe_all(
        self,
        subscriber_id: str,
        *,
        channel: Channel | str = Channel.EMAIL,
        business_unit_id: int | None = None,
        verbose: bool = False,
    ) -> StatusResponse:
        """Unsubscribe a subscriber from all email (``POST …/{api_version}/statuses/{id}/unsubscribe-all``).

        :param subscriber_id: the subscriber's e-mail address.
        :param channel: the channel (only ``EMAIL`` exists).
        :param business_unit_id: brand to opt out of (defaults to the connection's ``business_unit_id``).
        :param verbose: ask HubSpot to list every status that changed.
        """
        return self._execute(
            self._subscriber_call(
                "POST",
                "/unsubscribe-all",
                StatusResponse,
                subscriber_id,
                channel,
                business_unit_id,
                verbose="true" if verbose else None,
            )
        )

    def get_statuses(
        self,
        subscriber_id: str,
        *,
        channel: Channel | str = Channel.EMAIL,
        business_unit_id: int | None = None,
    ) -> StatusResponse:
        """Read a subscriber's current statuses.

        :param subscriber_id: the subscriber's e-mail address.
        :param channel: the channel.
        :param business_unit_id: brand (defaults to the connection's).
        """
        return self._execute(self._subscriber_call("GET", "", StatusResponse, subscriber_id, channel, business_unit_id))

    async def aget_statuses(
        self,
        subscriber_id: str,
        *,
        channel: Channel | str = Channel.EMAIL,
        business_unit_id: int | None = None,
    ) -> StatusResponse:
        """Async twin of :meth:`get_statuses`.

        :param subscriber_id: the subscriber's e-mail address.
        :param channel: the channel.
        :param business_unit_id: brand.
        """
        return await self._aexecute(
            self._subscriber_call("GET", "", StatusResponse, subscriber_id, channel, business_unit_id)
        )

    def get_unsubscribe_all_status(
        self,
        subscriber_id: str,
        *,
        channel: Channel | str = Channel.EMAIL,
        business_unit_id: int | None = None,
    ) -> WideStatusResponse:
        """Read whether a subscriber opted out of all email (empty ``results`` means not opted out).

        :param subscriber_id: the subscriber's e-mail address.
        :param channel: the channel.
        :param business_unit_id: brand.
        """
        return self._execute(
            self._subscriber_call(
                "GET", "/unsubscribe-all", WideStatusResponse, subscriber_id, channel, business_unit_id
            )
        )

    async def aget_unsubscribe_all_status(
        self,
        subscriber_id: str,
        *,
        channel: Channel | str = Channel.EMAIL,
        business_unit_id: int | None = None,
    ) -> WideStatusResponse:
        """Async twin of :meth:`get_unsubscribe_all_status`.

        :param subscriber_id: the subscriber's e-mail address.
        :param channel: the channel.
        :param business_unit_id: brand.
        """
        return await self._aexecute(
            self._subscriber_call(
                "GET", "/unsubscribe-all", WideStatusResponse, subscriber_id, channel, business_unit_id
            )
        )

    def batch_read(
        self,
        subscriber_ids: Sequence[str],
        *,
        channel: Channel | str = Channel.EMAIL,
        business_unit_id: int | None = None,
    ) -> BatchReadResponse:
        """Read many subscribers' statuses in one request (200, or 207 with per-input errors).

        :param subscriber_ids: e-mail addresses.
        :param channel: the channel.
        :param business_unit_id: brand.
        """
        return self._execute(self._batch_call("read", BatchReadResponse, subscriber_ids, channel, business_unit_id))

    async def abatch_read(
        self,
        subscriber_ids: Sequence[str],
        *,
        channel: Channel | str = Channel.EMAIL,
        business_unit_id: int | None = None,
    ) -> BatchReadResponse:
        """Async twin of :meth:`batch_read`.

        :param subscriber_ids: e-mail addresses.
        :param channel: the channel.
        :param business_unit_id: brand.
        """
        return await self._aexecute(
            self._batch_call("read", BatchReadResponse, subscriber_ids, channel, business_unit_id)
        )

    def batch_read_wide(
        self,
        subscriber_ids: Sequence[str],
        *,
        channel: Channel | str = Channel.EMAIL,
        business_unit_id: int | None = None,
    ) -> BatchWideReadResponse:
        """Read many subscribers' opt-out-of-all ("wide") statuses (``POST …/statuses/batch/unsubscribe-all/read``).

        :param subscriber_ids: e-mail addresses.
        :param channel: the channel.
        :param business_unit_id: brand; without it HubSpot answers for all brands.
        """
        return self._execute(
            self._batch_call("unsubscribe-all/read", BatchWideReadResponse, subscriber_ids, channel, business_unit_id)
        )

    async def abatch_read_wide(
        self,
        subscriber_ids: Sequence[str],
        *,
        channel: Channel | str = Channel.EMAIL,
        business_unit_id: int | None = None,
    ) -> BatchWideReadResponse:
        """Async twin of :meth:`batch_read_wide`.

        :param subscriber_ids: e-mail addresses.
        :param channel: the channel.
        :param business_unit_id: brand.
        """
        return await self._aexecute(
            self._batch_call("unsubscribe-all/read", BatchWideReadResponse, subscriber_ids, channel, business_unit_id)
        )

    def batch_unsubscribe_all(
        self,
        subscriber_ids: Sequence[str],
        *,
        channel: Channel | str = Channel.EMAIL,
        business_unit_id: int | None = None,
        verbose: bool = False,
    ) -> BatchUnsubscribeAllResponse:
        """Opt many subscribers out of all e-mail of a brand (``POST …/statuses/batch/unsubscribe-all``).

        :param subscriber_ids: e-mail addresses.
        :param channel: the channel.
        :param business_unit_id: brand (defaults to the connection's ``business_unit_id``).
        :param verbose: ask HubSpot to list every status that changed.
        """
        return self._execute(
            self._batch_call(
                "unsubscribe-all",
                BatchUnsubscribeAllResponse,
                subscriber_ids,
                channel,
                business_unit_id,
                verbose="true" if verbose else None,
            )
        )

    def get_definitions(
        self, *, business_unit_id: int | None = None, include_translations: bool = False
    ) -> DefinitionsResponse:
        """List the account's subscription definitions.

        :param business_unit_id: brand.
        :param include_translations: include translated names.
        """
        return self._execute(self._definitions_call(business_unit_id, include_translations))

    async def aget_definitions(
        self, *, business_unit_id: int | None = None, include_translations: bool = False
    ) -> DefinitionsResponse:
        """Async twin of :meth:`get_definitions`.

        :param business_unit_id: brand.
        :param include_translations: include translated names.
        """
        return await self._aexecute(self._definitions_call(business_unit_id, include_translations))
