"""`replicate enqueue --queue URL`: one message per configured job (REPLICATOR_JOBS and/or
REPLICATOR_DISCOVER, see replicator.jobs) on the queue the workers drain (replicator.fleet)."""

from __future__ import annotations

import asyncio
import os
import sys

from replicator.errors import EXIT_OK, ReplicatorError
from replicator.fleet import FleetQueue, allow_http, enqueue
from replicator.jobs import load_jobs
from replicator.jsonlog import setup
from replicator.output import plural
from replicator.redact import redact
from replicator.usage import UsageParser


async def _enqueue(queue_url: str) -> int:
    jobs = await load_jobs(os.environ)
    async with FleetQueue(queue_url, allow_http=allow_http()) as queue:
        return await enqueue(queue, jobs)


def main(argv: list[str]) -> int:
    parser = UsageParser(
        prog="replicate enqueue",
        description="Queue one message per job, for `replicate worker` to take.",
        epilog="The jobs come from the environment only: REPLICATOR_JOBS (a JSON list of "
        '{"source": ARM ID, "target": URL}) and/or REPLICATOR_DISCOVER (a subscription or '
        "resource group: its disks tagged replicator-target; see docs/functions.md).",
    )
    parser.add_argument(
        "--queue", default=os.environ.get("REPLICATOR_QUEUE_URL"), help="queue URL [env REPLICATOR_QUEUE_URL]"
    )
    args = parser.parse_args(argv)
    setup(os.environ.get("REPLICATOR_LOG_LEVEL", "info"))
    if not args.queue:
        print("replicate enqueue: error: --queue (or REPLICATOR_QUEUE_URL) is required.", file=sys.stderr)
        return 2
    try:
        count = asyncio.run(_enqueue(args.queue))
    except ReplicatorError as err:
        print(f"replicate enqueue: error: {redact(str(err))}", file=sys.stderr)
        return err.exit_code
    print(f"enqueued {plural(count, 'job')}", file=sys.stderr)
    return EXIT_OK
