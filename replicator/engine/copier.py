"""Chunk writes and source reads with their retry, and the pool of workers that runs them.

Who retries what here: every op (Put Page From URL, Put Page, clear, and the ranged GET of stream
mode) is retried by `Copier.retried` through plumbing.retry (tenacity): exponential backoff with full
jitter, at least the Retry-After the service asked for, on its transient failures (408/429/500/502/
503/504, timeouts, connection resets), up to `Config.max_attempts` attempts. A 403 on the source
SAS invalidates the grant and retries with a fresh URL. A protected source's reads and copies carry
the disk token (source.disk_auth), fetched for every attempt, so a retry never sends an expired one.
The writes retry nothing below this loop (plumbing.page_writes: no SDK pipeline) and the reads pass
`retry_total=0` to the SDK, so retries never stack.

The pool (`run_pool`) feeds ops through a bounded queue to its workers (`--concurrency` per target blob
written: core.stripes.copy_workers) in an asyncio.TaskGroup: the first permanent error cancels the
others. How many of their requests are at the service at once is the target blob's pacer's call
(engine.pacer): every attempt holds one of its slots.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

from azure.core.exceptions import HttpResponseError

from replicator.core import ranges
from replicator.core.errors import ReplicatorError
from replicator.core.messages import describe
from replicator.core.progress import (
    Progress,
)
from replicator.core.weighted import WeightedSemaphore
from replicator.engine.inflight import process_in_flight_bytes
from replicator.engine.pacer import Pacer, StripePacers
from replicator.observe.jsonlog import event
from replicator.plumbing import retry
from replicator.plumbing.page_writes import copy_source_refused
from replicator.settings.config import Config
from replicator.source.disk_auth import refused_identity, refused_sas
from replicator.source.grants import Grant
from replicator.source.reader import SasBlobReader
from replicator.target.page_blob import PageBlobTarget

log = logging.getLogger(__name__)
T = TypeVar("T")

CHUNK_BACKOFF_SECONDS = 0.5
"""Bound of the first wait after a failed chunk write or source read; doubles per failure in a row."""
CHUNK_BACKOFF_MAX_SECONDS = 30.0
"""Upper bound of one wait (retry.backoff); a Retry-After may ask for longer (up to its own cap)."""


class SourceAccessDenied(Exception):
    """The source SAS was refused (expired or revoked): re-grant and retry."""


def _retried(exc: BaseException) -> bool:
    """What a chunk is tried again after: a transient failure, or a refused source SAS (re-granted)."""
    return isinstance(exc, SourceAccessDenied) or retry.is_transient(exc)


class Throttle:
    """--max-bandwidth: a virtual-clock limiter shared by all workers (bytes per second)."""

    def __init__(self, rate: int | None) -> None:
        self._rate = rate
        self._next = time.monotonic()

    async def take(self, nbytes: int) -> None:
        if not self._rate:
            return
        now = time.monotonic()
        start = max(now, self._next)
        self._next = start + nbytes / self._rate
        if start > now:
            await asyncio.sleep(start - now)


# ---------------------------------------------------------------- running one job


class Copier:
    """Executes ops against the target with retries; counts requests and retries for the summary."""

    def __init__(
        self,
        config: Config,
        target: PageBlobTarget,
        grant: Grant,
        reader: SasBlobReader,
        progress: Progress,
        pacer: Pacer | StripePacers,
    ) -> None:
        self.config, self.target, self.grant, self.reader, self.progress, self.pacer = (
            config,
            target,
            grant,
            reader,
            progress,
            pacer,
        )
        self.throttle = Throttle(config.max_bandwidth)
        self.in_flight = (
            WeightedSemaphore(config.max_in_flight_bytes)
            if config.mode == "server"
            else process_in_flight_bytes(config.max_in_flight_bytes)  # buffers: one memory bound per process
        )
        self.requests = 0
        self.retries = 0

    def _pacer(self, r: ranges.Range) -> Pacer:
        """The pacer of the target blob `r` is written to (a stripe's, for a source over 8 TiB)."""
        return self.pacer.of(r) if isinstance(self.pacer, StripePacers) else self.pacer

    async def retried(
        self, what: str, call: Callable[[str], Awaitable[T]], r: ranges.Range, nbytes: int = 0
    ) -> T:
        """Run `call(source_sas_url)`, which writes `r` and sends `nbytes` into the target account (a
        copy: its length; a clear: nothing), under the chunk retry policy, each attempt paced by the
        pacer of the blob `r` lands in and by the account's budget; a denied SAS is re-granted first."""
        pacer = self._pacer(r)
        policy = retry.retrying(
            first=CHUNK_BACKOFF_SECONDS,
            cap=CHUNK_BACKOFF_MAX_SECONDS,
            attempts=self.config.max_attempts,
            retry_on=_retried,
            on_retry=self._on_retry(what),
        )
        async for attempt in policy:
            with attempt:
                url = await self.grant.url()
                self.requests += 1
                try:
                    async with pacer.slot(nbytes), asyncio.timeout(self.config.request_timeout_seconds):
                        return await call(url)
                except SourceAccessDenied:
                    self.grant.invalidate(url)
                    raise
                except HttpResponseError as exc:
                    if copy_source_refused(exc):
                        self.grant.invalidate(url)
                        raise SourceAccessDenied(describe(exc)) from exc
                    raise
        raise AssertionError("unreachable: tenacity reraises")

    def _on_retry(self, what: str) -> retry.OnRetry:
        def report(attempt: int, delay: float, exc: BaseException) -> None:
            self.retries += 1
            error = describe(exc)
            event(
                "retry",
                logging.DEBUG,
                message=f"retrying {what} (attempt {attempt}) in {delay:.1f} s after {error}",
                what=what,
                attempt=attempt,
                delay_seconds=round(delay, 3),
                error=error,
            )
            self.progress.on_retry(what, attempt, delay, error)

        return report

    async def execute(self, op: ranges.Op) -> None:
        what = f"{op.kind} {op.range}"
        if op.kind == "clear":
            await self.retried(what, lambda _url: self.target.clear(op), op.range)
            return
        await self.throttle.take(op.range.length)

        snapshot = self.grant.snapshot

        async def stream_copy(url: str) -> None:
            try:
                data, md5 = await self.reader.read(url, snapshot, op.range)
            except HttpResponseError as exc:  # only the source read's 403 is the SAS: re-grant
                if refused_sas(exc):
                    raise SourceAccessDenied(describe(exc)) from exc
                if refused_identity(exc):  # the disk token was refused: no retry fixes that
                    raise self.grant.disk_auth.refusal(exc, snapshot) from None
                raise
            await self.target.put_pages(op, data, md5)  # a 403 here is the target's credential: permanent

        async def server_copy(url: str) -> None:
            authorization = await self.grant.disk_auth.authorization(snapshot)
            await self.target.copy_from_url(op, url, authorization)

        async with self.in_flight.hold(op.range.length):
            if self.config.mode == "server":
                await self.retried(what, server_copy, op.range, op.range.length)
            else:
                await self.retried(what, stream_copy, op.range, op.range.length)
        self.progress.on_written(op.range.length)


async def run_pool(
    ops: AsyncIterator[ranges.Op], workers: int, depth: int, work: Callable[[ranges.Op], Awaitable[None]]
) -> None:
    """Feed `ops` through a bounded queue to `workers` tasks; the first permanent error cancels the rest."""
    queue: asyncio.Queue[ranges.Op | None] = asyncio.Queue(maxsize=depth)

    async def worker() -> None:
        while (op := await queue.get()) is not None:
            await work(op)

    try:
        async with asyncio.TaskGroup() as group:
            for i in range(workers):
                group.create_task(worker(), name=f"worker-{i}")
            async for op in ops:
                await queue.put(op)
            for _ in range(workers):
                await queue.put(None)
    except BaseExceptionGroup as group:
        raise _primary(group) from None


def _primary(group: BaseExceptionGroup) -> BaseException:
    """The error to report from a failed pool: a deliberate ReplicatorError first, else the first failure."""
    leaves: list[BaseException] = []

    def flatten(exc: BaseException) -> None:
        if isinstance(exc, BaseExceptionGroup):
            for inner in exc.exceptions:
                flatten(inner)
        else:
            leaves.append(exc)

    flatten(group)
    return next((e for e in leaves if isinstance(e, ReplicatorError)), leaves[0])
