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
- `on_drill_timer`: a restore drill (replicator.engine.drill, the `replicate drill` call) of every
  job's target on its own schedule (`REPLICATOR_DRILL_SCHEDULE`, e.g. weekly), in
  `REPLICATOR_DRILL_RESOURCE_GROUP` and `REPLICATOR_DRILL_LOCATION`, one after another (each reads
  its whole disk back): one `drill_done` event per target (its `drill --json` document; warning
  level unless it passed) and a `drills_done` event. A VM's job (a prefix, not one blob) is skipped
  and said so. The invocation fails unless every drill passed.
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
from dataclasses import replace
from typing import Any

from replicator.core import arm_ids
from replicator.core.errors import ReplicationError, ReplicatorError, UserError
from replicator.core.freshness import Checked, summary, worst
from replicator.engine.drill import DrillRequest, drill
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
from replicator.fleet.status import STATUS_KNOBS, check, max_age, targets
from replicator.fleet.worker import budget_from
from replicator.observe.jsonlog import event, protect_records
from replicator.settings.config import read
from replicator.settings.knobs import TARGET_KNOBS

FANOUT_ENV = "REPLICATOR_FANOUT"
DRILL_GROUP_ENV = "REPLICATOR_DRILL_RESOURCE_GROUP"
DRILL_LOCATION_ENV = "REPLICATOR_DRILL_LOCATION"

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


async def on_drill_timer(timer: Any, env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The drill tick: drill every job's target in turn; returns each target's result, and raises
    unless every drill passed."""
    env = os.environ if env is None else env
    group, location = env.get(DRILL_GROUP_ENV, "").strip(), env.get(DRILL_LOCATION_ENV, "").strip()
    if not group or not location:
        raise UserError(
            f"{DRILL_GROUP_ENV} (a scratch resource group) and {DRILL_LOCATION_ENV} (the targets' region) "
            "are required for restore drills."
        )
    config = read({}, env, names=(*TARGET_KNOBS, "subscription_id"), required=())
    request = DrillRequest("latest", config.subscription_id, group, location)
    results: dict[str, str] = {}
    for job in await targets(config.target, env):
        if job.source and arm_ids.parse(job.source).kind == "vm":
            event(
                "drill_skipped", target=job.target, reason="a VM's target is a prefix: drill its disks' blobs"
            )
            continue
        try:
            done = await drill(replace(config, target=job.target), request)
        except ReplicatorError as err:
            results[job.target] = "failed"
            event("drill_done", logging.WARNING, target=job.target, result="failed", error=str(err))
            continue
        results[job.target] = done.outcome
        level = logging.INFO if done.outcome == "passed" else logging.WARNING
        event("drill_done", level, **done.to_json())
    event("drills_done", targets=len(results), results=dict(Counter(results.values())))
    bad = [target for target, result in results.items() if result != "passed"]
    if bad:
        raise ReplicationError(
            f"{len(bad)} of {len(results)} restore drills did not pass: {', '.join(bad[:3])}"
            + (f" and {len(bad) - 3} more" if len(bad) > 3 else "")
            + " (see their drill_done events)."
        )
    return results


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
