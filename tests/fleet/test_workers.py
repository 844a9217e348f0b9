"""Three `replicate worker` processes drain 20 jobs from an Azurite queue while one of them is stopped
(SIGTERM, as a container scale-in does) in the middle of a job: every target ends byte-equal to its
source, no job completes twice, nothing stays granted or leased, and both queues end empty."""

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

from azure.storage.queue import QueueClient, TextBase64DecodePolicy

from replicator.fleet import FleetQueue, enqueue
from replicator.jobs import JobSpec
from tests.e2e.world import Disk, MiB, World, pattern

JOBS = 20


def _events(path: Path) -> list[dict]:
    lines = path.read_text().splitlines() if path.exists() else []
    return [json.loads(line) for line in lines if line.startswith("{")]


def _worker(url: str, env: dict[str, str], log: Path, **extra: str) -> subprocess.Popen[bytes]:
    args = [sys.executable, "-m", "replicator.cli", "worker", "--queue", url, "--exit-when-idle", "3"]
    return subprocess.Popen(args, env={**os.environ, **env, **extra}, stderr=log.open("wb"))


async def test_three_workers_drain_twenty_jobs_one_stopped_mid_job(
    world: World, fleet_env, queue_url, tmp_path
) -> None:
    def make(i: int) -> tuple[Disk, str]:
        disk = world.create_disk(f"d{i}", 1)
        world.write(disk, *[(k * 64 * MiB + i * 4096, pattern(i * 10 + k, MiB)) for k in range(3)])
        return disk, world.snapshot(disk)

    with ThreadPoolExecutor(8) as pool:
        made = list(pool.map(make, range(JOBS)))
    targets = {disk.id: world.target_url() for disk, _ in made}
    url = queue_url()
    async with FleetQueue(url, allow_http=True) as queue:
        await enqueue(queue, [JobSpec(source, target) for source, target in targets.items()])

    logs = [tmp_path / f"worker{i}.log" for i in range(3)]
    # The victim copies at 1 MiB/s, so its first job lasts seconds and the stop lands inside it.
    victim = _worker(url, fleet_env, logs[0], REPLICATOR_MAX_BANDWIDTH="1MiB", REPLICATOR_CONCURRENCY="1")
    deadline = time.monotonic() + 30
    while not any(e["event"] == "job_start" for e in _events(logs[0])):
        assert time.monotonic() < deadline, "the victim never started a job"
        time.sleep(0.05)
    others = [_worker(url, fleet_env, log) for log in logs[1:]]
    time.sleep(1.0)
    victim.send_signal(signal.SIGTERM)
    assert victim.wait(timeout=60) == 0
    for proc in others:
        assert proc.wait(timeout=120) == 0

    events = [e for log in logs for e in _events(log)]
    victim_done = [e for e in _events(logs[0]) if e["event"] == "job_done"]
    assert victim_done[-1]["outcome"] == "incomplete"  # stopped mid-job, the clean way
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
