"""`replicate enqueue --queue URL`: one message per configured job (REPLICATOR_JOBS and/or
REPLICATOR_DISCOVER, see replicator.fleet.jobs) on the queue the workers drain (replicator.fleet.queue)."""

from __future__ import annotations

import asyncio
import os

from replicator.cli.usage import UsageParser
from replicator.core.errors import (
    EXIT_OK,
    EXIT_USAGE,
    ReplicatorError,
    status_of,
)
from replicator.fleet.jobs import load_jobs
from replicator.fleet.queue import FleetQueue, allow_http, enqueue
from replicator.observe.jsonlog import add_level_flag, failure, setup

PROG = "replicate enqueue"


async def _enqueue(queue_url: str) -> int:
    jobs = await load_jobs(os.environ)
    async with FleetQueue(queue_url, allow_http=allow_http()) as queue:
        return await enqueue(queue, jobs)


def main(argv: list[str]) -> int:
    parser = UsageParser(
        prog=PROG,
        description="Queue one message per job, for `replicate worker` to take.",
        epilog="The jobs come from the environment only: REPLICATOR_JOBS (a JSON list of "
        '{"source": ARM ID, "target": URL}) and/or REPLICATOR_DISCOVER (a subscription or '
        "resource group: its disks tagged replicator-target; see docs/functions.md).",
    )
    parser.add_argument(
        "--queue", default=os.environ.get("REPLICATOR_QUEUE_URL"), help="queue URL [env REPLICATOR_QUEUE_URL]"
    )
    add_level_flag(parser)
    args = parser.parse_args(argv)
    setup(args.log_level)
    if not args.queue:
        failure(PROG, "bad input", "--queue (or REPLICATOR_QUEUE_URL) is required.", EXIT_USAGE)
        return EXIT_USAGE
    try:
        asyncio.run(_enqueue(args.queue))  # logs `enqueued` with the count
    except ReplicatorError as err:
        failure(PROG, status_of(err), str(err), err.exit_code)
        return err.exit_code
    return EXIT_OK
