"""The Functions app (functions/function_app.py) invoked with real azure.functions objects against the
emulator, with Azurite's queue service as the queue: timer (explicit jobs, tag discovery, overlapping
ticks, fan-out) and the queue trigger (success, poison on bad input, host retry then poison)."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError
from azure.functions.queue import QueueMessage as HostQueueMessage
from azure.functions.timer import TimerRequest as HostTimerRequest
from azure.storage.queue import QueueClient, TextBase64DecodePolicy

from replicator.core.errors import ReplicationError
from replicator.engine.time_budget import Budget
from replicator.target.page_blob import PageBlobTarget
from tests.e2e.world import Disk, MiB, World, pattern
from tests.helpers.functions_app import load_functions


def _disk(world: World, seed: int, tags: dict[str, str] | None = None) -> tuple[Disk, str]:
    disk = world.create_disk(f"d{seed}", 1, tags=tags or {})
    world.write(disk, (seed * MiB, pattern(seed, MiB)))
    return disk, world.snapshot(disk)


def _queue(url: str) -> QueueClient:
    return QueueClient.from_queue_url(url, message_decode_policy=TextBase64DecodePolicy())


def _poison(url: str) -> QueueClient:
    base, _, sas = url.partition("?")
    return _queue(f"{base}-poison?{sas}")


def _host_message(received: Any) -> HostQueueMessage:
    """What the Functions host passes: the decoded body and the delivery count."""
    return HostQueueMessage(
        id=received.id, body=received.content.encode(), dequeue_count=received.dequeue_count
    )


async def test_timer_runs_explicit_jobs_and_skips_a_locked_target(
    world: World, fleet_env, monkeypatch
) -> None:
    (d1, s1), (d2, s2) = _disk(world, 1), _disk(world, 2)
    t1, t2 = world.target_url(), world.target_url()
    monkeypatch.setenv(
        "REPLICATOR_JOBS", json.dumps([{"source": d1.id, "target": t1}, {"source": d2.id, "target": t2}])
    )
    timer = load_functions()["replicate_timer"]
    await timer(HostTimerRequest(past_due=False))
    for url, snap in ((t1, s1), (t2, s2)):
        (point,) = world.restore_points(url)
        world.assert_restore_point_equals(url, point.snapshot, snap)
    # An overlapping tick meets the lease: logged and skipped, the invocation does not fail.
    monkeypatch.setenv("REPLICATOR_LEASE_WAIT", "0")  # the timer setting docs/functions.md recommends
    world.write(d1, (0, pattern(9, MiB)))
    world.snapshot(d1)
    with world.held_lease(t1):
        await timer(HostTimerRequest(past_due=True))
    assert len(world.restore_points(t1)) == 1
    assert world.snapshot_state(s1) != "ActiveSAS"


async def test_a_timer_with_an_unprotected_disk_fails_after_running_the_others(
    world: World, fleet_env, monkeypatch
) -> None:
    """Unprotected is not success: a disk without an incremental snapshot fails the invocation, so it
    shows as a failed execution, while the other jobs still run."""
    disk, snap = _disk(world, 5)
    bare = world.create_disk("bare", 1)
    t1, t2 = world.target_url(), world.target_url()
    monkeypatch.setenv(
        "REPLICATOR_JOBS", json.dumps([{"source": bare.id, "target": t2}, {"source": disk.id, "target": t1}])
    )
    with pytest.raises(ReplicationError, match="1 of 2 replications failed or found nothing to protect"):
        await load_functions()["replicate_timer"](HostTimerRequest(past_due=False))
    (point,) = world.restore_points(t1)
    world.assert_restore_point_equals(t1, point.snapshot, snap)


async def test_timer_discovers_tagged_disks_of_a_resource_group(world: World, fleet_env, monkeypatch) -> None:
    container = world.target_url().rsplit("/", 1)[0] + "/"
    tagged, snap = _disk(world, 3, {"replicator-target": container})
    _disk(world, 4, {"other": "x"})
    monkeypatch.setenv(
        "REPLICATOR_DISCOVER", f"/subscriptions/{world.subscription}/resourceGroups/{world.rg}"
    )
    monkeypatch.delenv("REPLICATOR_JOBS", raising=False)
    from replicator.fleet import functions_entry

    outcomes = await functions_entry.on_timer(HostTimerRequest())
    assert [(o.job.source, o.status) for o in outcomes] == [(tagged.id, "replicated")]
    url = f"{container}{tagged.name}.vhd"
    (point,) = world.restore_points(url)
    world.assert_restore_point_equals(url, point.snapshot, snap)


async def test_timer_fans_out_and_queue_trigger_replicates(
    world: World, fleet_env, queue_url, monkeypatch
) -> None:
    disks = [_disk(world, 10 + i) for i in range(3)]
    targets = [world.target_url() for _ in disks]
    url = queue_url()
    jobs = [{"source": d.id, "target": t} for (d, _), t in zip(disks, targets, strict=True)]
    monkeypatch.setenv("REPLICATOR_JOBS", json.dumps(jobs))
    monkeypatch.setenv("REPLICATOR_FANOUT", "true")
    monkeypatch.setenv("REPLICATOR_QUEUE_URL", url)
    functions = load_functions()
    await functions["replicate_timer"](HostTimerRequest())
    with _queue(url) as queue:
        received = list(queue.receive_messages(max_messages=10, visibility_timeout=60))
        assert sorted(json.loads(m.content)["source"] for m in received) == sorted(j["source"] for j in jobs)
        for message in received:
            await functions["replicate_job"](_host_message(message))
            queue.delete_message(message)  # what the host does when the function returns
        assert queue.peek_messages() == []
    for (_, snap), target in zip(disks, targets, strict=True):
        (point,) = world.restore_points(target)
        world.assert_restore_point_equals(target, point.snapshot, snap)
    # A replay of a done job is harmless: nothing new, no second restore point.
    replay = HostQueueMessage(body=json.dumps(jobs[0]).encode(), dequeue_count=1)
    outcome = await functions["replicate_job"](replay)
    assert outcome is None or outcome.status == "nothing new"
    assert len(world.restore_points(targets[0])) == 1


async def test_queue_trigger_poisons_bad_input_and_repeated_failures(
    world: World, fleet_env, queue_url, monkeypatch
) -> None:
    url = queue_url()
    monkeypatch.setenv("REPLICATOR_QUEUE_URL", url)
    from replicator.fleet import functions_entry
    from replicator.fleet.queue import FleetQueue

    async with FleetQueue(url, allow_http=True) as queue:
        await queue.ensure()
    await functions_entry.on_queue_message(HostQueueMessage(body=b"not json", dequeue_count=1))
    missing = world.resource_id("disks", "nosuchdisk")
    await functions_entry.on_queue_message(
        HostQueueMessage(
            body=json.dumps({"source": missing, "target": world.target_url()}).encode(), dequeue_count=1
        )
    )
    disk, _ = _disk(world, 20)
    job = json.dumps({"source": disk.id, "target": world.target_url()}).encode()

    async def broken(self, op, source_url, source_auth=None):
        raise HttpResponseError(message="injected permanent failure")

    monkeypatch.setattr(PageBlobTarget, "copy_from_url", broken)
    monkeypatch.setenv("REPLICATOR_MAX_ATTEMPTS", "1")
    with pytest.raises(ReplicationError, match="injected permanent failure"):  # the host retries it
        await functions_entry.on_queue_message(HostQueueMessage(body=job, dequeue_count=1))
    await functions_entry.on_queue_message(HostQueueMessage(body=job, dequeue_count=5))  # the last delivery
    with _poison(url) as poison:
        docs = [json.loads(m.content) for m in poison.receive_messages(max_messages=10)]
    assert len(docs) == 3
    assert docs[0]["job"] == "not json"
    assert docs[1]["job"]["source"] == missing and "nosuchdisk" in docs[1]["error"]
    assert docs[2]["job"]["source"] == disk.id and "injected permanent failure" in docs[2]["error"]
    assert docs[2]["dequeue_count"] == 5
    assert all("sig=" not in json.dumps(d) for d in docs)


async def test_timer_serves_least_recently_served_first_so_a_big_job_cannot_starve_the_others(
    world: World, fleet_env, monkeypatch
) -> None:
    big = world.create_disk("big", 1)
    world.write(big, *[(i * 50 * MiB + 4096, pattern(200 + i, MiB)) for i in range(12)])
    big_snap = world.snapshot(big)
    small, small_snap = _disk(world, 30)
    t_big, t_small = world.target_url(), world.target_url()
    jobs = [{"source": big.id, "target": t_big}, {"source": small.id, "target": t_small}]
    monkeypatch.setenv("REPLICATOR_JOBS", json.dumps(jobs))  # the big job is listed first
    # 12 MiB at 2 MiB/s is 6 s of copying; each 2 s budget covers a slice of it.
    for name, value in (("TIME_BUDGET", "2"), ("MAX_BANDWIDTH", "2MiB"), ("CONCURRENCY", "1")):
        monkeypatch.setenv(f"REPLICATOR_{name}", value)
    monkeypatch.setenv("REPLICATOR_CHECKPOINT_SECONDS", "0.2")
    from replicator.fleet import functions_entry

    ticks: list[list[tuple[str, str]]] = []
    for _ in range(12):
        outcomes = await functions_entry.on_timer(HostTimerRequest())
        ticks.append([(o.job.source, o.status) for o in outcomes])
        if world.restore_points(t_big):
            break
        time.sleep(1.1)  # Last-Modified has one-second resolution
    else:
        raise AssertionError(f"the big job never finished: {ticks}")
    # First tick: neither target exists, the configured order holds and the big job eats the budget.
    assert ticks[0] == [(big.id, "incomplete")]
    # Second tick: the small job, never served, goes first and is not starved.
    assert ticks[1][0] == (small.id, "replicated")
    # Later ticks: the small target has nothing new and was served longer ago: it stays ahead.
    assert all(tick[0] == (small.id, "nothing new") for tick in ticks[2:])
    for url, snap in ((t_big, big_snap), (t_small, small_snap)):
        (point,) = world.restore_points(url)
        world.assert_restore_point_equals(url, point.snapshot, snap)


async def test_a_job_whose_checkpoint_never_advances_is_poisoned_not_requeued_forever(
    world: World, fleet_env, queue_url, monkeypatch
) -> None:
    disk, _ = _disk(world, 40)
    url = queue_url()
    monkeypatch.setenv("REPLICATOR_QUEUE_URL", url)
    # Each run stops at a place the test decides, not where a clock on a busy machine puts it: the
    # first write that starts spends the run's budget (as if it ran out), and no write ever completes.
    monkeypatch.setenv("REPLICATOR_TIME_BUDGET", "600")
    budgets: list[Budget] = []
    start_budget = Budget.__init__

    def recorded(self: Budget, seconds: float | None) -> None:
        start_budget(self, seconds)
        budgets.append(self)

    monkeypatch.setattr(Budget, "__init__", recorded)

    async def stuck(self, op, source_url, source_auth=None):
        budgets[-1].stop("the time budget ran out (held by the test)")
        await asyncio.sleep(3600)

    monkeypatch.setattr(PageBlobTarget, "copy_from_url", stuck)
    from replicator.fleet import functions_entry
    from replicator.fleet.queue import MAX_STALLS, FleetQueue

    async with FleetQueue(url, allow_http=True) as queue:
        await queue.ensure()
    body = json.dumps({"source": disk.id, "target": world.target_url()}).encode()
    with _queue(url) as queue:
        for run in range(MAX_STALLS + 1):
            outcome = await functions_entry.on_queue_message(HostQueueMessage(body=body, dequeue_count=1))
            assert outcome is not None and outcome.status == "incomplete"
            requeued = list(queue.receive_messages(max_messages=10))
            if run == MAX_STALLS:
                assert requeued == []  # poisoned, not re-queued
                break
            (message,) = requeued
            assert json.loads(message.content).get("stalls", 0) == run
            queue.delete_message(message)
            body = message.content.encode()
    with _poison(url) as poison:
        (doc,) = [json.loads(m.content) for m in poison.receive_messages(max_messages=10)]
    assert doc["job"]["source"] == disk.id and f"no progress in {MAX_STALLS + 1} runs" in doc["error"]
