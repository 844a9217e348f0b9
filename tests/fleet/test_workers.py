"""Three `replicate worker` processes drain 20 jobs from an Azurite queue while one of them is stopped in
the middle of a job, gracefully (SIGTERM, as a container scale-in does) or not at all (SIGKILL): every
target ends byte-equal to its source, no job completes twice, nothing stays granted or leased, and both
queues end empty.

The SIGKILL case runs with a 15 s lease (`REPLICATOR_LEASE_DURATION`, Azure's shortest) and a 3 s
message visibility, so the dead worker's message reappears within 3 s and its lease expires within
15 s: another worker waits the lease out (`REPLICATOR_LEASE_WAIT`) and resumes from the checkpoint."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from azure.core.exceptions import ResourceNotFoundError
from azure.storage.queue import QueueClient, TextBase64DecodePolicy

from replicator.fleet.jobs import JobSpec
from replicator.fleet.queue import FleetQueue, enqueue
from tests.e2e.world import Disk, MiB, World, pattern

JOBS = 20
FAST_LEASE = {"REPLICATOR_LEASE_DURATION": "15", "REPLICATOR_LEASE_WAIT": "30", "REPLICATOR_VISIBILITY": "3"}


def _events(path: Path) -> list[dict]:
    lines = path.read_text().splitlines() if path.exists() else []
    records = [json.loads(line) for line in lines if line.startswith("{")]
    return [r for r in records if "event" in r]  # plain log lines (e.g. "the lease is held") have none


def _worker(url: str, env: dict[str, str], log: Path, idle: float, **extra: str) -> subprocess.Popen[bytes]:
    args = [
        sys.executable,
        "-m",
        "replicator.cli.main",
        "worker",
        "--queue",
        url,
        "--exit-when-idle",
        str(idle),
    ]
    return subprocess.Popen(args, env={**os.environ, **env, **extra}, stderr=log.open("wb"))


def _wait_for(log: Path, predicate, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not any(predicate(e) for e in _events(log)):
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def _checkpoint(world: World, url: str) -> int:
    with world.target(url) as blob:
        try:
            return int(blob.get_blob_properties().metadata.get("inprogress_checkpoint") or 0)
        except ResourceNotFoundError:  # not created yet
            return 0


async def _twenty_jobs(world: World, url: str) -> tuple[list[tuple[Disk, str]], dict[str, str]]:
    def make(i: int) -> tuple[Disk, str]:
        disk = world.create_disk(f"d{i}", 1)
        world.write(disk, *[(k * 64 * MiB + i * 4096, pattern(i * 10 + k, MiB)) for k in range(3)])
        return disk, world.snapshot(disk)

    with ThreadPoolExecutor(8) as pool:
        made = list(pool.map(make, range(JOBS)))
    targets = {disk.id: world.target_url() for disk, _ in made}
    async with FleetQueue(url, allow_http=True) as queue:
        await enqueue(queue, [JobSpec(source, target) for source, target in targets.items()])
    return made, targets


def _assert_drained(world: World, url: str, made, targets, logs: list[Path]) -> list[dict]:
    """Every job replicated exactly once, byte-equal, nothing granted or leased, both queues empty."""
    events = [e for log in logs for e in _events(log)]
    completed = Counter(
        e["disk"] for e in events if e["event"] == "job_done" and e["outcome"] == "replicated"
    )
    assert completed == Counter(dict.fromkeys(targets, 1))  # every job completed exactly once
    assert all(e.get("run_id") for e in events if e["event"].startswith("job_"))
    assert not any("sig=" in json.dumps(e) for e in events)
    for disk, snap in made:
        (point,) = world.restore_points(targets[disk.id])
        world.assert_restore_point_equals(targets[disk.id], point.snapshot, snap)
        assert world.snapshot_state(snap) != "ActiveSAS"
        with world.target(targets[disk.id]) as blob:
            assert blob.get_blob_properties().lease.state == "available"
    base, _, sas = url.partition("?")
    for name in (base, f"{base}-poison"):
        with QueueClient.from_queue_url(f"{name}?{sas}", message_decode_policy=TextBase64DecodePolicy()) as q:
            assert q.peek_messages() == []
    return events


async def test_three_workers_drain_twenty_jobs_one_stopped_mid_job(
    world: World, fleet_env, queue_url, tmp_path
) -> None:
    url = queue_url()
    made, targets = await _twenty_jobs(world, url)
    logs = [tmp_path / f"worker{i}.log" for i in range(3)]
    # The victim copies at 1 MiB/s, so its first job lasts seconds and the stop lands inside it.
    victim = _worker(url, fleet_env, logs[0], 3, REPLICATOR_MAX_BANDWIDTH="1MiB", REPLICATOR_CONCURRENCY="1")
    _wait_for(logs[0], lambda e: e["event"] == "job_start", "the victim never started a job")
    others = [_worker(url, fleet_env, log, 3) for log in logs[1:]]
    time.sleep(1.0)
    victim.send_signal(signal.SIGTERM)
    assert victim.wait(timeout=60) == 0
    for proc in others:
        assert proc.wait(timeout=120) == 0
    victim_done = [e for e in _events(logs[0]) if e["event"] == "job_done"]
    assert victim_done[-1]["outcome"] == "incomplete"  # stopped mid-job, the clean way
    _assert_drained(world, url, made, targets, logs)


async def test_three_workers_drain_twenty_jobs_one_killed_mid_job(
    world: World, fleet_env, queue_url, tmp_path
) -> None:
    url = queue_url()
    made, targets = await _twenty_jobs(world, url)
    logs = [tmp_path / f"worker{i}.log" for i in range(3)]
    env = {**fleet_env, **FAST_LEASE}
    victim = _worker(
        url,
        env,
        logs[0],
        3,
        REPLICATOR_MAX_BANDWIDTH="1MiB",
        REPLICATOR_CONCURRENCY="1",
        REPLICATOR_CHECKPOINT_SECONDS="0.2",
    )
    _wait_for(logs[0], lambda e: e["event"] == "job_start", "the victim never started a job")
    (start,) = [e for e in _events(logs[0]) if e["event"] == "job_start"]
    # Idle long enough to outlast the dead worker's message visibility (3 s).
    others = [_worker(url, env, log, 6) for log in logs[1:]]
    deadline = time.monotonic() + 30
    while _checkpoint(world, start["target"]) == 0:  # kill once one is saved: 3 MiB at 1 MiB/s
        assert time.monotonic() < deadline, "the victim saved no checkpoint"
        time.sleep(0.05)
    victim.send_signal(signal.SIGKILL)
    assert victim.wait(timeout=10) == -signal.SIGKILL
    assert not [e for e in _events(logs[0]) if e["event"] == "job_done"]  # died mid-job
    for proc in others:
        assert proc.wait(timeout=120) == 0
    events = _assert_drained(world, url, made, targets, logs)
    (resumed,) = [e for e in events if e["event"] == "snapshot_done" and e["disk"] == start["disk"]]
    assert resumed["resumed_from"] > 0  # finished from the dead worker's checkpoint, not from zero
    assert resumed["bytes"] < 3 * MiB
