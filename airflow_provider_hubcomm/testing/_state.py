"""Consent state of the fake: statuses per (subscriber, subscription), opt-out-of-all flags, pending batches.

Thread-safe (one re-entrant lock): the event-loop thread answers requests while the test thread reads
snapshots or changes a status "behind the run's back". Delayed batch writes are applied lazily: whenever
the state is touched, every pending write whose due time has passed is applied first, in order.
"""

from __future__ import annotations

import heapq
import itertools
import math
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterable

    from airflow_provider_hubcomm.testing._config import SubscriptionDef

__all__ = ["ConsentStore", "StatusRecord", "Write", "iso_now"]

WRITE_SOURCE = "Public status API"
DEFAULT_SOURCE = "Default"
UNSUBSCRIBE_ALL_SOURCE = "Public status API"


#: ``(millisecond, text)`` of the last :func:`iso_now`: one request asks for the time several times per
#: millisecond (once per write of a batch), and formatting it is a good part of a small request's cost.
_last_iso: tuple[int, str] = (-1, "")


def iso_now() -> str:
    """Return the current UTC time as ISO-8601 with milliseconds and ``Z`` (HubSpot's format)."""
    global _last_iso
    ms = time.time_ns() // 1_000_000
    last = _last_iso  # one read: a tuple swapped whole is safe across threads
    if last[0] == ms:
        return last[1]
    text = datetime.fromtimestamp(ms // 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"
    _last_iso = (ms, text)
    return text


@dataclass(slots=True)
class StatusRecord:
    """Stored status of one (subscriber, subscription)."""

    status: str
    legal_basis: str | None
    legal_basis_explanation: str | None
    timestamp: str
    source: str

    def as_dict(self) -> dict[str, Any]:
        """Return the record as a plain dict (what :meth:`FakeHubSpot.status` hands out)."""
        return {
            "status": self.status,
            "legalBasis": self.legal_basis,
            "legalBasisExplanation": self.legal_basis_explanation,
            "timestamp": self.timestamp,
            "source": self.source,
        }


@dataclass(frozen=True, slots=True)
class Write:
    """One validated status write (from a single or batch request)."""

    subscriber: str
    subscription_id: int
    status: str
    legal_basis: str | None = None
    legal_basis_explanation: str | None = None


class ConsentStore:
    """All consent state of one fake portal.

    :param definitions: the subscription definitions (fixed for the store's lifetime).
    """

    def __init__(self, definitions: list[SubscriptionDef]) -> None:
        self.lock = threading.RLock()
        self.definitions = {d.id: d for d in definitions}
        self.created_at = iso_now()
        self._statuses: dict[tuple[str, int], StatusRecord] = {}
        self._wide: dict[tuple[str, int], str] = {}  # (subscriber, businessUnitId) -> timestamp
        self._pending: list[tuple[float, int, list[Write]]] = []
        self._seq = itertools.count()

    # -- pending batches -------------------------------------------------------------------------------
    def defer(self, writes: list[Write], due: float) -> None:
        """Queue ``writes`` to become visible at monotonic time ``due``.

        :param writes: validated writes of one batch.
        :param due: ``time.monotonic()`` value from which they apply.
        """
        with self.lock:
            heapq.heappush(self._pending, (due, next(self._seq), writes))

    def apply_due(self, now: float | None = None) -> int:
        """Apply every pending batch whose due time has passed; return the number of writes applied.

        :param now: current monotonic time (default: now).
        """
        if not self._pending:
            return 0
        now = time.monotonic() if now is None else now
        applied = 0
        with self.lock:
            while self._pending and self._pending[0][0] <= now:
                _, _, writes = heapq.heappop(self._pending)
                for w in writes:
                    self.write(w)
                    applied += 1
        return applied

    def release_all(self) -> int:
        """Apply every pending batch now, whatever its due time; return the number of writes applied."""
        return self.apply_due(math.inf)

    @property
    def pending_writes(self) -> int:
        """Number of writes accepted in delayed mode and not yet visible."""
        with self.lock:
            return sum(len(w) for _, _, w in self._pending)

    # -- writes ------------------------------------------------------------------------------------------
    def write(self, w: Write, source: str = WRITE_SOURCE) -> tuple[StatusRecord, str]:
        """Apply one status write; return the new record and HubSpot's ``setStatusSuccessReason``.

        :param w: the write (its subscriber is matched case-insensitively).
        :param source: the ``source`` recorded on a change.
        """
        key = (w.subscriber.lower(), w.subscription_id)
        with self.lock:
            old = self._statuses.get(key)
            old_status = old.status if old is not None else "NOT_SPECIFIED"
            if old is not None and old_status == w.status:
                if w.legal_basis is not None:
                    old.legal_basis = w.legal_basis
                if w.legal_basis_explanation is not None:
                    old.legal_basis_explanation = w.legal_basis_explanation
                return old, "NO_STATUS_CHANGE"
            rec = StatusRecord(w.status, w.legal_basis, w.legal_basis_explanation, iso_now(), source)
            if old is None and old_status == w.status:
                reason = "NO_STATUS_CHANGE"
            elif old_status == "UNSUBSCRIBED" and w.status == "SUBSCRIBED":
                reason = "RESUBSCRIBE_OCCURRED"
            else:
                reason = "REQUESTED_CHANGE_OCCURRED"
            self._statuses[key] = rec
            if w.status == "SUBSCRIBED":
                definition = self.definitions.get(w.subscription_id)
                bu = definition.business_unit_id if definition else 0
                self._wide.pop((key[0], bu), None)
            return rec, reason

    def unsubscribe_all(self, subscriber: str, business_unit_id: int) -> list[tuple[int, StatusRecord]]:
        """Opt ``subscriber`` out of every subscription of the brand; return the statuses that changed.

        :param subscriber: the e-mail address.
        :param business_unit_id: the brand (``0``: the default Account brand).
        """
        sub = subscriber.lower()
        changed: list[tuple[int, StatusRecord]] = []
        with self.lock:
            now = iso_now()
            for d in self.definitions.values():
                if d.business_unit_id != business_unit_id:
                    continue
                old = self._statuses.get((sub, d.id))
                if old is not None and old.status == "UNSUBSCRIBED":
                    continue
                rec = StatusRecord(
                    "UNSUBSCRIBED",
                    old.legal_basis if old else None,
                    old.legal_basis_explanation if old else None,
                    now,
                    UNSUBSCRIBE_ALL_SOURCE,
                )
                self._statuses[(sub, d.id)] = rec
                changed.append((d.id, rec))
            self._wide.setdefault((sub, business_unit_id), now)
        return changed

    def set_state(self, subscriber: str, subscription_id: int, status: str | None, source: str) -> None:
        """Overwrite (or with ``None`` forget) a status without any API semantics.

        :param subscriber: the e-mail address.
        :param subscription_id: the subscription.
        :param status: ``SUBSCRIBED``, ``UNSUBSCRIBED``, ``NOT_SPECIFIED`` or ``None``.
        :param source: the ``source`` to record.
        """
        key = (subscriber.lower(), subscription_id)
        with self.lock:
            self.apply_due()
            if status is None:
                self._statuses.pop(key, None)
            else:
                self._statuses[key] = StatusRecord(status, None, None, iso_now(), source)

    # -- reads -------------------------------------------------------------------------------------------
    def get(self, subscriber: str, subscription_id: int) -> StatusRecord | None:
        """Return the stored record of one (subscriber, subscription), or ``None`` if never set.

        :param subscriber: the e-mail address (any case).
        :param subscription_id: the subscription.
        """
        with self.lock:
            return self._statuses.get((subscriber.lower(), subscription_id))

    def defs_for(self, business_unit_id: int | None) -> Iterable[SubscriptionDef]:
        """Return the definitions of one brand, or of all brands for ``None``.

        :param business_unit_id: the brand filter.
        """
        return [
            d for d in self.definitions.values() if business_unit_id is None or d.business_unit_id == business_unit_id
        ]

    def wide_statuses(self, subscriber: str, business_unit_id: int | None) -> list[tuple[int, str]]:
        """Return ``(businessUnitId, timestamp)`` of every opt-out-of-all of ``subscriber``.

        :param subscriber: the e-mail address.
        :param business_unit_id: only this brand, or all brands for ``None``.
        """
        sub = subscriber.lower()
        with self.lock:
            return sorted(
                (bu, ts)
                for (s, bu), ts in self._wide.items()
                if s == sub and (business_unit_id is None or bu == business_unit_id)
            )

    def snapshot(self) -> dict[tuple[str, int], str]:
        """Return ``{(subscriber, subscriptionId): status}`` of every status ever set (pending applied)."""
        with self.lock:
            self.apply_due()
            return {key: rec.status for key, rec in self._statuses.items()}

    def dump(self) -> dict[str, Any]:
        """Return the whole state as JSON-ready data (for the CLI's ``--state-file``)."""
        with self.lock:
            self.apply_due()
            return {
                "statuses": [
                    {"subscriberIdString": s, "subscriptionId": sid, **rec.as_dict()}
                    for (s, sid), rec in sorted(self._statuses.items())
                ],
                "optedOutOfAll": [
                    {"subscriberIdString": s, "businessUnitId": bu, "timestamp": ts}
                    for (s, bu), ts in sorted(self._wide.items())
                ],
                "pendingWrites": sum(len(w) for _, _, w in self._pending),
            }
