"""`replicate worker --queue URL`: take job messages from an Azure Storage queue, one at a time, and
replicate each (for VMs and containers; the queue-triggered function is the serverless twin).

Run as many as the load needs: each takes one message, keeps it invisible while the job runs, and
then deletes, continues, defers, poisons or leaves it (replicator.fleet.queue.decide). Every knob of a job
comes from the environment, as for `replicate` (REPLICATOR_CONCURRENCY, REPLICATOR_TIME_BUDGET, ...).

SIGTERM or SIGINT (a container scaled in, Ctrl-C) stops the current job the clean way, as if its time
budget ran out: checkpoint saved, SAS revoked, lease released, the job re-queued for another worker;
then the worker exits 0. A SIGKILL leaves the message to reappear and the lease to expire (60 s).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
from collections.abc import Mapping
from typing import Any

from azure.core.exceptions import HttpResponseError

from replicator.cli.usage import UsageParser
from replicator.core import messages
from replicator.core.errors import (
    EXIT_OK,
    EXIT_USAGE,
    ReplicationError,
    ReplicatorError,
    UserError,
    status_of,
)
from replicator.engine.time_budget import Budget
from replicator.fleet import queue_probe
from replicator.fleet.jobs import Outcome, run_job
from replicator.fleet.queue import (
    Action,
    FleetQueue,
    Message,
    allow_http,
    decide,
    follow_up,
    kept_invisible,
    max_dequeue,
    parse_job,
    retry_delay,
    retrying,
)
from replicator.observe.jsonlog import (
    add_level_flag,
    event,
    failure,
    setup,
)
from replicator.plumbing.retry import is_transient

log = logging.getLogger(__name__)
PROG = "replicate worker"

DEFAULT_VISIBILITY = 120
"""Seconds a message stays invisible per extension; a killed worker's job reappears within this."""
MAX_POLL_SECONDS = 10.0
"""Longest pause between receives on an empty queue (each empty receive is one billed transaction)."""


def budget_from(env: Mapping[str, str]) -> Budget:
    """A job's budget from REPLICATOR_TIME_BUDGET (none when unset), stoppable by a signal."""
    raw = env.get("REPLICATOR_TIME_BUDGET") or None
    try:
        return Budget(float(raw) if raw else None)
    except ValueError:
        raise UserError(f"--time-budget: expected a number; got {raw!r}.") from None


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

        Each call is retried on transient failures (fleet.retrying). If one still fails, the message
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


def build_parser() -> argparse.ArgumentParser:
    parser = UsageParser(prog=PROG, description="Replicate jobs taken from an Azure Storage queue.")
    parser.add_argument(
        "--queue", default=os.environ.get("REPLICATOR_QUEUE_URL"), help="queue URL [env REPLICATOR_QUEUE_URL]"
    )
    parser.add_argument(
        "--visibility",
        type=int,
        default=os.environ.get("REPLICATOR_VISIBILITY") or DEFAULT_VISIBILITY,  # argparse applies type
        help="seconds a taken message stays invisible, extended every third of it; a killed worker's "
        "job reappears within this [env REPLICATOR_VISIBILITY]",
    )
    parser.add_argument(
        "--exit-when-idle",
        type=float,
        default=None,
        metavar="SECONDS",
        help="exit after an empty queue for this long",
    )
    parser.add_argument("--max-jobs", type=int, default=None, help="exit after this many messages")
    add_level_flag(parser)
    return parser


async def _serve(args: argparse.Namespace, env: Mapping[str, str]) -> None:
    async with FleetQueue(args.queue, allow_http=allow_http(env)) as queue:
        await queue_probe.probe(queue)  # a queue that never answers is bad configuration: exit 2 fast
        worker = Worker(queue, env, visibility=args.visibility)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, worker.stop, sig.name)
        event("worker_start", queue=queue.name, pid=os.getpid())
        try:
            await worker.run(idle_exit=args.exit_when_idle, max_jobs=args.max_jobs)
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)
        event("worker_stop", queue=queue.name, pid=os.getpid(), jobs=worker.jobs_done, reason=worker.stopping)


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    setup(args.log_level)
    if not args.queue:
        failure(PROG, "bad input", "--queue (or REPLICATOR_QUEUE_URL) is required.", EXIT_USAGE)
        return EXIT_USAGE
    if not 1 <= args.visibility <= 7 * 86400:
        failure(PROG, "bad input", "--visibility must be between 1 and 604800 s.", EXIT_USAGE)
        return EXIT_USAGE
    try:
        asyncio.run(_serve(args, os.environ))
    except ReplicatorError as err:
        failure(PROG, status_of(err), str(err), err.exit_code)
        return err.exit_code
    return EXIT_OK
