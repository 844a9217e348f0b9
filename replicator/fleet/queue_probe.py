"""The worker's first contact with its queue: fail in seconds, in one sentence, when it cannot work at all.

A worker whose queue URL is wrong, whose host is unreachable or whose credential is missing would
otherwise sit in the SDK's retries (and DefaultAzureCredential's probes) for about 90 s and end in a
long traceback. That is a configuration error (exit 2), not an outage: `probe` makes one unretried
request with a deadline. A queue that answered once and fails later is an outage, and the worker's
receive loop waits it out (replicator.fleet.worker, replicator.fleet.queue.retry_delay).
"""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit, urlunsplit

from azure.core.exceptions import ClientAuthenticationError, HttpResponseError

from replicator.core import messages
from replicator.core.errors import UserError
from replicator.fleet.queue import FleetQueue

PROBE_SECONDS = 10.0
"""Deadline of the first request, credential included: a healthy queue answers in well under a second,
and an IMDS probe for a managed identity that is not there gives up within a few seconds."""


def endpoint_of(queue: FleetQueue) -> str:
    """The queue's URL without its query (a SAS): safe to print."""
    return urlunsplit(urlsplit(queue.jobs.url)._replace(query="", fragment=""))


async def probe(queue: FleetQueue, *, deadline: float = PROBE_SECONDS) -> None:
    """Read the queue's properties once; UserError (exit 2) naming the endpoint and the cause on failure."""
    endpoint = endpoint_of(queue)
    try:
        await asyncio.wait_for(queue.jobs.get_queue_properties(retry_total=0), deadline)
    except TimeoutError:
        raise UserError(
            f"The queue {endpoint} did not answer within {deadline:.0f} s; check --queue and the network."
        ) from None
    except ClientAuthenticationError as exc:
        if messages.is_missing_credential(exc):
            raise UserError(messages.missing_credential(endpoint)) from None
        raise UserError(f"The queue {endpoint} refused our identity ({messages.describe(exc)}).") from None
    except HttpResponseError as exc:
        status = exc.status_code
        why = (
            "does not exist (create it, or run `replicate enqueue`)"
            if status == 404
            else f"answered {messages.describe(exc)}"
        )
        if status == 403:
            why = "refused access (403): check the SAS or the role (Storage Queue Data Message Processor)"
        raise UserError(f"The queue {endpoint} {why}.") from None
    except Exception as exc:
        if not messages.no_answer(exc):
            raise
        raise UserError(
            messages.unreachable("queue endpoint", endpoint, exc, "check --queue and the network")
        ) from None
