"""Bad input: one sentence on stderr, exit 2, nothing granted, nothing written."""

from __future__ import annotations

import uuid

import pytest

from tests.e2e.world import World, pattern
from tests.logs import messages


def _refused(world: World, run, url: str, *snapshot_ids: str, says: str, code: int = 2) -> None:
    assert run.code == code, run.err
    errors = [line for line in messages(run.err) if line.startswith("replicate: error:")]
    assert len(errors) == 1 and says in errors[0], run.err
    assert "Traceback" not in run.err
    for snapshot_id in snapshot_ids:
        assert world.snapshot_state(snapshot_id) != "ActiveSAS"


def _nothing_written(world: World, url: str) -> None:
    with world.container(url) as container:
        assert not container.exists()


@pytest.fixture
def snap(world: World) -> tuple:
    disk = world.create_disk("data", 1)
    world.write(disk, (512, pattern(1, 4096)))
    return disk, world.snapshot(disk)


def test_malformed_resource_id(world: World, replicate) -> None:
    url = world.target_url()
    run = replicate("--source", "/subscriptions/nope/disks/x", "--target", url)
    _refused(world, run, url, says="not a managed disk, snapshot or virtual machine resource ID")
    _nothing_written(world, url)


def test_disk_that_does_not_exist(world: World, replicate) -> None:
    url = world.target_url()
    run = replicate("--source", world.resource_id("disks", "missing"), "--target", url)
    _refused(world, run, url, says="missing")
    _nothing_written(world, url)


def test_snapshot_that_does_not_exist(world: World, replicate) -> None:
    url = world.target_url()
    run = replicate("--source", world.resource_id("snapshots", "missing"), "--target", url)
    _refused(world, run, url, says="missing")
    _nothing_written(world, url)


def test_full_snapshot_as_source(world: World, replicate, snap) -> None:
    disk, _ = snap
    full = world.snapshot(disk, incremental=False)
    url = world.target_url()
    run = replicate("--source", full, "--target", url)
    _refused(world, run, url, full, says="full snapshot")
    _nothing_written(world, url)


def test_snapshot_of_another_disk(world: World, replicate, snap) -> None:
    disk, s1 = snap
    url = world.target_url()
    assert replicate("--source", disk.id, "--target", url).code == 0
    other = world.create_disk("other", 1)
    foreign = world.snapshot(other)
    before = len(world.restore_points(url))
    run = replicate("--source", foreign, "--target", url)
    _refused(world, run, url, foreign, s1, says="use another target blob")
    assert len(world.restore_points(url)) == before


def test_block_blob_target(world: World, replicate, snap) -> None:
    _, s1 = snap
    url = world.target_url()
    with world.container(url) as container:
        container.create_container()
    with world.target(url) as blob:
        blob.upload_blob(b"not a disk")
    run = replicate("--source", s1, "--target", url)
    _refused(world, run, url, s1, says="it must be a page blob")
    with world.target(url) as blob:
        assert blob.download_blob().readall() == b"not a disk"


def test_unreachable_target_endpoint(world: World, replicate, snap) -> None:
    """No answer may be an outage, not a typo: exit 1 (a schedule retries), one sentence, nothing granted."""
    _, s1 = snap
    run = replicate("--source", s1, "--target", "https://127.0.0.1:9/acct/ccc/b.vhd")
    _refused(world, run, "", s1, says="Cannot reach the target endpoint", code=1)


def test_http_without_allow_http(world: World, replicate, snap) -> None:
    _, s1 = snap
    url = world.target_url().replace("https://", "http://")
    run = replicate("--source", s1, "--target", url)
    _refused(world, run, url, s1, says="--allow-http")


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("--concurrency", "0"), "--concurrency must be between 1 and 192; got 0."),
        (("--mode", "turbo"), "--mode must be one of server, stream"),
        (("--max-bandwidth", "fast"), "--max-bandwidth"),
    ],
)
def test_bad_option_values(world: World, replicate, snap, args: tuple[str, ...], says: str) -> None:
    _, s1 = snap
    url = world.target_url()
    run = replicate("--source", s1, "--target", url, *args)
    _refused(world, run, url, s1, says=says)
    _nothing_written(world, url)


@pytest.mark.parametrize("path", ["/onlycontainer", "", "/"])
def test_target_that_is_not_a_blob_url(world: World, replicate, snap, path: str) -> None:
    _, s1 = snap
    run = replicate("--source", s1, "--target", f"https://{uuid.uuid4().hex[:8]}.blob.core.windows.net{path}")
    _refused(world, run, "", s1, says="--target must name")


def test_json_reports_the_failure(world: World, replicate) -> None:
    run = replicate("--source", "nonsense", "--target", world.target_url(), "--json")
    assert run.code == 2 and run.doc["status"] == "bad input" and run.doc["exit_code"] == 2


def test_unreachable_arm_endpoint(world: World, replicate, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REPLICATOR_ARM_ENDPOINT", "https://127.0.0.1:9")
    url = world.target_url()
    run = replicate("--source", world.resource_id("disks", "d"), "--target", url)
    _refused(world, run, url, says="could not be reached", code=1)
    _nothing_written(world, url)
