"""Every way out of a run revokes every grant it made; only Read is ever asked of a source; plain
HTTP needs --allow-http; a held lease is waited out up to a bound, a lost commit answer is adopted."""

from __future__ import annotations

import signal

import pytest
from azure.core.exceptions import HttpResponseError, ServiceResponseError
from azure.mgmt.compute.aio.operations import DisksOperations, SnapshotsOperations

from replicator.emulator.process import EmulatorProcess
from replicator.plumbing import recovery
from tests.e2e.world import World
from tests.helpers.cli_runs import cli_process, finish
from tests.helpers.replication import metadata, scattered, wait_for_checkpoint

SLOW = ("--max-bandwidth", "1MiB", "--concurrency", "2", "--checkpoint-seconds", "0.2")


@pytest.mark.parametrize("way", ["sigint", "time-budget"])
def test_interrupted_runs_revoke_and_release(faulty: EmulatorProcess, faulty_world: World, way: str) -> None:
    disk = scattered(faulty_world)
    s1 = faulty_world.snapshot(disk)
    url = faulty_world.target_url()
    extra = ("--time-budget", "4") if way == "time-budget" else ()
    proc = cli_process(faulty.env, "--source", disk.id, "--target", url, "--json", *SLOW, *extra)
    assert wait_for_checkpoint(faulty_world, url, proc) > 0
    if way == "sigint":
        proc.send_signal(signal.SIGINT)
    result = finish(proc, timeout=60)
    assert result.code not in (0, 2), result.err
    assert result.doc["status"] != "replicated"
    faulty_world.assert_sas_free(s1)
    with faulty_world.target(url) as blob:
        assert blob.get_blob_properties().lease.state == "available"
    assert metadata(faulty_world, url)["inprogress_snapshot_id"] == s1
    assert faulty_world.restore_points(url) == []


def test_only_read_is_asked_of_a_source(world: World, replicate, monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[str] = []
    real = SnapshotsOperations.begin_grant_access

    async def spy(self, resource_group, name, grant_access_data, **kwargs):
        asked.append(grant_access_data.access)
        return await real(self, resource_group, name, grant_access_data, **kwargs)

    async def refuse(*args, **kwargs):
        raise AssertionError("a disk was granted access")

    monkeypatch.setattr(SnapshotsOperations, "begin_grant_access", spy)
    monkeypatch.setattr(DisksOperations, "begin_grant_access", refuse)
    disk = world.create_disk("data", 1)
    world.write(disk, (512, b"\x01" * 4096))
    s1 = world.snapshot(disk)
    url = world.target_url()
    assert replicate("--source", disk.id, "--target", url, "--verify").code == 0
    world.write(disk, (8192, b"\x02" * 4096))
    world.snapshot(disk)
    assert replicate("--source", disk.id, "--target", url, "--mode", "stream").code == 0
    assert asked and set(asked) == {"Read"}, asked
    world.assert_sas_free(s1)


@pytest.mark.parametrize(
    "args",
    [
        ("--target", "http://127.0.0.1:1/acct/ccc/b"),
        ("--target", "https://127.0.0.1:1/acct/ccc/b", "--arm-endpoint", "http://127.0.0.1:1"),
    ],
)
def test_plain_http_is_refused(world: World, replicate, args: tuple[str, ...]) -> None:
    disk = world.create_disk("data", 1)
    run = replicate("--source", disk.id, *args)
    assert run.code == 2 and "--allow-http" in run.err, run.err


async def test_a_held_lease_is_waited_out_up_to_a_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    held = HttpResponseError(message="held")
    held.status_code = 409
    calls, warned = [], []

    async def acquire() -> None:
        calls.append(1)
        if len(calls) < 3:
            raise held

    monkeypatch.setattr(recovery, "LEASE_POLL_SECONDS", 0.01)
    assert await recovery.acquire_waiting(acquire, 5, lambda: warned.append(1))
    assert len(calls) == 3 and warned == [1]
    calls.clear()

    async def never() -> None:
        raise held

    assert not await recovery.acquire_waiting(never, 0.05, lambda: None)


async def test_a_lost_commit_answer_is_adopted_not_repeated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(recovery, "COMMIT_BACKOFF_SECONDS", 0.0)
    taken: list[str] = []

    async def create() -> str:
        taken.append(f"point-{len(taken)}")
        raise ServiceResponseError("connection dropped after the snapshot was taken")

    async def find() -> str | None:
        return taken[0] if taken else None

    assert await recovery.commit_once(create, find) == "point-0"
    assert taken == ["point-0"]

    async def refused() -> str:
        error = HttpResponseError(message="refused")
        error.status_code = 412
        raise error

    with pytest.raises(HttpResponseError):
        await recovery.commit_once(refused, find)
