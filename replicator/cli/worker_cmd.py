"""`replicate worker --queue URL`: take job messages from an Azure Storage queue, one at a time, and
replicate each (the loop: replicator.fleet.worker). This module parses and starts it.

SIGTERM or SIGINT (a container scaled in, Ctrl-C) stops the current job the clean way, then the
worker exits 0 (replicator.cli.interrupt.calling_on_signals around the loop; before the loop starts, a
signal stops the command as any other: 130 / 143).
"""

from __future__ import annotations

import argparse
import os

from replicator.cli import interrupt, shell
from replicator.cli.queue_flag import add_queue_flag, queue_url
from replicator.core.errors import UserError
from replicator.fleet import queue_probe
from replicator.fleet.queue import FleetQueue, allow_http
from replicator.fleet.worker import DEFAULT_VISIBILITY, Worker
from replicator.observe.jsonlog import event


async def _worker(invocation: shell.Invocation) -> shell.CommandResult:
    p = invocation.parser("Replicate jobs taken from an Azure Storage queue.", knobs=["log_level"])
    add_queue_flag(p)
    p.add_argument(
        "--visibility",
        type=int,
        default=os.environ.get("REPLICATOR_VISIBILITY") or DEFAULT_VISIBILITY,  # argparse applies type
        help="seconds a taken message stays invisible, extended every third of it; a killed worker's "
        "job reappears within this [env REPLICATOR_VISIBILITY]",
    )
    p.add_argument(
        "--exit-when-idle",
        type=float,
        default=None,
        metavar="SECONDS",
        help="exit after an empty queue for this long",
    )
    p.add_argument("--max-jobs", type=int, default=None, help="exit after this many messages")
    args = p.parse_args(invocation.argv)
    shell.configure(p, args, required=())
    queue_url(args)
    if not 1 <= args.visibility <= 7 * 86400:
        raise UserError("--visibility must be between 1 and 604800 s.")
    await _serve(args)
    return shell.CommandResult(json=False, status="stopped")


async def _serve(args: argparse.Namespace) -> None:
    env = os.environ
    async with FleetQueue(args.queue, allow_http=allow_http(env)) as queue:
        await queue_probe.probe(queue)  # a queue that never answers is bad configuration: exit 2 fast
        worker = Worker(queue, env, visibility=args.visibility)
        with interrupt.calling_on_signals(worker.stop):
            event("worker_start", queue=queue.name, pid=os.getpid())
            await worker.run(idle_exit=args.exit_when_idle, max_jobs=args.max_jobs)
        event("worker_stop", queue=queue.name, pid=os.getpid(), jobs=worker.jobs_done, reason=worker.stopping)


def main(argv: list[str]) -> int:
    return shell.run("worker", argv, _worker, json_capable=False)
