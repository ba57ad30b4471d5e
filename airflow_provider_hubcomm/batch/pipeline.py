"""The send pass of a batch run: rows -> (status reads) -> write chunks, on a bounded thread pool.

Rows stream in from the spool. A row that needs no read goes to the write buffer, cut into chunks of the
run's batch size; a row that does (guard, ``only_changes``) waits in a :class:`~.guard.Packer` until its read
request is full. Reads and writes run on the same pool (at most ``2 * max_concurrency`` jobs in flight);
their results are applied here, in the engine's thread, which is the only one touching the accounting.

Tier fallback: a ``403 MISSING_SCOPES`` from a batch endpoint switches the run to single calls
(:mod:`~.single`) once, after logging why and checking that the rest of the run fits the daily request
budget; the job that got the 403 is resent in the new mode. Any fatal error aborts: queued and buffered
rows fail as "not sent: run aborted: …", in-flight jobs finish.
"""

from __future__ import annotations

import logging
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import TYPE_CHECKING, Any, Literal

from airflow_provider_hubcomm.batch.chunk import send_chunk
from airflow_provider_hubcomm.batch.guard import Packer, ReadCache, ReadJob, decide, needs_read, read_job
from airflow_provider_hubcomm.batch.reasons import Reason, Row, classify_error, is_missing_scopes, not_sent
from airflow_provider_hubcomm.batch.single import fallback_plan, send_single
from airflow_provider_hubcomm.exceptions import HubCommError

if TYPE_CHECKING:
    from airflow_provider_hubcomm.batch.chunk import BatchSize
    from airflow_provider_hubcomm.batch.options import BatchWriteOptions
    from airflow_provider_hubcomm.batch.preflight import Preflight
    from airflow_provider_hubcomm.batch.reasons import ChunkResult
    from airflow_provider_hubcomm.batch.rows import WriteRow
    from airflow_provider_hubcomm.batch.summary import Progress
    from airflow_provider_hubcomm.batch.write_account import RunAccount
    from airflow_provider_hubcomm.hooks._catalog import SubscriptionCatalog
    from airflow_provider_hubcomm.hooks.hubcomm import HubCommHook

__all__ = ["SendPass"]

log = logging.getLogger("airflow_provider_hubcomm.batch.engine")


class SendPass:
    """Schedules the reads and writes of one run and applies their outcomes.

    :param hook: the prepared hook.
    :param account: the run's accounting.
    :param catalog: the account's subscriptions (brand of each subscription).
    :param size: the run's batch size.
    :param progress: the progress logger.
    :param options: the run's options (``max_concurrency``, the guard, ``only_changes``, the fallback).
    :param preflight: what the definitions preflight found (refused subscriptions, rows to send and to read).
    """

    def __init__(
        self,
        hook: HubCommHook,
        account: RunAccount,
        catalog: SubscriptionCatalog,
        size: BatchSize,
        progress: Progress,
        options: BatchWriteOptions,
        preflight: Preflight,
    ) -> None:
        self.hook = hook
        self.account = account
        self.catalog = catalog
        self.size = size
        self.progress = progress
        self.options = options
        self.preflight = preflight
        self.mode: Literal["batch", "single"] = "batch"
        self.chunks = 0
        self.abort: tuple[BaseException, Reason] | None = None
        self.in_flight: dict[Future[Any], tuple[str, Any]] = {}
        self.buffer: list[Row] = []
        self.status = Packer("status", size)
        self.wide = Packer("wide", size)
        self.cache = ReadCache()
        self.read_done = 0
        self.read_dropped = 0
        self.write_done = 0
        self.pool: ThreadPoolExecutor | None = None

    # -- entry points ------------------------------------------------------------------------------------------

    def run(self, records: Any) -> BaseException | None:
        """Send every record; return the fatal error when the run aborted.

        :param records: ``(row, write, superseded)`` from the spool.
        """
        limit = 2 * self.options.max_concurrency
        # No read and no refused subscription: a row goes straight to the write buffer (what feed() would do).
        direct = not self.preflight.problems and not self.options.only_changes and self.options.allow_resubscribe
        in_flight, size = self.in_flight, self.size
        with ThreadPoolExecutor(self.options.max_concurrency, thread_name_prefix="hubcomm-batch") as pool:
            self.pool = pool
            try:
                for row, write, superseded in records:
                    if superseded:
                        self.account.skipped["duplicate"] += 1
                        continue
                    if direct and self.abort is None:
                        buffer = self.buffer
                        buffer.append((row, write))
                        if len(buffer) >= size.current:
                            self.submit_write(buffer)
                            self.buffer = []
                    else:
                        self.feed(row, write)
                    while len(in_flight) >= limit:
                        self.settle()
                self.drain()
            except BaseException:
                for future in self.in_flight:
                    future.cancel()
                raise
        self.progress.maybe_log(final=True)
        return self.abort[0] if self.abort else None

    def feed(self, row: int, write: WriteRow) -> None:
        """Route one row: refused, to a read, or to the write buffer.

        :param row: row number.
        :param write: the row.
        """
        if self.abort:
            self.account.fail(row, write, not_sent(self.abort[1]))
            return
        problem = self.preflight.problems.get(write.subscription_id)
        if problem is not None:
            self.account.skip(row, write, *problem)
            return
        if needs_read(write, self.options):
            self.to_read(self.status, self.catalog.brand_of(write.subscription_id), row, write)
        else:
            self.to_write(row, write)

    def drain(self) -> None:
        """Flush partly filled reads, then the last write chunk, and wait for everything."""
        while self.status or self.wide or any(kind == "read" for kind, _ in self.in_flight.values()):
            for job in self.status.flush():
                self.submit_read(job)
            while any(kind == "read" for kind, _ in self.in_flight.values()):
                self.settle()
            for job in self.wide.flush():
                self.submit_read(job)
        if self.buffer:
            self.submit_write(self.buffer)
            self.buffer = []
        while self.in_flight:
            self.settle()

    # -- submitting --------------------------------------------------------------------------------------------

    def to_write(self, row: int, write: WriteRow) -> None:
        """Buffer a row for writing; send a chunk when the buffer holds a full one.

        :param row: row number.
        :param write: the row.
        """
        if self.abort:
            self.account.fail(row, write, not_sent(self.abort[1]))
            return
        self.buffer.append((row, write))
        if len(self.buffer) >= self.size.current:
            self.submit_write(self.buffer)
            self.buffer = []

    def to_read(self, packer: Packer, brand: int | None, row: int, write: WriteRow) -> None:
        """Decide a row from the cache, or queue it for its read.

        :param packer: the status or wide packer.
        :param brand: the row's subscription's brand.
        :param row: row number.
        :param write: the row.
        """
        if self.abort:
            self.account.fail(row, write, not_sent(self.abort[1]))
            return
        cached = self.cache.answer(packer.kind, brand, row, write)
        if cached is not None:
            self.apply(cached)
            return
        full = packer.add(brand, row, write)
        if full is not None:
            self.submit_read(full)

    def submit_write(self, rows: list[Row]) -> None:
        """Send a chunk of rows in the current mode.

        :param rows: the rows.
        """
        assert self.pool is not None
        index = self.chunks
        self.chunks += 1
        if self.mode == "single":
            future = self.pool.submit(send_single, self.hook, index, rows)
        else:
            future = self.pool.submit(send_chunk, self.hook, index, rows, self.size)
        self.in_flight[future] = ("write", rows)

    def submit_read(self, job: ReadJob) -> None:
        """Read a job's subscribers in the current mode.

        :param job: the job.
        """
        assert self.pool is not None
        if self.abort:
            self.fail_rows(job.rows, not_sent(self.abort[1]))
            return
        job.single = self.mode == "single"
        job.error = None
        self.in_flight[self.pool.submit(read_job, self.hook, job, self.size)] = ("read", job)

    # -- outcomes ----------------------------------------------------------------------------------------------

    def settle(self) -> None:
        """Wait for at least one job and apply what finished."""
        done, _ = wait(self.in_flight, return_when=FIRST_COMPLETED)
        for future in done:
            kind, payload = self.in_flight.pop(future)
            if future.cancelled():  # only on abort, where it is popped first; defensive
                rows = payload if kind == "write" else payload.rows
                self.fail_rows(rows, not_sent(self.abort[1]) if self.abort else Reason(None, "not sent: cancelled"))
            elif kind == "write":
                self.on_write(future.result())
            else:
                self.on_read(future.result())
        self.progress.maybe_log()

    def on_write(self, result: ChunkResult) -> None:
        """Account for a finished chunk; fall back or abort on its error.

        :param result: the chunk's outcome.
        """
        self.account.apply(result)
        self.write_done += len(result.rows) - len(result.requeue)
        err = result.fatal
        if result.requeue and err is not None and is_missing_scopes(err):
            if self.fall_back(err):
                self.submit_write(result.requeue)
            else:
                self.fail_rows(result.requeue, not_sent(self.abort[1]) if self.abort else classify_error(err)[1])
        elif err is not None:
            self.stop(err, classify_error(err)[1])

    def on_read(self, job: ReadJob) -> None:
        """Decide a read job's rows; fall back or abort on its error.

        :param job: the finished job.
        """
        err = job.error
        if err is None or job.single or not is_missing_scopes(err):
            (self.status if job.kind == "status" else self.wide).done(job)
        if err is not None:
            if not job.single and is_missing_scopes(err):
                if self.fall_back(err):
                    self.submit_read(job)
                else:
                    self.fail_rows(job.rows, not_sent(self.abort[1]) if self.abort else classify_error(err)[1])
                return
            fatal, reason = classify_error(err)
            what = "status read before write" if job.kind == "status" else "opt-out-of-all read before write"
            self.fail_rows(job.rows, reason._replace(message=f"{what} failed: {reason.message}"))
            self.read_done += len(job.rows)
            self.read_dropped += len(job.rows)
            if fatal:
                self.stop(err, reason)
            return
        self.cache.remember(job)
        self.apply(job)

    def apply(self, job: ReadJob) -> None:
        """Apply the verdicts of a read (or cached) job to its rows.

        :param job: the job, answered.
        """
        for row, write, verdict, detail in decide(job, self.options):
            if verdict == "wide":
                self.to_read(self.wide, job.brand, row, write)
                continue
            self.read_done += 1
            self.read_dropped += verdict != "write"
            if verdict == "write":
                self.to_write(row, write)
            elif verdict == "skip":
                self.account.skip(row, write, *detail)  # type: ignore[misc]
            else:
                self.account.fail(row, write, detail)  # type: ignore[arg-type]

    def fail_rows(self, rows: list[Row], reason: Reason) -> None:
        """Count rows failed with one reason.

        :param rows: the rows.
        :param reason: why.
        """
        for row, write in rows:
            self.account.fail(row, write, reason)

    # -- mode and abort ----------------------------------------------------------------------------------------

    def fall_back(self, err: BaseException) -> bool:
        """Switch to single calls after a batch endpoint's ``403 MISSING_SCOPES``; return whether the run goes on.

        :param err: the 403.
        """
        if self.mode == "single":
            return True
        if self.abort:
            return False
        why = self.hook.redact(str(err))
        if self.options.on_missing_batch_scope == "fail":
            self.stop(err, Reason("MISSING_SCOPES", f"batch endpoints refused (on_missing_batch_scope='fail'): {why}"))
            return False
        remaining_reads = max(self.preflight.to_read - self.read_done, 0)
        writes = max(self.preflight.sendable - self.read_dropped - self.write_done, 0)
        fits, plan = fallback_plan(
            writes,
            2 * remaining_reads,
            requests_per_10s=self.hook.config.requests_per_10s,
            budget=self.options.daily_request_budget,
            used=self.hook.counters()["requests"],
            daily_remaining=self.hook.rate_limiter.daily_remaining,
        )
        if not fits:
            message = (
                f"The account lacks HubSpot's batch scopes ({why}); finishing with single calls needs {plan}. "
                "Not sending more: raise daily_request_budget, split the input, or get the batch scopes "
                "(Marketing Hub Enterprise)."
            )
            self.stop(HubCommError(message), Reason("DAILY_BUDGET", message))
            return False
        log.warning(
            "HubSpot refused a batch endpoint for missing scopes (%s): batch endpoints need Marketing Hub "
            "Enterprise. Falling back to single calls for the rest of the run: %s.",
            why,
            plan,
        )
        self.mode = "single"
        return True

    def stop(self, err: BaseException, reason: Reason) -> None:
        """Abort the run: cancel queued jobs and fail their rows and every buffered row as not sent.

        :param err: the fatal error.
        :param reason: its reason.
        """
        if self.abort:
            return
        self.abort = (err, reason)
        log.error("Fatal error, aborting the run: %s", self.hook.redact(reason.key))
        gone = not_sent(reason)
        for future, (kind, payload) in list(self.in_flight.items()):
            if future.cancel():
                self.in_flight.pop(future)
                self.fail_rows(payload if kind == "write" else payload.rows, gone)
        self.fail_rows(self.buffer, gone)
        self.buffer = []
        for packer in (self.status, self.wide):
            for job in packer.flush():
                self.fail_rows(job.rows, gone)
