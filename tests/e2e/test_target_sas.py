"""Targets authorized by a SAS in their URL: blob-scoped (sr=b) and container-scoped (sr=c).

Neither kind may create a container (Azure wants an account SAS or a role for that), so the run
must treat creating the container as best-effort and let the blob operations decide.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs

from azure.storage.blob import generate_blob_sas, generate_container_sas

from tests.e2e.conftest import Run
from tests.e2e.world import MiB, World, pattern


def _expiry() -> datetime:
    return datetime.now(UTC) + timedelta(hours=1)


def _blob_sas(world: World, url: str) -> str:
    container, blob = url.rsplit("/", 2)[1:]
    return generate_blob_sas(
        world.account, container, blob, account_key=world.env["REPLICATOR_ACCOUNT_KEY"], permission="racwd",
        expiry=_expiry(),
    )  # fmt: skip


def _container_sas(world: World, url: str) -> str:
    container = url.rsplit("/", 2)[1]
    return generate_container_sas(
        world.account, container, account_key=world.env["REPLICATOR_ACCOUNT_KEY"], permission="racwdl",
        expiry=_expiry(),
    )  # fmt: skip


def _assert_sas_not_printed(run: Run, sas: str) -> None:
    signature = parse_qs(sas)["sig"][0]
    assert signature not in run.out + run.err
    assert sas not in run.out + run.err


def _replicate_twice(world: World, replicate, url: str, sas: str) -> None:
    """A full copy then a diff through the SAS URL; each restore point byte-equal to its snapshot."""
    disk = world.create_disk("data", 1)
    world.write(disk, (3 * MiB, pattern(1, 2 * MiB)))
    s1 = world.snapshot(disk)
    first = replicate("--source", disk.id, "--target", f"{url}?{sas}", "--json")
    _assert_sas_not_printed(first, sas)
    assert first.code == 0, first.err
    world.write(disk, (512 * MiB, pattern(2, 8192)))
    s2 = world.snapshot(disk)
    second = replicate("--source", disk.id, "--target", f"{url}?{sas}", "--json")
    _assert_sas_not_printed(second, sas)
    assert second.code == 0, second.err
    done = first.doc["snapshots"] + second.doc["snapshots"]
    assert [(d["snapshot_id"], d["mode"]) for d in done] == [(s1, "full"), (s2, "diff")]
    for entry in done:
        world.assert_restore_point_equals(url, entry["restore_point"], entry["snapshot_id"])
    assert [p.metadata["snapshot_id"] for p in world.restore_points(url)] == [s1, s2]
    world.assert_sas_free(s1, s2)


def test_blob_scoped_sas_target(world: World, replicate) -> None:
    url = world.target_url()
    with world.container(url) as container:
        container.create_container()
    _replicate_twice(world, replicate, url, _blob_sas(world, url))


def test_container_scoped_sas_target(world: World, replicate) -> None:
    url = world.target_url()
    with world.container(url) as container:
        container.create_container()
    _replicate_twice(world, replicate, url, _container_sas(world, url))


def test_sas_target_in_a_missing_container_is_one_clear_sentence(world: World, replicate) -> None:
    disk = world.create_disk("data", 1)
    snapshot = world.snapshot(disk)
    url = world.target_url()
    container = url.rsplit("/", 2)[1]
    for sas in (_blob_sas(world, url), _container_sas(world, url)):
        run = replicate("--source", disk.id, "--target", f"{url}?{sas}", "--json")
        _assert_sas_not_printed(run, sas)
        assert run.code == 2, run.err
        assert f"the container {container} does not exist and the target's SAS cannot create it" in run.err
        assert "Traceback" not in run.err
    world.assert_sas_free(snapshot)
