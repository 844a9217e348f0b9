"""End to end: `replicate restore` of a striped restore point (a 16 TiB source in three stripes, built
here by hand as striping writes one) makes a disk by upload that holds exactly the restore point's
bytes; every way out revokes the disk's grant; a failed restore deletes only the disk it created;
refusals create nothing.

The oracle shares no code with the replicator: the test knows every page it wrote, and reads the disk
back through a Read SAS: each written extent must read back as written, and the disk's valid ranges
must lie inside them (so every other byte reads as zero).
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
from azure.core.exceptions import ResourceNotFoundError
from azure.storage.blob import BlobClient

from replicator.core.disk_profile import DiskProfile
from replicator.devtools.disk_builder import control
from replicator.emulator.arm import vhd
from replicator.emulator.process import EmulatorProcess
from replicator.target.state import RestorePointMeta
from tests.e2e.world import MiB, World, pattern
from tests.helpers.arm_faults import fail, rules
from tests.helpers.cli_runs import Run, cli_process, finish
from tests.helpers.target_sas import container_sas
from tests.logs import records

TiB = 1 << 40
DATA = 16 * TiB  # the disk; its export is one VHD footer longer, so its last stripe holds 512 bytes
STRIPE = 8 * TiB
EXTENTS = [  # (export offset, length): both sides of each stripe boundary, a run across 4 MiB multiples
    (0, 4096),
    (STRIPE - MiB, MiB),
    (STRIPE, 8192),
    (12 * TiB + 5 * MiB + 512, 6 * MiB),
    (DATA - 512, 512),
]


PROFILE = DiskProfile(sku="StandardSSD_LRS", os_type="Linux", hyper_v_generation="V2", tags={"app": "big"})


@dataclass(frozen=True)
class StripedPoint:
    url: str  # the base blob (stripe 0)
    point: str  # its restore point: the base blob's snapshot
    written: dict[int, bytes]  # export offset -> bytes, the footer included


def _write(blob: BlobClient, offset: int, data: bytes) -> None:
    for start in range(0, len(data), 4 * MiB):
        chunk = data[start : start + 4 * MiB]
        blob.upload_page(chunk, offset=offset + start, length=len(chunk))


def striped_point(
    world: World, blob: str = "big.vhd", *, footer_ok: bool = True, recorded: int = 3
) -> StripedPoint:
    """Three page blobs as striping lays out a 16 TiB disk's export, their snapshots, and the base's
    snapshot carrying the RestorePointMeta that ties them (damaged: a bad footer, or only `recorded`
    of the stripes recorded)."""
    url = world.target_url(blob=blob)
    container = world.container(url)
    container.create_container()
    footer = vhd.build_footer(DATA, original_size=DATA, created=datetime.now(UTC), unique_id=bytes(range(16)))
    footer = footer if footer_ok else footer[:-1] + bytes([footer[-1] ^ 1])
    written = {offset: pattern(offset % 997, length) for offset, length in EXTENTS} | {DATA: footer}
    stripes = [container.get_blob_client(blob)] + [
        container.get_blob_client(f"{blob}.stripe{k}") for k in (1, 2)
    ]
    for k, client in enumerate(stripes):
        client.create_page_blob(STRIPE if k < 2 else 512)
    for offset, data in written.items():
        k = offset // STRIPE
        _write(stripes[k], offset - k * STRIPE, data)
    later = [client.create_snapshot()["snapshot"] for client in stripes[1:]]
    meta = RestorePointMeta(
        snapshot_name="big-s1",
        snapshot_id=f"/subscriptions/{world.subscription}/resourceGroups/{world.rg}/providers/"
        "Microsoft.Compute/snapshots/big-s1",
        snapshot_time=datetime.now(UTC).isoformat(),
        size_bytes=DATA + 512,
        mode="full",
        stripe_snapshots=tuple(later[: recorded - 1]),
        profile=PROFILE,
    )
    point = stripes[0].create_snapshot(metadata=meta.to_metadata())["snapshot"]
    return StripedPoint(url, point, written)


def assert_disk_holds(world: World, name: str, written: dict[int, bytes]) -> None:
    """The disk reads back every written extent as written, and nothing else is written on it."""
    with world.read_disk(name) as disk:
        assert disk.get_blob_properties().size == DATA + 512
        for offset, data in written.items():
            assert disk.download_blob(offset, len(data)).readall() == data, f"extent at {offset}"
        extents: list[list[int]] = []  # the written extents, touching ones merged (the service merges them)
        for start, end in sorted((o, o + len(d)) for o, d in written.items()):
            if extents and extents[-1][1] == start:
                extents[-1][1] = end
            else:
                extents.append([start, end])
        for r in disk.list_page_ranges():
            assert not r.cleared
            assert any(s <= r.start and r.end + 1 <= e for s, e in extents), f"unwritten data at {r.start}"
        assert disk.download_blob(STRIPE - MiB - 512, 512).readall() == bytes(512)


def restore(replicate: Callable[..., Run], world: World, url: str, name: str, *extra: str) -> Run:
    return replicate(
        "restore", "--target", url, "--point", "latest", "--resource-group", world.rg,
        "--disk-name", name, "--location", world.location, "--json", *extra,
    )  # fmt: skip


def test_a_striped_point_comes_back_byte_for_byte(world: World, replicate: Callable[..., Run]) -> None:
    made = striped_point(world)
    done = restore(replicate, world, made.url, "big")
    assert done.code == 0, done.err
    assert done.doc["disk_size_bytes"] == DATA and done.doc["restore_point"]["id"] == made.point
    disk = world.compute.disks.get(world.rg, "big")
    assert disk.disk_state == "Unattached"  # the upload ended: its Write grant revoked
    assert disk.creation_data.create_option == "Upload"
    assert disk.creation_data.upload_size_bytes == DATA + 512
    assert (disk.sku.name, disk.os_type, disk.hyper_v_generation) == ("StandardSSD_LRS", "Linux", "V2")
    assert disk.tags == {"app": "big"}
    assert_disk_holds(world, "big", made.written)


def test_a_sas_target_authorizes_the_copies(world: World, replicate: Callable[..., Run]) -> None:
    made = striped_point(world)
    done = restore(replicate, world, f"{made.url}?{container_sas(world, made.url, 'rl')}", "big")
    assert done.code == 0, done.err
    assert_disk_holds(world, "big", made.written)


def test_a_failed_upload_revokes_and_deletes_its_disk(world: World, replicate: Callable[..., Run]) -> None:
    made = striped_point(world)
    world.container(made.url).get_blob_client(f"{made.url.rsplit('/', 1)[1]}.stripe1").delete_blob(
        delete_snapshots="include"
    )  # the copy of stripe 1 fails, with the disk's Write grant out
    other = world.create_disk("bystander", 1)
    done = restore(replicate, world, made.url, "big")
    assert done.code == 1, done.err
    assert "listing stripe 1 of restore point" in done.doc["error"]
    names = {d.name for d in world.compute.disks.list_by_resource_group(world.rg)}
    assert names == {other.name}  # its own disk deleted (so revoked first), nothing else touched


@pytest.mark.usefixtures("arm_faulty_env")
def test_a_failed_grant_deletes_the_disk(
    arm_faulty_env: dict[str, str], replicate: Callable[..., Run]
) -> None:
    world = World(arm_faulty_env)
    try:
        made = striped_point(world)
        rules(arm_faulty_env, fail("grant"))  # the Write grant's operation ends Failed
        done = restore(replicate, world, made.url, "big")
        assert done.code == 1, done.err
        assert not list(world.compute.disks.list_by_resource_group(world.rg))
        rules(arm_faulty_env)
        done = restore(replicate, world, made.url, "big")  # nothing left behind to trip over
        assert done.code == 0, done.err
        assert_disk_holds(world, "big", made.written)
    finally:
        world.close()


def test_refusals_create_nothing(world: World, replicate: Callable[..., Run]) -> None:
    made = striped_point(world)
    cases = [
        (("--security-type", "TrustedLaunch"), "takes no security type TrustedLaunch"),
    ]
    for extra, why in cases:
        done = restore(replicate, world, made.url, "big", *extra)
        assert done.code == 2, done.err
        assert why in done.doc["error"]
    for damaged, why in (
        (striped_point(world, "footer.vhd", footer_ok=False), "is damaged"),
        (striped_point(world, "short.vhd", recorded=2), "records 2 stripe snapshots"),
    ):
        done = restore(replicate, world, damaged.url, "big")
        assert done.code == 2, done.err
        assert why in done.doc["error"]
    assert not list(world.compute.disks.list_by_resource_group(world.rg))


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130)])
def test_ctrl_c_revokes_and_deletes_the_disk(
    fresh_emulator: Callable[..., EmulatorProcess],
    monkeypatch: pytest.MonkeyPatch,
    sig: signal.Signals,
    code: int,
) -> None:
    env = fresh_emulator().env  # its own: the link model's latency must not reach other tests
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    world = World(env)
    try:
        made = striped_point(world)
        control(env, "link", {"latency_ms": 500})  # one write at a time, half a second each: ample time
        proc = cli_process(
            env, "restore", "--target", made.url, "--point", "latest", "--resource-group", world.rg,
            "--disk-name", "big", "--location", world.location, "--concurrency", "1", "--json",
        )  # fmt: skip
        while _state(world, "big") != "ActiveUpload":
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.1)
        proc.send_signal(sig)
        stopped = finish(proc, timeout=120)
        assert stopped.code == code, stopped.err
        assert not list(world.compute.disks.list_by_resource_group(world.rg))  # revoked, then deleted
    finally:
        world.close()


def _state(world: World, name: str) -> str | None:
    try:
        return world.compute.disks.get(world.rg, name).disk_state
    except ResourceNotFoundError:
        return None


def test_an_upload_outlasting_its_write_sas_is_regranted(
    fresh_emulator: Callable[..., EmulatorProcess], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every SAS this emulator grants lasts 2 s, and the copy takes longer (stripe 0's listing alone is
    32 windows at 100 ms each before stripe 1's first write): the expired Write SAS is re-granted and the
    restore completes byte for byte, where a grant held for the whole upload failed (the disk deleted)."""
    env = fresh_emulator("--sas-max-seconds", "2").env  # its own: the latency must not reach other tests
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    world = World(env)
    try:
        made = striped_point(world)
        control(env, "link", {"latency_ms": 100})
        proc = cli_process(
            env, "restore", "--target", made.url, "--point", "latest", "--resource-group", world.rg,
            "--disk-name", "big", "--location", world.location, "--concurrency", "1", "--json",
            "--log-level", "debug",
        )  # fmt: skip
        done = finish(proc, timeout=300)
        assert done.code == 0, done.err
        grants = [r for r in records(done.err) if r["event"] == "sas_granted" and r.get("disk") == "big"]
        regrants = [r for r in grants if r["regrant"]]
        assert regrants, "the Write SAS never expired under the upload: the test proves nothing"
        control(env, "link", {"latency_ms": 0})
        assert_disk_holds(world, "big", made.written)
    finally:
        world.close()
