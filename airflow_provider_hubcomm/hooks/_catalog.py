"""The account's subscription definitions, by id, name and brand: read once per hook (one run).

HubSpot's ``businessUnitId`` filters status reads to one brand, so anything that must *see* a subscription
(the re-subscribe guard, the sensor's read-back) reads it with that subscription's brand. ``GET /definitions``
carries each subscription's ``businessUnitId``, but it also takes ``businessUnitId`` as a filter and may list
only the default brand (``0``) without it. So the catalog is built from one definitions read per brand the
provider knows (``0``, the connection's ``business_unit_id`` and its declared ``business_unit_ids``); a
subscription found in none of them is unknown and reported before any write.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from airflow_provider_hubcomm.models import DefinitionsResponse

__all__ = ["Subscription", "SubscriptionCatalog", "SubscriptionLookupError"]


class SubscriptionLookupError(LookupError):
    """A subscription named by id or name is unknown, or a name matches several subscriptions.

    :param message: what is wrong, with the known subscriptions.
    :param reason: ``"unknown"``, ``"inactive"`` or ``"ambiguous"``.
    """

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Subscription:
    """One subscription definition: id, name, brand and whether it accepts writes."""

    id: int
    name: str | None
    brand: int
    active: bool

    def describe(self) -> str:
        """Return ``"101 (Newsletter, brand 0)"``."""
        return f"{self.id} ({self.name or 'no name'}, brand {self.brand}{'' if self.active else ', inactive'})"


class SubscriptionCatalog:
    """Subscriptions of the account as seen through the definitions of every known brand.

    :param subscriptions: the definitions, one per id.
    :param brands: the brands whose definitions were read.
    """

    def __init__(self, subscriptions: Iterable[Subscription], brands: Iterable[int]) -> None:
        self.brands: tuple[int, ...] = tuple(sorted(set(brands)))
        self._by_id: dict[int, Subscription] = {}
        self._by_name: dict[str, list[Subscription]] = {}
        for sub in subscriptions:
            self._by_id.setdefault(sub.id, sub)
        for sub in self._by_id.values():
            if sub.name:
                self._by_name.setdefault(sub.name.strip().casefold(), []).append(sub)

    def __repr__(self) -> str:
        return f"SubscriptionCatalog({len(self._by_id)} subscriptions, brands {list(self.brands)})"

    def __len__(self) -> int:
        return len(self._by_id)

    def __iter__(self) -> Iterator[Subscription]:
        return iter(self._by_id.values())

    @classmethod
    def from_answers(cls, answers: Mapping[int, DefinitionsResponse]) -> SubscriptionCatalog:
        """Build the catalog from ``GET /definitions`` answers keyed by the brand each was read with.

        A definition's own ``businessUnitId`` wins over the brand it was read with; a definition without an
        integer ``id`` is ignored (HubSpot's ids are strings holding integers).

        :param answers: brand -> definitions answer read with ``businessUnitId=brand``.
        """
        subs: list[Subscription] = []
        for brand, answer in answers.items():
            for d in answer.results:
                try:
                    sid = int(str(d.id).strip())
                except (TypeError, ValueError):
                    continue
                own = d.business_unit_id
                subs.append(Subscription(sid, d.name, int(own) if own is not None else brand, d.is_active is not False))
        return cls(subs, answers.keys())

    def get(self, subscription_id: int) -> Subscription | None:
        """Return the subscription with this id, or ``None``.

        :param subscription_id: the id.
        """
        return self._by_id.get(subscription_id)

    def brand_of(self, subscription_id: int) -> int | None:
        """Return the brand (``businessUnitId``) of a subscription, or ``None`` when it is unknown.

        :param subscription_id: the id.
        """
        sub = self._by_id.get(subscription_id)
        return None if sub is None else sub.brand

    def known(self) -> str:
        """Return the known subscriptions as text, for error messages (at most 20)."""
        subs = sorted(self._by_id.values(), key=lambda s: s.id)
        text = ", ".join(s.describe() for s in subs[:20])
        return text + (f" … and {len(subs) - 20} more" if len(subs) > 20 else "") if subs else "none"

    def problem(self, subscription_id: int) -> tuple[str, str] | None:
        """Return ``(reason, message)`` when a write to this id cannot succeed (unknown or inactive), else ``None``.

        :param subscription_id: the id.
        """
        sub = self._by_id.get(subscription_id)
        if sub is None:
            brands = ", ".join(map(str, self.brands))
            return (
                "unknown_subscription",
                f"subscription {subscription_id} is not defined in brands {brands} of this account "
                f"(declare more brands in the connection's business_unit_ids); known: {self.known()}",
            )
        if not sub.active:
            return "inactive_subscription", f"subscription {sub.describe()} is not active"
        return None

    def resolve(self, ref: int | str) -> Subscription:
        """Return the subscription an id or a name refers to.

        :param ref: an id (int or digits) or a subscription name (case-insensitive).
        :raises SubscriptionLookupError: unknown id or name, or a name shared by several subscriptions.
        """
        text = str(ref).strip()
        if isinstance(ref, int) or text.isdigit():
            sub = self._by_id.get(int(text))
            if sub is None:
                raise SubscriptionLookupError(f"unknown subscription id {text}; known: {self.known()}", "unknown")
            return sub
        matches = self._by_name.get(text.casefold(), [])
        if not matches:
            raise SubscriptionLookupError(f"no subscription is named {text!r}; known: {self.known()}", "unknown")
        if len(matches) > 1:
            listed = ", ".join(m.describe() for m in matches)
            raise SubscriptionLookupError(f"subscription name {text!r} is ambiguous: {listed}; use the id", "ambiguous")
        return matches[0]
