"""One run's use of the sync state (``state_path``): diff before the send pass, checkpoints during, compaction after.

:class:`SyncRun` is what the batch engine sees of the sync; the engine knows neither DuckDB nor the layout of
the state (:mod:`~airflow_provider_hubcomm.sync.state`):

1. :meth:`SyncRun.prepare`, after validation: copy the state to the run's private work folder, diff it with the
   input (:mod:`~airflow_provider_hubcomm.sync.diff`) and return the rows the run still has to handle (new,
   changed, or failed or not confirmed last time). ``full_resync`` ignores the state: every row is sent.
2. During the send pass the run's accounting reports every row HubSpot answered to :attr:`SyncRun.journal`
   (confirmed or not), which writes the state's journal in bounded steps.
3. :meth:`SyncRun.finish`, when the send pass ended: the last checkpoint and the compaction into a new base.
4. :meth:`SyncRun.write_log`, once the run's output files are closed (a finished run only, not a dry run, with
   ``sync_log``): the sync log (:mod:`~airflow_provider_hubcomm.sync.log`).
   :meth:`SyncRun.close` always runs: on an error (a killed task raises in its thread too) it writes the rows
   confirmed so far, so the retry does not send them again, then removes the work folder.

A dry run diffs and reports, and changes nothing in the state. The state is never proof of consent: rows
that are sent still go through the re-subscribe guard.
"""

from __future__ import annotations

import logging
import shutil
from typing import TYPE_CHECKING, Any, TypeVar

from airflow_provider_hubcomm.sync import state as _state
from airflow_provider_hubcomm.sync.lease import Lease
from airflow_provider_hubcomm.sync.state import Journal, SyncState
from airflow_provider_hubcomm.workdirs import private_folder

if TYPE_CHECKING:
    from collections.abc import Iterator

    from airflow_provider_hubcomm.contracts import SyncStateSummary
    from airflow_provider_hubcomm.sync.diff import DiffResult, RowSource, SyncedSpool
    from airflow_provider_hubcomm.sync.state import StatusFields

    R = TypeVar("R", bound=StatusFields)

__all__ = ["SyncRun"]

log = logging.getLogger("airflow_provider_hubcomm.batch.engine")


class SyncRun:
    """The sync state as one batch run uses it.

    :param state_path: the state's folder (local path, URL or ``ObjectStoragePath``).
    :param full_resync: ignore the state for this run and rebuild it from what this run confirms.
    :param dry_run: diff only; the state is not changed.
    :param redact: removes secrets (e.g. credentials in a URL) from the path shown in logs and the summary.
    :param checkpoint_rows: the most rows per checkpoint (journal segment; default ``state.CHECKPOINT_ROWS``).
    :param checkpoint_seconds: the longest time between checkpoints while rows are being confirmed (default
        ``state.CHECKPOINT_SECONDS``).
    :param sync_log: write the run's sync log (never in a dry run).
    :param task_run: ``(dag_id, task_id, run_id, try_number)`` of the task run, for the sync log.
    """

    def __init__(
        self,
        state_path: Any,
        *,
        full_resync: bool = False,
        dry_run: bool = False,
        redact: Any = None,
        checkpoint_rows: int | None = None,
        checkpoint_seconds: float | None = None,
        sync_log: bool = False,
        task_run: tuple[str, str, str, int] | None = None,
    ) -> None:
        self.workdir = private_folder("hubcomm-sync-")  # 0700: it holds e-mail addresses
        self.state = SyncState(state_path, str(self.workdir))
        self.full_resync = full_resync
        self.dry_run = dry_run
        self.redact = redact
        self.shown = (redact or str)(str(self.state.root))
        rows = _state.CHECKPOINT_ROWS if checkpoint_rows is None else checkpoint_rows
        seconds = _state.CHECKPOINT_SECONDS if checkpoint_seconds is None else checkpoint_seconds
        self.journal = None if dry_run else Journal(self.state, rows, seconds)
        task = None if task_run is None else "/".join(task_run[:3])  # every try of the task alike
        self.lease = None if dry_run else Lease(self.state, task)
        self.unchanged = 0
        self.kept = 0
        self.refused = 0
        self._prepared: Any = None
        self.sync_log = sync_log and not dry_run
        self.task_run = task_run
        self.finished = False
        self.log_path: str | None = None
        self._diff: DiffResult | None = None

    def prepare(self, spool: RowSource[R]) -> SyncedSpool[R]:
        """Diff the validated rows with the state; return them without the unchanged ones.

        :param spool: the validated rows.
        """
        from airflow_provider_hubcomm.sync.diff import ColumnarSource, SyncedSpool, diff

        if self.lease is not None:  # before anything of the state is read
            self.lease.acquire(self.shown)
            self.state.after_append = self.lease.refresh  # a heartbeat at each checkpoint
        base, segments = self.state.fetch(include=not self.full_resync, mark=not self.dry_run)
        if self.full_resync and not segments:
            log.info("Sync state at %s ignored for this run (full_resync=True): every row is sent.", self.shown)
        result = diff(spool, base, segments, self.workdir, keep_rows=self.sync_log)
        self.unchanged, self.kept, self.refused = result.unchanged, result.kept, result.refused
        self._diff = result
        if isinstance(spool, ColumnarSource):  # read back only the rows with a verdict
            self._prepared = spool.filtered(result.verdicts)
        else:
            self._prepared = SyncedSpool(spool, result.verdicts)
        return self._prepared

    def refused_rows(self) -> Iterator[tuple[int, Any]]:
        """Yield the rows the re-subscribe guard refused in an earlier run whose values have not changed.

        They are skipped again as ``resubscribe_not_allowed`` without the guard's reads (``full_resync``
        checks them again). Call after :meth:`prepare`.
        """
        if self.refused and self._prepared is not None:
            yield from self._prepared.refused()

    def finish(self) -> None:
        """Write the last checkpoint and compact the state (not in a dry run)."""
        if self.journal is None:
            return
        self.journal.flush()
        from airflow_provider_hubcomm.sync.diff import MEMORY_LIMIT

        keys = self.state.compact(resync=self.full_resync, memory_limit=MEMORY_LIMIT)
        if keys is None:
            log.info("Sync state at %s: base not rewritten (nothing new, or the journal is kept).", self.shown)
        else:
            log.info("Sync state at %s: %d keys after this run.", self.shown, keys)
        self.journal = None
        self.finished = True

    def write_log(self, written: str | None, failed: str | None) -> None:
        """Write the sync log of a finished run from its output files (nothing otherwise).

        A log that cannot be written is reported, not raised: the writes and the state are done.

        :param written: the written-rows manifest's location.
        :param failed: the failed-rows file's location.
        """
        result = self._diff
        if not (self.sync_log and self.finished) or result is None or result.rows is None:
            return
        from airflow_provider_hubcomm.sync.diff import MEMORY_LIMIT
        from airflow_provider_hubcomm.sync.log import write_log

        try:
            target, rows = write_log(
                self.state, self.workdir, result.rows, result.verdicts, written, failed, self.task_run, MEMORY_LIMIT
            )
        except Exception as err:
            log.warning("Sync log at %s could not be written: %s", self.shown, err)
            return
        self.log_path = (self.redact or str)(target)
        log.info("Sync log: %d rows at %s.", rows, self.log_path)

    def close(self) -> None:
        """Write the rows confirmed so far (after an error), then remove the work folder."""
        try:
            if self.journal is not None:
                self.journal.flush()
        except Exception as err:  # do not hide the run's own error; these rows are sent again next run
            log.warning("Sync state at %s: the last checkpoint could not be written: %s", self.shown, err)
        finally:
            try:
                if self.lease is not None:
                    self.lease.release()
            except Exception as err:  # the lease expires by itself
                log.warning("Sync state at %s: the writer lease could not be released: %s", self.shown, err)
            shutil.rmtree(self.workdir, ignore_errors=True)

    def summary(self) -> SyncStateSummary:
        """Return the summary's ``state`` block."""
        return {"path": self.shown, "unchanged": self.unchanged, "resync": self.full_resync, "log": self.log_path}
