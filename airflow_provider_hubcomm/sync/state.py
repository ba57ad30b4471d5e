"""The sync state of ``BatchWriteStatusesOperator(state_path=...)``: where it lives, how it grows, how it compacts.

The state remembers, per key (subscriber lower-cased, subscription id: the engine's duplicate key), what HubSpot
answered last for the row this provider sent: the state, channel, legal basis and explanation, whether HubSpot
**confirmed** it (``ok``: the write's batch operation was ``COMPLETE``) and when. Layout at ``state_path`` (a
folder; a local path, a URL or an ``ObjectStoragePath``, e.g. ``s3://conn@bucket/hubcomm/state``)::

    state.parquet              the base snapshot: one row per key (written by compaction)
    journal/<ns>-<pid>-<n>.jsonl  segments written during runs, oldest first by name

Why a journal: a run records what HubSpot confirmed *while it runs*, in bounded steps (:class:`Journal`: 0.5 % of
the rows recorded so far, between 500 and 5,000 rows, or ``seconds``, and when the run ends or fails), so a task
killed at 90 % and retried re-sends at most one step of rows. A segment is written under a ``.tmp`` name and
renamed (a local rename is atomic; on object stores a segment is one object PUT, and readers ignore ``.tmp``
names), so a reader sees whole segments only. Only rows HubSpot confirmed are recorded ``ok``; rows that failed or
stayed ``PENDING`` are recorded not ``ok``, so the next run sends them again whatever the warehouse says. A crash
therefore never records an unconfirmed row as confirmed: the worst case is re-sending one step (writes set a state,
so re-sending is harmless).

Reading (:meth:`SyncState.fetch`) copies base and journal into the run's private work folder; the diff
(:func:`~airflow_provider_hubcomm.sync.duck.state_relation`) takes the last entry per key (base first, then
segments by name, then line order). At the end of a run (:meth:`SyncState.compact`) base and segments are
merged by DuckDB into a new ``state.parquet`` (written as ``.tmp``, renamed over the old one) and the merged
segments are deleted; a run that changed little keeps its segments instead (the base is rewritten once the
journal passes 10 % of it or 256 segments). A crash between the two steps leaves segments that repeat the
base: harmless, they say the same.

``full_resync`` marks its start (``resync.json``, the first segment stamp it writes): the retry of a killed
resync ignores the base and the older segments as the resync does, but skips what the resync itself already
confirmed; the mark goes when the resync's compaction (or a later normal run) finishes.

One writer at a time: two runs sharing a ``state_path`` at once would interleave segments, so a run takes
the state's writer lease (:class:`~airflow_provider_hubcomm.sync.lease.Lease`, ``writer.json``) before it
reads it, and a second run stops with :class:`~airflow_provider_hubcomm.exceptions.HubCommStateInUseError`
(use ``max_active_runs=1`` on the DAG, as for any sync). A dry run reads without a lease.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from datetime import UTC, datetime
from json.encoder import encode_basestring_ascii as _esc
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, TypeAlias

if TYPE_CHECKING:
    from collections.abc import Callable

    from airflow.sdk import ObjectStoragePath

__all__ = ["BASE_NAME", "JOURNAL_DIR", "RESYNC_MARK", "Journal", "StatusFields", "SyncState", "state_root"]

log = logging.getLogger("airflow_provider_hubcomm.batch.engine")

#: One status write as the sync keeps and compares it: subscriber, subscription id, state, channel, legal basis,
#: explanation. The batch run's ``WriteRow`` is one; the sync package needs nothing else of the batch package
#: (it sits below it: the engine uses the sync, never the other way round).
StatusFields: TypeAlias = tuple[str, int, str, str, str | None, str | None]

BASE_NAME: Final = "state.parquet"
JOURNAL_DIR: Final = "journal"
#: The most rows per journal segment (the most a killed run re-sends after its retry, plus the chunks in flight).
CHECKPOINT_ROWS: Final = 5_000
#: A segment holds at most this share of the rows the run has checkpointed so far (but at least
#: :data:`CHECKPOINT_MIN_ROWS`): a run killed after N confirmed rows re-sends about 0.5 % of N, not 5,000 rows.
CHECKPOINT_SHARE: Final = 0.005
CHECKPOINT_MIN_ROWS: Final = 500
#: Seconds between journal segments while rows are being confirmed.
CHECKPOINT_SECONDS: Final = 30.0
#: The base is rewritten once the journal holds more rows than this share of it (or :data:`COMPACT_SEGMENTS`).
COMPACT_SHARE: Final = 0.1
#: The base is rewritten once the journal holds more segments than this.
COMPACT_SEGMENTS: Final = 256
#: A ``full_resync`` under way (a file at the state's root): ``{"since": <first segment stamp>}``.
RESYNC_MARK: Final = "resync.json"


def state_root(state_path: Any) -> ObjectStoragePath:
    """Return ``state_path`` as an ``ObjectStoragePath`` (a plain local path becomes ``file://``).

    :param state_path: a local path, a URL or an ``ObjectStoragePath``.
    """
    from airflow.sdk import ObjectStoragePath

    if isinstance(state_path, ObjectStoragePath):
        return state_path
    text = os.fspath(state_path)
    if "://" not in text:
        text = "file://" + os.path.abspath(text)
    return ObjectStoragePath(text)


class SyncState:
    """The state at ``state_path``, seen from one run whose private work folder is ``workdir``.

    Files are copied to ``workdir/state`` once (the base and segments read before the diff, the segments this
    run writes): the compaction reuses them instead of reading the state again.

    :param state_path: the folder (local path, URL or ``ObjectStoragePath``).
    :param workdir: a private local folder of this run (removed by the caller).
    """

    def __init__(self, state_path: Any, workdir: str) -> None:
        self.root = state_root(state_path)
        self.workdir = Path(workdir)
        #: first segment stamp of the ``full_resync`` this run takes part in (``None``: not a resync).
        self.resync_from: str | None = None
        #: called after each journal segment is written (the writer lease's heartbeat).
        self.after_append: Callable[[], None] | None = None
        self.written: list[str] = []  # names of the segments this run wrote
        self._stamp = 0  # the last segment's time stamp: new names sort after every existing one

    @property
    def journal(self) -> ObjectStoragePath:
        """The journal folder."""
        return self.root / JOURNAL_DIR

    @property
    def local(self) -> Path:
        """The local copies of the state's files."""
        return self.workdir / "state"

    def _copy(self, name: str) -> str:
        """Return the local copy of the state's file ``name`` (``journal/…`` or the base), copied once."""
        target = self.local / name
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            _download(self.root / name, target)
        return str(target)

    def fetch(self, *, include: bool = True, mark: bool = False) -> tuple[str | None, list[str]]:
        """Copy the base and the journal segments to the work folder; return their local paths.

        :param include: ``False`` (``full_resync``): the run ignores the state, except what an interrupted
            ``full_resync`` (its mark, :data:`RESYNC_MARK`) confirmed since it began: the retry of a killed
            resync goes on where it stopped instead of sending every row again.
        :param mark: with ``include=False``, mark the start of a resync when none is under way (not in a
            dry run).
        :return: the local base (``None`` when there is none) and the local segments, oldest first.
        """
        names = self.segment_names()
        if names:
            self._stamp = max(self._stamp, int(names[-1][:20]))
        if not include:
            since = self.resync_since()
            if since is None:
                if mark:
                    self._stamp += 1
                    self.resync_from = f"{self._stamp:020d}"
                    marker = self.workdir / RESYNC_MARK
                    marker.write_text(json.dumps({"since": self.resync_from}), encoding="utf-8")
                    self.put(self.root / RESYNC_MARK, marker)
                return None, []
            self.resync_from = since
            log.info("Sync state: resuming the full_resync under way since %s.", _when(since))
            return None, [self._copy(f"{JOURNAL_DIR}/{name}") for name in names if name[:20] >= since]
        base = self._copy(BASE_NAME) if (self.root / BASE_NAME).exists() else None
        return base, [self._copy(f"{JOURNAL_DIR}/{name}") for name in names]

    def resync_since(self) -> str | None:
        """Return the first segment stamp of a ``full_resync`` under way (not compacted yet), if any."""
        marker = self.root / RESYNC_MARK
        if not marker.exists():
            return None
        try:
            since = str(json.loads(marker.read_text(encoding="utf-8"))["since"])
        except (ValueError, KeyError, TypeError):
            return None  # unreadable: no resync to resume, the run starts its own
        return since if len(since) == 20 and since.isdigit() else None

    def segment_names(self) -> list[str]:
        """Return the names of the complete journal segments, oldest first."""
        if not self.journal.exists():
            return []
        return sorted(p.name for p in self.journal.iterdir() if p.name.endswith(".jsonl"))

    def put(self, target: ObjectStoragePath, data: Path) -> None:
        """Write the local file ``data`` at ``target`` whole, streamed: as ``.tmp``, then renamed."""
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.parent / f"{target.name}.tmp"
        with tmp.open("wb") as fh, data.open("rb") as src:
            shutil.copyfileobj(src, fh, _COPY_BUFFER)
        tmp.rename(target)

    def append(self, lines: list[str]) -> None:
        """Write one journal segment of JSON lines (whole or not at all).

        Names start with a time stamp in nanoseconds, never below the newest existing segment's (a clock that
        went back, or another worker's), then the process id and the run's segment count.

        :param lines: the entries, one JSON object each.
        """
        self._stamp = max(time.time_ns(), self._stamp + 1)
        name = f"{self._stamp:020d}-{os.getpid()}-{len(self.written):06d}.jsonl"
        copy = self.local / JOURNAL_DIR / name
        copy.parent.mkdir(parents=True, exist_ok=True)
        copy.write_text("\n".join(lines) + "\n", encoding="utf-8")
        self.put(self.journal / name, copy)
        self.written.append(name)
        if self.after_append is not None:
            self.after_append()

    def compact(self, *, resync: bool, memory_limit: str) -> int | None:
        """Merge base and journal into a new base, then delete the merged segments; return the keys kept.

        A run that changed little leaves its segments in the journal: the base is rewritten only when the
        journal holds more than :data:`COMPACT_SHARE` of the base's rows or :data:`COMPACT_SEGMENTS` segments
        (or there is no base yet, or after a resync), so a daily run on a 100M-key state that changed 1 % does
        not rewrite 100M rows every day.

        :param resync: rebuild from the resync's segments only (``full_resync``; those of an interrupted
            attempt included): the old base and older segments are dropped.
        :param memory_limit: DuckDB's memory limit.
        :return: the keys of the new base; ``None`` when the base was not rewritten (nothing to merge, or the
            journal is kept).
        """
        from airflow_provider_hubcomm.sync.duck import connect, state_relation

        if resync:
            since = self.resync_from or "0" * 20
            names = [name for name in self.segment_names() if name[:20] >= since]
        else:
            names = self.segment_names()
        if not resync and not names:
            self._end_resync()
            return None
        if resync:
            base, segments = None, [self._copy(f"{JOURNAL_DIR}/{name}") for name in names]
        else:
            base, segments = self.fetch()
            if base is not None and not _worth_compacting(base, segments, memory_limit, self.workdir):
                self._end_resync()
                return None
        out = self.workdir / "new-state.parquet"
        con = connect(self.workdir, memory_limit)
        try:
            relation = state_relation(base, segments)
            con.execute(f"COPY ({relation}) TO '{_sql_path(out)}' (FORMAT parquet)")
            kept = con.execute(f"SELECT count(*) FROM read_parquet('{_sql_path(out)}')").fetchone()
        finally:
            con.close()
        self.put(self.root / BASE_NAME, out)
        self.local.mkdir(parents=True, exist_ok=True)
        out.replace(self.local / BASE_NAME)  # the local copy follows the new base
        stale = set(self.segment_names()) if resync else set(names)
        for name in sorted(stale):
            (self.journal / name).unlink()
        self._end_resync()
        return int(kept[0]) if kept else 0

    def _end_resync(self) -> None:
        """Remove the mark of a resync under way: it finished (or a normal run finished after it was given up)."""
        marker = self.root / RESYNC_MARK
        if marker.exists():
            marker.unlink()
        self.resync_from = None


def _when(stamp: str) -> str:
    return datetime.fromtimestamp(int(stamp) / 1e9, UTC).isoformat(timespec="seconds")


def _worth_compacting(base: str, segments: list[str], memory_limit: str, workdir: Path) -> bool:
    """Return whether the journal is large enough, next to the base, to be merged into it now."""
    if len(segments) > COMPACT_SEGMENTS:
        return True
    journal_rows = 0
    for segment in segments:
        with open(segment, "rb") as fh:
            while block := fh.read(1 << 20):
                journal_rows += block.count(b"\n")
    from airflow_provider_hubcomm.sync.duck import connect, q

    con = connect(workdir, memory_limit)
    try:
        counted = con.execute(f"SELECT count(*) FROM read_parquet({q(base)})").fetchone()  # from the footer
    finally:
        con.close()
    base_rows = int(counted[0]) if counted else 0
    if journal_rows > COMPACT_SHARE * base_rows:
        return True
    log.info(
        "Sync state: %d journal rows in %d segments kept beside the base's %d (compacted past %d %% or %d segments).",
        journal_rows,
        len(segments),
        base_rows,
        int(COMPACT_SHARE * 100),
        COMPACT_SEGMENTS,
    )
    return False


_COPY_BUFFER: Final = 4 * 1024 * 1024


def _download(source: ObjectStoragePath, target: Path) -> None:
    """Copy a file of the state to the work folder, streamed (a base of 100M rows is gigabytes)."""
    with source.open("rb") as src, target.open("wb") as dst:
        shutil.copyfileobj(src, dst, _COPY_BUFFER)


def _sql_path(path: Any) -> str:
    return str(path).replace("'", "''")


class Journal:
    """Records the rows HubSpot answered, and writes them to the state in bounded steps (the checkpoints).

    The run's accounting calls :meth:`record` for every written or failed row, from the run's thread only.

    The step grows with the run: :data:`CHECKPOINT_SHARE` of the rows checkpointed so far, at least
    :data:`CHECKPOINT_MIN_ROWS`, at most ``rows``; so what a killed run re-sends stays a small share of what
    it had confirmed, at any size, without thousands of tiny segments.

    :param state: where segments go.
    :param rows: the most rows per segment.
    :param seconds: the longest time recorded rows wait for their segment.
    """

    def __init__(self, state: SyncState, rows: int = CHECKPOINT_ROWS, seconds: float = CHECKPOINT_SECONDS) -> None:
        self.state = state
        self.rows = rows
        self.seconds = seconds
        self.lines: list[str] = []
        self.since = time.monotonic()
        self.recorded = 0
        self.step = min(rows, CHECKPOINT_MIN_ROWS)
        self._second = -1
        self._at = ""

    def refused(self, write: StatusFields) -> None:
        """Note a row the re-subscribe guard refused (``ok`` NULL): skipped again while its values stay the same.

        :param write: the row refused.
        """
        self.record(write, None)

    def record(self, write: StatusFields, confirmed: bool | None) -> None:
        """Note HubSpot's answer for a row sent; write a segment when a step is full.

        :param write: the row sent.
        :param confirmed: HubSpot confirmed the write (``COMPLETE``); ``False``: failed or not confirmed;
            ``None``: not sent, the re-subscribe guard refused it.
        """
        sub, sid, state, channel, basis, expl = write
        now = int(time.time())
        if now != self._second:  # one timestamp per second: formatting one per row would cost more than the row
            self._second, self._at = now, datetime.fromtimestamp(now, UTC).isoformat()
        at = self._at
        self.lines.append(
            f'{{"n":{len(self.lines)},"k":{_esc(sub.lower())},"s":{sid:d},"st":"{state}","ch":"{channel}","lb":'
            f'{"null" if basis is None else _esc(basis)},"ex":{"null" if expl is None else _esc(expl)}'
            f',"ok":{"null" if confirmed is None else "true" if confirmed else "false"},"ts":"{at}"}}'
        )
        self.recorded += 1
        if len(self.lines) >= self.step or time.monotonic() - self.since >= self.seconds:
            self.flush()

    def flush(self) -> None:
        """Write the recorded rows as one segment (nothing when there are none)."""
        if self.lines:
            self.state.append(self.lines)
            log.info("Sync state: checkpoint of %d rows (%d this run).", len(self.lines), self.recorded)
            self.lines = []
        self.since = time.monotonic()
        self.step = min(self.rows, max(CHECKPOINT_MIN_ROWS, int(self.recorded * CHECKPOINT_SHARE)))
