"""One writer per sync state: the lease a run takes before it reads the state (``writer.json``).

Two runs writing one ``state_path`` at once would interleave their journals, and the state could then disagree
with HubSpot; :class:`Lease` makes the second run stop, naming the first.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

from airflow_provider_hubcomm.workdirs import process_gone, process_space, process_start

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath

    from airflow_provider_hubcomm.sync.state import SyncState

__all__ = ["LEASE_NAME", "LEASE_SECONDS", "Lease"]

log = logging.getLogger("airflow_provider_hubcomm.batch.engine")

#: The one-writer lease (a file at the state's root), see :class:`Lease`.
LEASE_NAME: Final = "writer.json"
#: A lease whose heartbeat is older than this may be taken over (checkpoints renew it while rows are confirmed).
LEASE_SECONDS: Final = 900.0
#: The least time between two heartbeats.
LEASE_REFRESH_SECONDS: Final = 60.0
#: How long a run waits after writing its lease before it reads it back (another run starting at that moment).
LEASE_SETTLE_SECONDS: Final = 0.2


class Lease:
    """One writer per state: a lease file (:data:`LEASE_NAME`) at the state's root, refreshed at each checkpoint.

    A run that finds another run's fresh lease stops before anything is read or sent (a second writer would
    interleave its journal with the first's, and the state could then disagree with HubSpot). It takes over a
    lease whose holder is the same task (an earlier try that was killed), a process of this host that is gone,
    or whose last heartbeat is older than :data:`LEASE_SECONDS`. Best effort on object stores without an atomic
    create: after writing its lease a run reads it back (after :data:`LEASE_SETTLE_SECONDS`) and stops if
    another run wrote over it.

    :param state: the state.
    :param task: the task run's identity (``dag_id/task_id/run_id``, all tries alike), or ``None``.
    """

    def __init__(self, state: SyncState, task: str | None) -> None:
        self.state = state
        self.task = task
        self.owner = uuid.uuid4().hex
        self.host = socket.gethostname()
        self.space = process_space()
        self.held = False
        self._refreshed = 0.0

    @property
    def path(self) -> ObjectStoragePath:
        """The lease file."""
        return self.state.root / LEASE_NAME

    def _read(self) -> dict[str, Any] | None:
        try:
            value = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            return None  # unreadable (a partial write elsewhere): treated as absent
        return value if isinstance(value, dict) else None

    def _write(self) -> None:
        now = time.time()
        body = {
            "owner": self.owner,
            "task": self.task,
            "host": self.host,
            "pid": os.getpid(),
            "started": process_start(),
            "pid_namespace": self.space,
            "heartbeat": now,
            "heartbeat_at": datetime.fromtimestamp(now, UTC).isoformat(timespec="seconds"),
        }
        local = self.state.workdir / LEASE_NAME
        local.write_text(json.dumps(body), encoding="utf-8")
        self.state.put(self.path, local)
        self._refreshed = time.monotonic()

    def _takeover(self, holder: dict[str, Any]) -> str | None:
        """Return why ``holder``'s lease may be taken over, or ``None`` when it is held."""
        age = time.time() - float(holder.get("heartbeat") or 0)
        if age > LEASE_SECONDS:
            return f"its last heartbeat is {age:.0f} s old"
        if self.task is not None and holder.get("task") == self.task:
            return "it is an earlier try of this task"
        pid = holder.get("pid")
        started = str(holder.get("started") or "0")
        # The same host name may be another container, whose processes this one cannot see.
        here = holder.get("host") == self.host and holder.get("pid_namespace", self.space) == self.space
        if here and isinstance(pid, int) and process_gone(pid, started):
            return f"its process {pid} on this host is gone"
        return None

    @staticmethod
    def _describe(holder: dict[str, Any]) -> str:
        who = holder.get("task") or f"process {holder.get('pid')} on {holder.get('host')}"
        return f"{who} (last heartbeat {holder.get('heartbeat_at')})"

    def acquire(self, shown: str) -> None:
        """Take the lease, or raise when another run holds it.

        :param shown: the state's location as logs show it.
        :raises HubCommStateInUseError: another run holds a fresh lease.
        """
        from airflow_provider_hubcomm.exceptions import HubCommStateInUseError

        holder = self._read()
        if holder is not None and holder.get("owner") != self.owner:
            why = self._takeover(holder)
            if why is None:
                raise HubCommStateInUseError(
                    f"the sync state at {shown} is in use by {self._describe(holder)}: two runs writing one state "
                    f"at once would corrupt it. Let that run finish (max_active_runs=1 on the DAG, one task per "
                    f"state_path); a lease whose holder stopped without releasing it expires after "
                    f"{LEASE_SECONDS:.0f} s, or delete {LEASE_NAME} in the state folder once no run uses it."
                )
            log.warning("Sync state at %s: taking over the writer lease of %s: %s.", shown, self._describe(holder), why)
        self._write()
        time.sleep(LEASE_SETTLE_SECONDS)
        after = self._read()
        if after is not None and after.get("owner") != self.owner:
            raise HubCommStateInUseError(
                f"the sync state at {shown} was taken by {self._describe(after)} while this run started: "
                "two runs writing one state at once would corrupt it; run one task per state_path at a time."
            )
        self.held = True

    def refresh(self) -> None:
        """Renew the heartbeat (at most every :data:`LEASE_REFRESH_SECONDS`)."""
        if self.held and time.monotonic() - self._refreshed >= LEASE_REFRESH_SECONDS:
            self._write()

    def release(self) -> None:
        """Remove the lease if this run still holds it."""
        if not self.held:
            return
        self.held = False
        holder = self._read()
        if holder is not None and holder.get("owner") == self.owner:
            self.path.unlink()
