"""azure-core's retry of ARM requests, unchanged, with every wait it makes logged (event `arm_retry`).

Why: ARM throttles with 429 and a `Retry-After` that Compute sets in minutes ("Troubleshooting API
throttling errors": 1200 s in its example), and azure-core's pipeline honours it without a word, so a
throttled run would look hung. The pipeline stays the one owner of ARM retries (docs/architecture.md,
"Who retries what"); this policy only says, before each wait, what was answered and how long it waits.

What azure-core retries (azure.core.pipeline.policies.AsyncRetryPolicy): any answer carrying
`Retry-After` (every ARM throttling answer does), and 408, 429, 500, 502, 503 and 504 on GET, PUT and
DELETE; it waits as `Retry-After` asks, else an exponential backoff (0.8 s doubling). A request is
retried at most ARM_RETRIES times for each cause (answers, connection failures, lost answers). A
long-running operation's status polls go through the same pipeline, each poll with its own budget.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlsplit

from azure.core.pipeline import PipelineResponse
from azure.core.pipeline.policies import AsyncRetryPolicy

from replicator.core import messages
from replicator.observe.jsonlog import event

ARM_RETRIES = 3
"""Retries of one ARM request (azure-core's default for each cause, named here because the runbook and
the tests count on it): a burst of throttling is ridden out, while a subscription throttled for
longer fails the run (exit 1) instead of holding a schedule for hours, at Compute's Retry-After of up
to 20 minutes a wait."""


class LoggedArmRetry(AsyncRetryPolicy):
    """AsyncRetryPolicy that logs the event `arm_retry` (warning) before each of its waits."""

    def __init__(self) -> None:
        super().__init__(retry_status=ARM_RETRIES, retry_connect=ARM_RETRIES, retry_read=ARM_RETRIES)

    async def sleep(
        self, settings: dict[str, Any], transport: Any, response: PipelineResponse[Any, Any] | None = None
    ) -> None:
        retry_after = self.get_retry_after(response) if response is not None else None
        delay = retry_after or self.get_backoff_time(settings)
        failed = settings["history"][-1]  # the attempt that failed: its request, and its answer if any
        what = f"{failed.http_request.method} {urlsplit(failed.http_request.url).path}"
        answer = failed.http_response
        said = (
            f"ARM answered {answer.status_code} {answer.reason or ''}".rstrip()
            if answer
            else f"no answer from ARM ({messages.describe(failed.error)})"
        )
        why = "as its Retry-After asks" if retry_after else "(backoff)"
        retry = len(settings["history"])
        event(
            "arm_retry",
            logging.WARNING,
            message=f"{said} to {what}; retrying in {delay:g} s {why} (retry {retry} of {ARM_RETRIES})",
            request=what,
            status=answer.status_code if answer else None,
            retry=retry,
            delay_seconds=round(delay, 3),
        )
        await super().sleep(settings, transport, response)
