"""The order in which a timer tick runs its jobs: least recently served first.

Without fan-out, one invocation runs the jobs in turn under one time budget. Run in list order, a job
whose diff eats the whole budget would run first at every tick and starve the jobs after it. Instead
each tick starts with the job whose target blob changed least recently (its `Last-Modified`): every
run that does work writes its target (pages, checkpoint, state), so a job the budget did not reach
keeps an old time and goes first at the next tick, and the big job continues with what is left.
A target that does not exist yet (or cannot be read: the run will report why) counts as never served.
Cheap "nothing new" jobs write nothing and stay early, which costs a few seconds each.

The cost is one Get Blob Properties per job per tick, with the same credential as the run.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from azure.core.credentials_async import AsyncTokenCredential
from azure.core.exceptions import HttpResponseError, ServiceRequestError
from azure.storage.blob.aio import BlobClient

from replicator.core.errors import UserError
from replicator.fleet.jobs import JobSpec
from replicator.fleet.queue import allow_http
from replicator.plumbing import credentials
from replicator.plumbing.credentials import client_kwargs
from replicator.plumbing.urlcheck import parse_target_url

PARALLEL_READS = 16
"""Properties reads in flight at once: a few hundred jobs are ordered in about a second."""


async def _last_served(
    job: JobSpec, http_ok: bool, token: AsyncTokenCredential, gate: asyncio.Semaphore
) -> float:
    """The target's Last-Modified as a POSIX time; 0 when it is missing or unreadable."""
    try:
        url = parse_target_url(job.target, allow_http=http_ok)
    except UserError:
        return 0.0
    async with (
        gate,
        BlobClient(
            url.account_url, url.container, url.blob, credential=url.sas or token, **client_kwargs()
        ) as blob,
    ):
        try:
            props = await blob.get_blob_properties(retry_total=0)
        except (HttpResponseError, ServiceRequestError):  # missing (404) or unreadable: run it first
            return 0.0
    return props.last_modified.timestamp() if props.last_modified else 0.0


async def least_recently_served(jobs: list[JobSpec], env: Mapping[str, str]) -> list[JobSpec]:
    """`jobs` ordered by their targets' last change, oldest first (ties keep the configured order)."""
    gate = asyncio.Semaphore(PARALLEL_READS)
    async with credentials.async_credential() as token:
        served = await asyncio.gather(*(_last_served(job, allow_http(env), token, gate) for job in jobs))
    return [job for _, _, job in sorted(zip(served, range(len(jobs)), jobs, strict=True))]
