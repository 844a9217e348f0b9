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
- bad input: poison at once, a retry cannot help.
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
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

from azure.core.exceptions import HttpResponseError
from azure.storage.queue import TextBase64DecodePolicy, TextBase64EncodePolicy
from azure.storage.queue.aio import QueueClient

from replicator import credentials
from replicator.errors import UserError
from replicator.jobs import JobSpec, Outcome
from replicator.jsonlog import event

log = logging.getLogger(__name__)

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
    if outcome.status == "bad input" or message.dequeue_count >= max_dequeue:
        return "poison"
    return "retry"


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
        body = json.loads(job.to_json()) | {k: v for k, v in counters.items() if v}
        await self.jobs.send_message(json.dumps(body, sort_keys=True), visibility_timeout=delay or None)

    async def send_poison(self, message: Message, error: str | None) -> None:
        doc = {"job": message.doc or message.body, "error": error, "dequeue_count": message.dequeue_count}
        await self.poison.send_message(json.dumps(doc, sort_keys=True))


async def enqueue(queue: FleetQueue, jobs: list[JobSpec]) -> int:
    """One message per job; returns how many were sent."""
    await queue.ensure()
    for job in jobs:
        await queue.send(job)
    event("enqueued", queue=queue.name, jobs=len(jobs))
    return len(jobs)


async def follow_up(queue: FleetQueue, action: Action, message: Message, outcome: Outcome | None) -> None:
    """The sends an action needs before its message is deleted (or, for retry, left to reappear)."""
    job = outcome.job if outcome else None
    error = outcome.error if outcome else "not a replication job"
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
    """REPLICATOR_ALLOW_HTTP, as for `replicate`: plain-HTTP queue URLs for local emulators (Azurite)."""
    env = os.environ if env is None else env
    return env.get("REPLICATOR_ALLOW_HTTP", "").strip().lower() in ("1", "true", "yes", "on")


def max_dequeue(env: Mapping[str, str] | None = None) -> int:
    """REPLICATOR_MAX_DEQUEUE (default 5): deliveries of a failing job before it is poisoned."""
    env = os.environ if env is None else env
    try:
        return max(1, int(env.get("REPLICATOR_MAX_DEQUEUE") or DEFAULT_MAX_DEQUEUE))
    except ValueError:
        raise UserError("REPLICATOR_MAX_DEQUEUE must be a whole number.") from None


async def extend_visibility(queue: FleetQueue, received: Any, visibility: int, holder: list[Any]) -> None:
    """Keep `received` invisible while its job runs; `holder[0]` always has the latest pop receipt."""
    holder[:] = [received]
    while True:
        await asyncio.sleep(visibility / 3)
        try:
            holder[0] = await queue.jobs.update_message(
                holder[0], pop_receipt=holder[0].pop_receipt, visibility_timeout=visibility
            )
        except HttpResponseError as exc:  # lost it (another worker took it): nothing left to extend
            log.warning("could not extend the visibility of message %s: %s", received.id, exc.status_code)
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
