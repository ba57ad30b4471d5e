"""The description of one API call (:class:`_Call`), typed by the model of its answer, and path helpers."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar
from urllib.parse import quote

from pydantic import BaseModel

from airflow_provider_hubcomm.exceptions import HubCommError
from airflow_provider_hubcomm.models import Channel

__all__ = ["M", "_Call", "subscriber_segment"]

M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class _Call(Generic[M]):
    """One API call, described once and executed by the sync or the async path; ``M`` is its answer's model.

    ``confirm``: a 2xx answer must confirm the write (non-empty ``results``, or a ``PENDING``/``PROCESSING``
    envelope), else it raises :class:`~airflow_provider_hubcomm.exceptions.HubCommUnconfirmedError`.
    """

    method: str
    path: str
    model: type[M]
    params: Mapping[str, Any] | None = None
    json: Any = None
    content: bytes | None = None
    confirm: bool = False


def subscriber_segment(subscriber_id: str) -> str:
    """Percent-encode a subscriber id as exactly one path segment (``/``, ``?``, ``#``, ``%`` included).

    :param subscriber_id: HubSpot's ``subscriberIdString`` (an e-mail address).
    """
    if not isinstance(subscriber_id, str) or not subscriber_id.strip():
        raise HubCommError(f"subscriber id must be a non-empty string, got {subscriber_id!r}")
    segment = quote(subscriber_id.strip(), safe="")
    # "." and ".." are dot-segments: URL normalisation would drop them and change the path. Encode their dots.
    return segment.replace(".", "%2E") if set(segment) == {"."} else segment


def _params(channel: Channel | str, business_unit_id: int | None, **more: Any) -> dict[str, Any]:
    params: dict[str, Any] = {"channel": Channel(str(channel).upper()).value}
    if business_unit_id is not None:
        params["businessUnitId"] = int(business_unit_id)
    params.update({k: v for k, v in more.items() if v is not None})
    return params
