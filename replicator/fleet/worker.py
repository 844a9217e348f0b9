"""The worker loop of `replicate worker` (replicator.cli.worker_cmd): take job messages from an Azure
Storage queue, one at a time, and replicate each (for VMs and containers; the queue-triggered function
is the serverless twin).

Run as many as the load needs: each takes one message, keeps it invisible while the job runs, and
then deletes, continues, defers, poisons or leaves it (replicator.fleet.queue.decide). Every knob of a job
comes from the environment, as for `replicate` (REPLICATOR_CONCURRENCY, REPLICATOR_TIME_BUDGET, ...).

SIGTERM or SIGINT (a container scaled in, Ctrl-C) stops the current job the clean way, as if its time
budget ran out: checkpoint saved, SAS revoked, lease released, the job re-queued for another worker;
then the worker exits 0 (`Worker.stop`, called by replicator.cli.interrupt.calling_on_signals). A
SIGKILL leaves the message to reappear and the lease to expire (60 s).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

from azure.core.exceptions import HttpResponseError

from replicator.core import messages
from replicator.core.errors import ReplicationError, UserError
from replicator.engine.time_budget import Budget
from replicator.fleet.jobs import Outcome, run_job
from replicator.fleet.queue import (
    Action,
    FleetQueue,
    Message,
    decide,
    follow_up,
    kept_invisible,
    max_dequeue,
    parse_job,
    retry_delay,
    retrying,
)
from replicator.observe.jsonlog import event
from replicator.plumbing.retry import is_transient
from replicator.settings.knobs import knob

log = logging.getLogger(__name__)

DEFAULT_VISIBILITY = 120
"""Seconds a message stays invisible per extension; a killed worker's job reappears within this."""
MAX_POLL_SECONDS = 10.0
"""Longest pause between receives on an empty queue (each empty receive is one billed transaction)."""


def budget_from(env: Mapping[str, str]) -> Budget:
    """A job's budget from REPLICATOR_TIME_BUDGET (none when unset), read as the knob is read (a bad
    value: UserError naming the variable), stoppable by a signal."""
    return Budget(knob("time_budget_seconds").from_env(env))


class Worker:
    """The receive → run → settle loop of one worker process."""

    def __init__(self, queue: FleetQueue, env: Mapping[str, str], *, visibility: int) -> None:
        self.queue, self.env, self.visibility = queue, env, visibility
        self.max_dequeue = max_dequeue(env)
        self.stopping: str | None = None
        self.budget: Budget | None = None
        self.jobs_done = 0

    def stop(self, why: str) -> None:
        """Finish the current job cleanly (checkpoint, revoke, release, re-queue), then exit."""
        self.stopping = why
        if self.budget is not None:
            self.budget.stop(f"the worker was stopped ({why})")

    async def run(self, *, idle_exit: float | None, max_jobs: int | None) -> None:
        idle, pause, failures = 0.0, 0.5, 0
        while not self.stopping and (max_jobs is None or self.jobs_done < max_jobs):
            try:
                received = await self.queue.jobs.receive_message(visibility_timeout=self.visibility)
            except Exception as exc:
                if not is_transient(exc):
                    if isinstance(exc, HttpResponseError):  # a missing queue, a missing role: one sentence
                        raise ReplicationError(
                            f"the queue {self.queue.name} refused to hand out messages "
                            f"({messages.describe(exc)})."
                        ) from None
                    raise
                failures += 1  # a queue outage is waited out, however long: the worker is unattended
                await asyncio.sleep(retry_delay(self.queue, "receive", exc, failures))
                continue
            failures = 0
            if received is None:
                if idle_exit is not None and idle >= idle_exit:
                    return
                await asyncio.sleep(pause)
                idle, pause = idle + pause, min(pause * 2, MAX_POLL_SECONDS)
                continue
            idle, pause = 0.0, 0.5
            await self.handle(received)
            self.jobs_done += 1

    async def handle(self, received: object) -> None:
        message = Message(str(received.content), int(received.dequeue_count or 1))  # type: ignore[attr-defined]
        try:
            job = parse_job(message.body)
        except UserError as err:
            await self.settle(received, message, "poison", None, refused=str(err))
            return
        async with kept_invisible(self.queue, received, self.visibility) as holder:
            self.budget = budget_from(self.env)
            if self.stopping:
                self.budget.stop(f"the worker was stopped ({self.stopping})")
            try:
                outcome = await run_job(job, self.env, budget=self.budget, command="worker")
            finally:
                self.budget = None
        await self.settle(holder[0], message, decide(outcome, message, self.max_dequeue), outcome)

    async def settle(
        self,
        latest: Any,
        message: Message,
        action: Action,
        outcome: Outcome | None,
        refused: str | None = None,
    ) -> None:
        """Send the action's follow-up, then delete the message (or, for retry, delay its return).

        Each call is retried on transient failures (fleet.queue.retrying). If one still fails, the message
        is left to reappear and its job replays, which is harmless: the worker goes on either way.
        """
        queue = self.queue
        try:
            await retrying(queue, "follow-up", lambda: follow_up(queue, action, message, outcome, refused))
            if action == "retry":  # reappear after a pause that grows with each failure
                pause = min(30 * message.dequeue_count, 600)
                await retrying(
                    queue,
                    "update",
                    lambda: queue.jobs.update_message(
                        latest, pop_receipt=latest.pop_receipt, visibility_timeout=pause
                    ),
                )
            else:
                await retrying(
                    queue, "delete", lambda: queue.jobs.delete_message(latest, pop_receipt=latest.pop_receipt)
                )
        except Exception as exc:
            if not (is_transient(exc) or isinstance(exc, HttpResponseError)):
                raise
            # Lost to another worker meanwhile, or the queue kept failing: the message reappears.
            event(
                "message_unsettled",
                logging.WARNING,
                queue=queue.name,
                message_id=getattr(latest, "id", None),
                action=action,
                error=type(exc).__name__,
                status=getattr(exc, "status_code", None),
            )
