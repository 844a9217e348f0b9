"""`replicate enqueue --queue URL`: one message per configured job (REPLICATOR_JOBS and/or
REPLICATOR_DISCOVER, see replicator.fleet.jobs) on the queue the workers drain (replicator.fleet.queue)."""

from __future__ import annotations

import os

from replicator.cli import shell
from replicator.cli.queue_flag import add_queue_flag, queue_url
from replicator.fleet.jobs import load_jobs
from replicator.fleet.queue import FleetQueue, allow_http, enqueue


async def _enqueue(invocation: shell.Invocation) -> shell.CommandResult:
    p = invocation.parser(
        "Queue one message per job, for `replicate worker` to take.",
        knobs=["log_level"],
        epilog="The jobs come from the environment only: REPLICATOR_JOBS (a JSON list of "
        '{"source": ARM ID, "target": URL}) and/or REPLICATOR_DISCOVER (a subscription or '
        "resource group: its disks tagged replicator-target; see docs/functions.md).",
    )
    add_queue_flag(p)
    args = p.parse_args(invocation.argv)
    shell.configure(p, args, required=())
    url = queue_url(args)
    jobs = await load_jobs(os.environ)
    async with FleetQueue(url, allow_http=allow_http()) as queue:
        await enqueue(queue, jobs)  # logs `enqueued` with the count
    return shell.CommandResult(json=False, status="enqueued")


def main(argv: list[str]) -> int:
    return shell.run("enqueue", argv, _enqueue, json_capable=False)
