"""Azure Functions entry points (Python v2 model), thin over replicator.fleet.jobs and replicator.fleet.queue.

`functions/function_app.py` only binds these to triggers, so everything here is testable with the
real `azure.functions` objects and no Functions host.

- `on_timer`: every tick, load the jobs from the app settings (replicator.fleet.jobs.load_jobs). With
  `REPLICATOR_FANOUT=true` it puts one message per job on `REPLICATOR_QUEUE_URL` and returns; else it
  runs the jobs one after another under one time budget (`REPLICATOR_TIME_BUDGET`, set it below the
  app's functionTimeout), least recently served first (replicator.fleet.fairness): a job the budget cuts
  short, and the jobs after it, continue at the next tick, and a job that eats every budget cannot
  starve the others. A target locked by an overlapping tick is logged and skipped, not a failure.
  The invocation fails (so Application Insights counts a failed execution) only when a job failed or
  was refused.
- `on_status_timer`: `replicate status` on a schedule (replicator.fleet.status.check, the same call):
  every job's target judged against `REPLICATOR_MAX_AGE`, one `target_status` event per target (its
  verdict, reason, lag and the rest of its `status --json` entry; warning level unless fresh) and a
  `status_done` event. The invocation fails (a failed execution to alert on) unless every target is
  fresh.
- `on_queue_message`: one job per message. The host keeps the message invisible while it runs and
  deletes it when the function returns; raising makes the host retry it (maxDequeueCount, then its
  own poison queue). Before that, replicator.fleet.queue.decide settles it as the workers do: continue,
  defer and poison send their follow-up message on `REPLICATOR_QUEUE_URL`, then return.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from collections.abc import Mapping
from typing import Any

from replicator.core.errors import ReplicationError, UserError
from replicator.core.freshness import Checked, summary, worst
from replicator.engine.time_budget import Budget
from replicator.fleet.fairness import least_recently_served
from replicator.fleet.jobs import Outcome, load_jobs, run_job
from replicator.fleet.queue import (
    QUEUE_URL_ENV,
    FleetQueue,
    Message,
    allow_http,
    decide,
    enqueue,
    follow_up,
    max_dequeue,
    parse_job,
)
from replicator.fleet.status import STATUS_KNOBS, check, max_age
from replicator.fleet.worker import budget_from
from replicator.observe.jsonlog import event, protect_records
from replicator.settings.config import read

FANOUT_ENV = "REPLICATOR_FANOUT"

# The Functions host never calls jsonlog.setup(): its handlers forward records to Application
# Insights as they are, so redact the records themselves (a debug traceback may hold a SAS).
protect_records()


def _queue(env: Mapping[str, str]) -> FleetQueue:
    url = env.get(QUEUE_URL_ENV)
    if not url:
        raise UserError(f"{QUEUE_URL_ENV} is required for the queue fan-out.")
    return FleetQueue(url, allow_http=allow_http(env))


async def on_timer(timer: Any, env: Mapping[str, str] | None = None) -> list[Outcome]:
    """The timer tick: fan out, or run the jobs in turn within the budget; returns the outcomes."""
    env = os.environ if env is None else env
    if getattr(timer, "past_due", False):
        event("timer_past_due")
    jobs = await load_jobs(env)
    if env.get(FANOUT_ENV, "").strip().lower() in ("1", "true", "yes", "on"):
        async with _queue(env) as queue:
            await enqueue(queue, jobs)
        return []
    budget: Budget = budget_from(env)
    outcomes: list[Outcome] = []
    for job in await least_recently_served(jobs, env):
        if budget.expired():
            event("job_skipped", disk=job.source, outcome="incomplete", reason="time budget spent")
            continue
        outcomes.append(await run_job(job, env, budget=budget, command="timer"))
    event("timer_done", jobs=len(jobs), outcomes=dict(Counter(o.status for o in outcomes)))
    failed = [o for o in outcomes if o.status in ("failed", "bad input", "unprotected")]
    if failed:
        raise ReplicationError(
            f"{len(failed)} of {len(jobs)} replications failed or found nothing to protect; "
            f"first: {failed[0].job.source}: {failed[0].error}"
        )
    return outcomes


async def on_status_timer(timer: Any, env: Mapping[str, str] | None = None) -> list[Checked]:
    """The status tick: judge every target, log one event each; raises unless every one is fresh."""
    env = os.environ if env is None else env
    seconds = max_age(None, env)
    config = read({}, env, names=STATUS_KNOBS, required=())
    checked = await check(config, seconds, env)
    for c in checked:
        level = logging.INFO if c.judgement.verdict == "fresh" else logging.WARNING
        event("target_status", level, max_age_seconds=seconds, **c.to_json())
    verdicts = [c.judgement.verdict for c in checked]
    event("status_done", targets=len(checked), status=worst(verdicts), verdicts=dict(Counter(verdicts)))
    problem = summary(checked)
    if problem is not None:
        raise ReplicationError(problem)
    return checked


async def on_queue_message(message: Any, env: Mapping[str, str] | None = None) -> Outcome | None:
    """One queued job (an azure.functions.QueueMessage); raises only to have the host retry a failure."""
    env = os.environ if env is None else env
    received = Message(message.get_body().decode("utf-8"), int(getattr(message, "dequeue_count", None) or 1))
    async with _queue(env) as queue:
        try:
            job = parse_job(received.body)
        except UserError as err:
            await follow_up(queue, "poison", received, None, str(err))
            return None
        outcome = await run_job(job, env, budget=budget_from(env), command="queue")
        action = decide(outcome, received, max_dequeue(env))
        await follow_up(queue, action, received, outcome)
    if action == "retry":
        raise ReplicationError(f"replicating {job.source} failed: {outcome.error}; the host retries it.")
    return outcome
