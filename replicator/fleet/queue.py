"""Fan-out over an Azure Storage queue: `replicate enqueue` puts one message per job, and workers
(`replicate worker --queue URL`, or the queue-triggered function) take them, one job at a time.

A message is a job (`{"source": ..., "target": ...}`, base64 as the Functions trigger expects). What a
worker does with it once the job has run (`decide`), by outcome:

- replicated, nothing new: delete.
- incomplete (time budget, SIGTERM): send a fresh copy (visible now), delete this one; the next
  worker continues from the checkpoint. The copy carries where the run stopped; after
  `MAX_STALLS` re-queues in a row that stopped at the same place (a checkpoint that never advances,
  e.g. a budget too short to copy one chunk), poison instead of re-queueing forever.
- locked (another run holds the target's lease), limited (SAS family budget): send a copy visible
  after `DEFER_SECONDS`, delete this one; after `MAX_DEFERRALS` drop it (logged): the holder is
  bringing the target up to date, and the next enqueue round brings the job back.
- bad input, unprotected (the disk has no incremental snapshot where the run looked): poison at once,
  a retry cannot help; the poison queue is where an operator sees it.
- failed: leave it; it reappears after a pause and another worker resumes from the checkpoint; on
  the `max_dequeue`-th delivery, poison.

Why a locked job is deferred rather than left or deleted: leaving it would spend the message's
dequeue count (a long full copy by another worker would push a healthy job into the poison queue),
and deleting it would lose the job when the holder is a killed worker whose lease has not expired yet
(up to 60 s): that job must be finished by someone, from its checkpoint. A deferred copy comes back
after the lease has surely expired; if the holder finished, the replay is a cheap "nothing new".

Redelivered and duplicate messages do no harm: the target lease admits one writer, the checkpoint
makes a resumed copy skip what is done, and a finished job replays as "nothing new" (no new restore
point). A poison message is the job plus its error (`{"job": ..., "error": ..., "dequeue_count": ...}`)
on the queue `<name>-poison`, the name the Functions host uses for its own poison messages.

While its job runs, a worker keeps the message invisible: every `visibility/3` seconds it extends the
visibility to `visibility` seconds. A killed worker stops extending; the message reappears within
`visibility` seconds and another worker takes it (deferred while the dead worker's lease lasts).

Queue calls fail transiently (resets, timeouts, 5xx): each is logged as a `queue_retry` event and
retried after a bounded, jittered backoff (`retry_delay`); an unattended worker never dies of one.
An extension that keeps failing is logged and retried while the job runs on: if the message
reappears meanwhile, a second worker meets the target's lease (one writer) and defers the job.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeVar
from urllib.parse import urlsplit, urlunsplit

from azure.core.exceptions import HttpResponseError
from azure.storage.queue import TextBase64DecodePolicy, TextBase64EncodePolicy
from azure.storage.queue.aio import QueueClient

from replicator.core.errors import UserError
from replicator.core.output import plural
from replicator.core.redact import redact, redact_url
from replicator.fleet.jobs import JobSpec, Outcome
from replicator.observe.jsonlog import event
from replicator.plumbing import credentials, retry
from replicator.settings.knobs import knob

log = logging.getLogger(__name__)
_T = TypeVar("_T")

QUEUE_URL_ENV = "REPLICATOR_QUEUE_URL"
DEFER_SECONDS = 60
"""A deferred (locked) job comes back after this: the target lease of a killed run lasts at most 60 s."""
MAX_DEFERRALS = 30
"""About half an hour of deferrals; a lock held longer is a long copy that the next enqueue round meets."""
MAX_STALLS = 3
"""Re-queues in a row without progress before an incomplete job is poisoned: a worker stopped twice by
scale-ins before its first checkpoint is bad luck, a third time at the same offset is a stuck job."""
DEFAULT_MAX_DEQUEUE = 5
"""Failures before poisoning: the Functions host's maxDequeueCount default, so both agree."""

QUEUE_BACKOFF_SECONDS = 1.0
"""Bound of the first pause after a transient queue failure; doubled per failure in a row (full jitter:
retry.backoff)."""
QUEUE_BACKOFF_MAX_SECONDS = 60.0
"""Longest pause between attempts: a queue outage is waited out at one try a minute, not hammered."""
SETTLE_ATTEMPTS = 5
"""Tries of one settling call (send, delete, update) before giving up: the message then reappears
and its job replays, which is harmless (see the module docstring)."""

Action = Literal["delete", "continue", "defer", "drop", "poison", "retry"]


@dataclass(frozen=True)
class Message:
    """A received job message: its body (decoded), how often it was delivered, and its deferral count."""

    body: str
    dequeue_count: int

    @property
    def doc(self) -> dict[str, Any]:
        try:
            doc = json.loads(self.body)
        except ValueError:
            return {}
        return doc if isinstance(doc, dict) else {}

    def _count(self, key: str) -> int:
        value = self.doc.get(key, 0)
        return value if isinstance(value, int) and not isinstance(value, bool) else 0

    @property
    def deferrals(self) -> int:
        """How often a locked or limited job was deferred (MAX_DEFERRALS)."""
        return self._count("deferrals")

    @property
    def stalls(self) -> int:
        """How many re-queues in a row stopped where the one before did (MAX_STALLS)."""
        return self._count("stalls")

    @property
    def position(self) -> str | None:
        """Where the run that re-queued this message stopped (BudgetSpent.position)."""
        value = self.doc.get("position")
        return value if isinstance(value, str) else None


def stalls_after(outcome: Outcome, message: Message) -> int:
    """Re-queues in a row without progress, counting this incomplete run: 0 when it moved on."""
    stuck = outcome.position is not None and outcome.position == message.position
    return message.stalls + 1 if stuck else 0


def decide(outcome: Outcome, message: Message, max_dequeue: int) -> Action:
    """What to do with `message` after its job ended with `outcome` (see the module table)."""
    if outcome.done:
        return "delete"
    if outcome.status == "incomplete":
        return "continue" if stalls_after(outcome, message) < MAX_STALLS else "poison"
    if outcome.status in ("locked", "limited"):
        return "defer" if message.deferrals < MAX_DEFERRALS else "drop"
    if outcome.status in ("bad input", "unprotected") or message.dequeue_count >= max_dequeue:
        return "poison"
    return "retry"


def refuse_sas(job: JobSpec) -> None:
    """UserError for a job whose target URL carries a SAS: a fleet job travels in queue messages.

    Why refuse rather than carry it: a queue message is readable by every identity that may peek,
    receive or manage the queue, stays in `<queue>-poison` until someone deletes it, and is copied
    by the Functions host into its own poison queue; a SAS there is a write credential to the
    replica that no one rotates. Workers and the queue trigger run with a managed identity anyway:
    give it Storage Blob Data Contributor on the target and put plain blob URLs in the jobs.
    """
    if urlsplit(job.target).query:
        raise UserError(
            f"the target of {job.source} carries a SAS ({redact_url(job.target)}); queued jobs must not "
            "hold secrets: give the workers' managed identity a role on the target and drop the SAS."
        )


def parse_job(body: str) -> JobSpec:
    """The job of a queue message; UserError (poisoned at once) when it is not one or holds a SAS."""
    job = JobSpec.from_json(body)
    refuse_sas(job)
    return job


def _queue_parts(url: str) -> tuple[str, str, str]:
    """(account URL, queue name, SAS query) of a queue URL, path-style (emulators) or not."""
    parts = urlsplit(url)
    path, _, name = parts.path.rstrip("/").rpartition("/")
    if not name:
        raise UserError(f"the queue URL {urlunsplit(parts._replace(query=''))} names no queue.")
    return urlunsplit((parts.scheme, parts.netloc, path, "", "")), name, parts.query


class FleetQueue:
    """The job queue and its poison queue (`<name>-poison`); a SAS in the URL, else the token credential."""

    def __init__(self, url: str, *, allow_http: bool = False) -> None:
        credentials.check_url(url, "queue URL", allow_http=allow_http)
        account_url, self.name, sas = _queue_parts(url)
        self._token = None if sas else credentials.async_credential()
        credential: Any = sas or self._token
        codec = {
            "message_encode_policy": TextBase64EncodePolicy(),
            "message_decode_policy": TextBase64DecodePolicy(),
        }
        self.jobs = QueueClient(account_url, self.name, credential, **codec, **credentials.transport_kwargs())
        self.poison = QueueClient(
            account_url, f"{self.name}-poison", credential, **codec, **credentials.transport_kwargs()
        )

    async def __aenter__(self) -> FleetQueue:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.jobs.close()
        await self.poison.close()
        if self._token is not None:
            await self._token.close()

    async def ensure(self) -> None:
        """Create both queues if missing (enqueue does; workers expect them)."""
        for client in (self.jobs, self.poison):
            try:
                await client.create_queue()
            except HttpResponseError as exc:
                if exc.status_code != 409:
                    raise

    async def send(self, job: JobSpec, *, delay: int = 0, **counters: int | str | None) -> None:
        """Send `job`, with the bookkeeping fields (deferrals, stalls, position) that are set."""
        refuse_sas(job)
        body = json.loads(job.to_json()) | {k: v for k, v in counters.items() if v}
        await self.jobs.send_message(json.dumps(body, sort_keys=True), visibility_timeout=delay or None)

    async def send_poison(self, message: Message, error: str | None) -> None:
        """Park `message` with its error; a SAS it carried (refused by `parse_job`) is masked here."""
        job = message.doc
        if isinstance(job.get("target"), str):
            job["target"] = redact_url(job["target"])
        doc = {"job": job or redact(message.body), "error": error, "dequeue_count": message.dequeue_count}
        await self.poison.send_message(json.dumps(doc, sort_keys=True))


async def enqueue(queue: FleetQueue, jobs: list[JobSpec]) -> int:
    """One message per job; returns how many were sent. Any job with a SAS target: none is sent."""
    for job in jobs:
        refuse_sas(job)
    await queue.ensure()
    for job in jobs:
        await queue.send(job)
    event(
        "enqueued",
        message=f"enqueued {plural(len(jobs), 'job')} on {queue.name}",
        queue=queue.name,
        jobs=len(jobs),
    )
    return len(jobs)


async def follow_up(
    queue: FleetQueue, action: Action, message: Message, outcome: Outcome | None, refused: str | None = None
) -> None:
    """The sends an action needs before its message is deleted (or, for retry, left to reappear).

    `outcome` is None for a message `parse_job` refused, and `refused` says why.
    """
    job = outcome.job if outcome else None
    error = outcome.error if outcome else refused or "not a replication job"
    if action == "continue" and job and outcome:
        await queue.send(job, stalls=stalls_after(outcome, message), position=outcome.position)
    elif action == "defer" and job:
        await queue.send(job, delay=DEFER_SECONDS, deferrals=message.deferrals + 1)
    elif action == "poison":
        if outcome and outcome.status == "incomplete":
            error = f"no progress in {MAX_STALLS + 1} runs in a row ({outcome.position}): {error}"
        await queue.send_poison(message, error)
    event(
        "message_" + action,
        queue=queue.name,
        run_id=outcome.run_id if outcome else None,
        disk=job.source if job else None,
        outcome=outcome.status if outcome else "bad input",
        dequeue_count=message.dequeue_count,
        error=error if action in ("poison", "retry") else None,
    )


def allow_http(env: Mapping[str, str] | None = None) -> bool:
    """REPLICATOR_ALLOW_HTTP, read as `replicate` reads it (the knob): plain-HTTP queue URLs for local
    emulators (Azurite); UserError for a value that is not true or false."""
    return bool(knob("allow_http").from_env(os.environ if env is None else env))


def max_dequeue(env: Mapping[str, str] | None = None) -> int:
    """REPLICATOR_MAX_DEQUEUE (default 5): deliveries of a failing job before it is poisoned."""
    env = os.environ if env is None else env
    try:
        return max(1, int(env.get("REPLICATOR_MAX_DEQUEUE") or DEFAULT_MAX_DEQUEUE))
    except ValueError:
        raise UserError("REPLICATOR_MAX_DEQUEUE must be a whole number.") from None


def _report_retry(queue: FleetQueue, operation: str, exc: BaseException, failures: int, delay: float) -> None:
    """The `queue_retry` event of the `failures`-th transient failure in a row of `operation`."""
    event(
        "queue_retry",
        logging.WARNING,
        queue=queue.name,
        operation=operation,
        error=type(exc).__name__,
        status=getattr(exc, "status_code", None),
        failures=failures,
        retry_in=round(delay, 3),
    )


def retry_delay(
    queue: FleetQueue,
    operation: str,
    exc: BaseException,
    failures: int,
    cap: float = QUEUE_BACKOFF_MAX_SECONDS,
) -> float:
    """Log the `failures`-th transient failure in a row of `operation`; returns the pause before a retry
    (retry.backoff, never past `cap`: the loops that pass one must act within it)."""
    delay = min(
        cap, retry.backoff(failures, first=QUEUE_BACKOFF_SECONDS, cap=QUEUE_BACKOFF_MAX_SECONDS, exc=exc)
    )
    _report_retry(queue, operation, exc, failures, delay)
    return delay


async def retrying(queue: FleetQueue, operation: str, call: Callable[[], Awaitable[_T]]) -> _T:
    """`call()`, retried on transient failures up to SETTLE_ATTEMPTS tries; the last failure propagates."""
    policy = retry.retrying(
        first=QUEUE_BACKOFF_SECONDS,
        cap=QUEUE_BACKOFF_MAX_SECONDS,
        attempts=SETTLE_ATTEMPTS,
        on_retry=lambda failures, delay, exc: _report_retry(queue, operation, exc, failures, delay),
    )
    async for attempt in policy:
        with attempt:
            return await call()
    raise AssertionError("unreachable: tenacity returns or reraises")


async def extend_visibility(queue: FleetQueue, received: Any, visibility: int, holder: list[Any]) -> None:
    """Keep `received` invisible while its job runs; `holder[0]` always has the latest pop receipt.

    Never raises: the job must run on whatever happens to its message. Transient failures are
    retried sooner than the period (within the visibility window); a refusal (the message is gone
    or its pop receipt is stale: another worker took it) ends the extension.
    """
    holder[:] = [received]
    period, pause, failures = visibility / 3, visibility / 3, 0
    while True:
        await asyncio.sleep(pause)
        try:
            holder[0] = await queue.jobs.update_message(
                holder[0], pop_receipt=holder[0].pop_receipt, visibility_timeout=visibility
            )
            pause, failures = period, 0
        except Exception as exc:
            if retry.is_transient(exc):
                failures += 1
                pause = retry_delay(queue, "extend", exc, failures, period)
                continue
            event(
                "visibility_lost",
                logging.WARNING,
                queue=queue.name,
                message_id=getattr(received, "id", None),
                error=type(exc).__name__,
                status=getattr(exc, "status_code", None),
                note="the job runs on; if another worker takes the message, the target lease keeps 1 writer",
            )
            return


@contextlib.asynccontextmanager
async def kept_invisible(queue: FleetQueue, received: Any, visibility: int) -> Any:
    holder: list[Any] = [received]
    task = asyncio.create_task(extend_visibility(queue, received, visibility, holder), name="visibility")
    try:
        yield holder
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
