"""ArmBackend on a real BlobBackend in a temp dir, with an injected clock and shrunk limits."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from replicator.emulator.arm import vhd
from replicator.emulator.arm.backend import ArmBackend
from replicator.emulator.arm.model import (
    GIB,
    ArmLimits,
    DataLocation,
    DiskSpec,
    DiskUpdate,
    SnapshotSpec,
)
from replicator.emulator.blob.backend import BlobBackend
from replicator.emulator.errors.arm import ArmError

SUB = "00000000-0000-0000-0000-000000000001"
RG = "rg"


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def make_backend(tmp_path: Path, blobs: BlobBackend, clock: Clock, **limits: float) -> ArmBackend:
    return ArmBackend(tmp_path / "arm.sqlite", blobs, SUB, ArmLimits(**limits), clock)  # type: ignore[arg-type]


@pytest.fixture
def arm(tmp_path: Path, blobs: BlobBackend, clock: Clock) -> Iterator[ArmBackend]:
    backend = make_backend(tmp_path, blobs, clock, completion_seconds=10)
    yield backend
    backend.close()


def disk_spec(sku: str = "Standard_LRS", size_gb: int = 1, **kw: object) -> DiskSpec:
    return DiskSpec(location="eastus", sku=sku, size_gb=size_gb, **kw)  # type: ignore[arg-type]


def snap_spec(disk_id: str, incremental: bool = True) -> SnapshotSpec:
    return SnapshotSpec(location="eastus", source_resource_id=disk_id, incremental=incremental)


def footer_of(blobs: BlobBackend, unique_id: str, size: int) -> vhd.VhdFooter:
    where = DataLocation.of(unique_id)
    return vhd.parse_footer(blobs.read(where.account, where.container, where.blob, None, size, 512))


def expect(code: str, status: int, *words: str, absent: str = "sig=") -> pytest.RaisesContext[ArmError]:
    """Context that checks an ArmError's code, status, that its message names the limit and leaks no SAS."""

    class _Check:
        def __enter__(self) -> None:
            return None

        def __exit__(self, et: type | None, e: BaseException | None, tb: object) -> bool:
            assert isinstance(e, ArmError), f"expected ArmError {code}, got {e!r}"
            assert (e.code, e.status) == (code, status), e.message
            for word in words:
                assert word in e.message
            assert absent not in e.message
            return True

    return _Check()  # type: ignore[return-value]


def test_512_sector_disk_is_a_fixed_vhd(arm: ArmBackend, blobs: BlobBackend) -> None:
    disk = arm.put_disk(RG, "d", disk_spec(size_gb=2))
    assert (disk.size_bytes, disk.size_gb, disk.sector_size, disk.disk_state) == (
        2 * GIB,
        2,
        512,
        "Unattached",
    )
    where = DataLocation.of(disk.unique_id)
    assert where.account.startswith("md-")
    assert blobs.blob_size(where.account, where.container, where.blob) == 2 * GIB + 512
    footer = footer_of(blobs, disk.unique_id, 2 * GIB)
    assert (footer.current_size, footer.original_size, footer.disk_type) == (2 * GIB, 2 * GIB, 2)
    assert footer.unique_id == uuid.UUID(disk.unique_id).bytes


def test_v2_disks_default_to_4096_sectors_without_footer(arm: ArmBackend, blobs: BlobBackend) -> None:
    for sku in ("PremiumV2_LRS", "UltraSSD_LRS"):
        disk = arm.put_disk(RG, sku, disk_spec(sku=sku, size_gb=4))
        where = DataLocation.of(disk.unique_id)
        assert disk.sector_size == 4096
        assert blobs.blob_size(where.account, where.container, where.blob) == 4 * GIB
    assert (
        arm.put_disk(RG, "v2-512", disk_spec(sku="PremiumV2_LRS", logical_sector_size=512)).sector_size == 512
    )
    with expect("InvalidParameter", 400, "4096"):
        arm.put_disk(RG, "bad", disk_spec(logical_sector_size=4096))


@pytest.mark.parametrize(("sku", "largest"), [("Premium_LRS", 32767), ("UltraSSD_LRS", 65536)])
def test_size_limits(arm: ArmBackend, sku: str, largest: int) -> None:
    assert arm.put_disk(RG, "big", disk_spec(sku=sku, size_gb=largest)).size_gb == largest
    with expect("InvalidParameter", 400, str(largest)):
        arm.put_disk(RG, "too-big", disk_spec(sku=sku, size_gb=largest + 1))
    with expect("InvalidParameter", 400):
        arm.put_disk(RG, "zero", disk_spec(sku=sku, size_gb=0))


def test_grow_moves_the_footer_and_shrink_is_refused(arm: ArmBackend, blobs: BlobBackend) -> None:
    disk = arm.put_disk(RG, "d", disk_spec(size_gb=1))
    grown = arm.update_disk(RG, "d", DiskUpdate(size_gb=3))
    assert grown.size_bytes == 3 * GIB
    where = DataLocation.of(disk.unique_id)
    assert blobs.blob_size(where.account, where.container, where.blob) == 3 * GIB + 512
    assert blobs.read(where.account, where.container, where.blob, None, GIB, 512) == bytes(512)
    footer = footer_of(blobs, disk.unique_id, 3 * GIB)
    assert (footer.current_size, footer.original_size) == (3 * GIB, GIB)
    with expect("BadRequest", 400, "cannot be resized down"):
        arm.update_disk(RG, "d", DiskUpdate(size_gb=2))
    with expect("PropertyChangeNotAllowed", 409):
        arm.update_disk(RG, "d", DiskUpdate(sku="Premium_LRS"))


def test_recreated_disk_has_new_unique_id_and_family(arm: ArmBackend) -> None:
    first = arm.put_disk(RG, "d", disk_spec())
    assert arm.put_snapshot(RG, "s1", snap_spec(first.id)).family_id == first.family_id
    assert arm.delete("disks", RG, "d") is True
    assert arm.delete("disks", RG, "d") is False
    second = arm.put_disk(RG, "D", disk_spec())
    assert second.unique_id != first.unique_id
    assert second.family_id != first.family_id
    assert arm.put_snapshot(RG, "s2", snap_spec(second.id)).family_id == second.family_id
    # the first disk's snapshot outlives its disk
    assert arm.get_snapshot(RG, "s1").source_unique_id == first.unique_id


def test_incremental_snapshot_properties(arm: ArmBackend, blobs: BlobBackend) -> None:
    disk = arm.put_disk(RG, "d", disk_spec(size_gb=2))
    snap = arm.put_snapshot(RG, "s", snap_spec(disk.id))
    assert snap.incremental and snap.family_id == disk.family_id
    assert (snap.source_resource_id, snap.source_unique_id) == (disk.id, disk.unique_id)
    assert (snap.size_bytes, snap.size_gb, snap.sector_size, snap.completion_percent) == (
        2 * GIB,
        2,
        512,
        100,
    )
    assert snap.unique_id not in (disk.unique_id,)
    where = DataLocation.of(snap.unique_id)
    assert blobs.blob_size(where.account, where.container, where.blob) == 2 * GIB + 512
    full = arm.put_snapshot(RG, "full", snap_spec(disk.id, incremental=False))
    assert (full.incremental, full.family_id) == (False, None)


def test_snapshot_content_is_frozen_and_survives_disk_deletion(arm: ArmBackend, blobs: BlobBackend) -> None:
    disk = arm.put_disk(RG, "d", disk_spec())
    where = DataLocation.of(disk.unique_id)
    blobs.write_pages(where.account, where.container, where.blob, 0, b"a" * 512)
    snap = arm.put_snapshot(RG, "s", snap_spec(disk.id))
    blobs.write_pages(where.account, where.container, where.blob, 0, b"b" * 512)
    arm.delete("disks", RG, "d")
    s_where = DataLocation.of(snap.unique_id)
    assert blobs.read(s_where.account, s_where.container, s_where.blob, None, 0, 512) == b"a" * 512


def test_five_sas_per_snapshot_family(arm: ArmBackend, clock: Clock) -> None:
    disk = arm.put_disk(RG, "d", disk_spec())
    for i in range(6):
        arm.put_snapshot(RG, f"s{i}", snap_spec(disk.id))
        clock.now += 60
    for i in range(5):
        assert "sig=" in arm.grant_snapshot(RG, f"s{i}", "Read", 3600)
    assert arm.grant_snapshot(RG, "s0", "Read", 3600)  # a re-grant does not count twice
    with expect("OperationNotAllowed", 409, "5 SAS per snapshot family", disk.family_id):
        arm.grant_snapshot(RG, "s5", "Read", 3600)
    arm.revoke("snapshots", RG, "s0")
    assert arm.get_snapshot(RG, "s0").disk_state == "Unattached"
    arm.grant_snapshot(RG, "s5", "Read", 3600)
    assert arm.get_snapshot(RG, "s5").disk_state == "ActiveSAS"
    # expired grants stop counting
    clock.now += 3601
    assert arm.get_snapshot(RG, "s5").disk_state == "Unattached"
    arm.grant_snapshot(RG, "s0", "Read", 60)


def test_sas_duration_is_capped(tmp_path: Path, blobs: BlobBackend, clock: Clock) -> None:
    arm = make_backend(tmp_path, blobs, clock, sas_max_seconds=100)
    arm.put_disk(RG, "d", disk_spec())
    arm.grant_disk(RG, "d", "Read", 10**9)
    clock.now += 101
    assert arm.get_disk(RG, "d").disk_state == "Unattached"
    with expect("InvalidParameter", 400):
        arm.grant_disk(RG, "d", "Read", 0)


def test_seven_incremental_snapshots_per_five_minutes(arm: ArmBackend, clock: Clock) -> None:
    disk = arm.put_disk(RG, "d", disk_spec())
    for i in range(7):
        arm.put_snapshot(RG, f"s{i}", snap_spec(disk.id))
        clock.now += 10
    with expect("OperationNotAllowed", 409, "at most 7 incremental snapshots", "every 5 minutes"):
        arm.put_snapshot(RG, "s7", snap_spec(disk.id))
    arm.put_snapshot(RG, "full", snap_spec(disk.id, incremental=False))  # full snapshots are not limited
    arm.delete("snapshots", RG, "s0")  # deleting does not give the slot back
    with expect("OperationNotAllowed", 409):
        arm.put_snapshot(RG, "s7", snap_spec(disk.id))
    clock.now += 300 - 60
    arm.put_snapshot(RG, "s7", snap_spec(disk.id))


def test_incremental_snapshots_per_disk_total(tmp_path: Path, blobs: BlobBackend, clock: Clock) -> None:
    arm = make_backend(tmp_path, blobs, clock, snapshots_per_disk=3)
    disk = arm.put_disk(RG, "d", disk_spec())
    for i in range(3):
        arm.put_snapshot(RG, f"s{i}", snap_spec(disk.id))
    with expect("OperationNotAllowed", 409, "maximum of 3 per disk"):
        arm.put_snapshot(RG, "s3", snap_spec(disk.id))
    arm.delete("snapshots", RG, "s0")
    arm.put_snapshot(RG, "s3", snap_spec(disk.id))
    assert ArmLimits().snapshots_per_disk == 500


def test_v2_completion_progress_gates_grant(arm: ArmBackend, clock: Clock) -> None:
    disk = arm.put_disk(RG, "d", disk_spec(sku="PremiumV2_LRS"))
    snap = arm.put_snapshot(RG, "s", snap_spec(disk.id))
    assert snap.completion_percent == 0
    with expect("OperationNotAllowed", 409, "completionPercent"):
        arm.grant_snapshot(RG, "s", "Read", 60)
    clock.now += 5
    assert arm.get_snapshot(RG, "s").completion_percent == 50
    clock.now += 5
    assert arm.get_snapshot(RG, "s").completion_percent == 100
    arm.grant_snapshot(RG, "s", "Read", 60)
    with expect("BadRequest", 400, "Only incremental"):
        arm.put_snapshot(RG, "full", snap_spec(disk.id, incremental=False))


def test_v2_pending_snapshots_limit(arm: ArmBackend, clock: Clock) -> None:
    disk = arm.put_disk(RG, "d", disk_spec(sku="UltraSSD_LRS"))
    for i in range(3):
        arm.put_snapshot(RG, f"s{i}", snap_spec(disk.id))
    with expect("OperationNotAllowed", 409, "background copy"):
        arm.put_snapshot(RG, "s3", snap_spec(disk.id))
    clock.now += 10
    arm.put_snapshot(RG, "s3", snap_spec(disk.id))


def test_grant_rules(arm: ArmBackend) -> None:
    disk = arm.put_disk(RG, "d", disk_spec())
    arm.put_snapshot(RG, "s", snap_spec(disk.id))
    with expect("InvalidParameter", 400, "Write"):
        arm.grant_snapshot(RG, "s", "Write", 60)
    with expect("InvalidParameter", 400):
        arm.grant_disk(RG, "d", "None", 60)
    url = arm.grant_disk(RG, "d", "Write", 60)
    assert "/md-" in url and url.split("?")[0].endswith("/abcd")
    assert arm.get_disk(RG, "d").disk_state == "ActiveSAS"
    with expect("OperationNotAllowed", 409, "active SAS"):
        arm.update_disk(RG, "d", DiskUpdate(size_gb=2))
    with expect("OperationNotAllowed", 409, "active SAS"):
        arm.delete("disks", RG, "d")
    arm.revoke("disks", RG, "d")
    arm.revoke("disks", RG, "d")
    assert arm.delete("disks", RG, "d")
    with expect("ResourceNotFound", 404, "disks/d"):
        arm.get_disk(RG, "d")


def test_snapshot_source_must_exist_in_subscription_and_location(arm: ArmBackend) -> None:
    disk = arm.put_disk(RG, "d", disk_spec())
    with expect("ResourceNotFound", 404):
        arm.put_snapshot(RG, "s", snap_spec(disk.id + "x"))
    with expect("InvalidParameter", 400, "subscription"):
        arm.put_snapshot(RG, "s", snap_spec(disk.id.replace(SUB, "11111111-0000-0000-0000-000000000000")))
    with expect("InvalidParameter", 400, "location"):
        arm.put_snapshot(RG, "s", replace(snap_spec(disk.id), location="westus"))
    with expect("InvalidParameter", 400, "sourceResourceId"):
        arm.put_snapshot(RG, "s", snap_spec("/not/an/id"))


def test_listing_pages_with_keyset_tokens(tmp_path: Path, blobs: BlobBackend, clock: Clock) -> None:
    arm = make_backend(tmp_path, blobs, clock, page_size=2)
    for rg in ("a", "b"):
        for i in range(3):
            arm.put_disk(rg, f"d{i}", disk_spec())
    names, token, pages = [], None, 0
    while True:
        page = arm.list("disks", None, token)
        names += [(d.resource_group, d.name) for d in page.items]
        pages += 1
        token = page.next_key
        if token is None:
            break
    assert names == [(rg, f"d{i}") for rg in ("a", "b") for i in range(3)]
    assert pages == 3
    first = arm.list("disks", "b", None)
    assert [d.name for d in first.items] == ["d0", "d1"]
    assert [d.name for d in arm.list("disks", "b", first.next_key).items] == ["d2"]


def test_state_persists_across_reopen(tmp_path: Path, blobs: BlobBackend, clock: Clock) -> None:
    arm = make_backend(tmp_path, blobs, clock)
    disk = arm.put_disk(RG, "d", disk_spec())
    arm.put_snapshot(RG, "s", snap_spec(disk.id))
    arm.grant_snapshot(RG, "s", "Read", 600)
    op = arm.record_operation({"accessSAS": "x"})
    arm.close()
    again = make_backend(tmp_path, blobs, clock)
    assert again.get_disk(RG, "d") == disk
    assert again.get_snapshot(RG, "s").disk_state == "ActiveSAS"
    assert again.operation(op)[1] == {"accessSAS": "x"}
    again.close()


ACCT_ID = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/acct"


def test_import_is_copy_on_write_from_a_blob_snapshot(arm: ArmBackend, blobs: BlobBackend) -> None:
    size = 4 * 1024 * 1024
    blobs.create_page_blob("acct", "c", "src.vhd", size + 512)
    blobs.write_pages("acct", "c", "src.vhd", 0, b"z" * 512)
    snap_id = blobs.snapshot_blob("acct", "c", "src.vhd")
    blobs.write_pages("acct", "c", "src.vhd", 0, b"y" * 512)
    uri = f"https://127.0.0.1:1/acct/c/src.vhd?snapshot={snap_id}"
    spec = disk_spec(size_gb=None, create_option="Import", source_uri=uri, storage_account_id=ACCT_ID)
    disk = arm.put_disk(RG, "imp", spec)
    where = DataLocation.of(disk.unique_id)
    assert disk.size_bytes == size
    assert blobs.read(where.account, where.container, where.blob, None, 0, 512) == b"z" * 512
    grown = arm.put_disk(RG, "imp2", replace(spec, size_gb=1))
    assert grown.size_bytes == GIB
    assert footer_of(blobs, grown.unique_id, GIB).current_size == GIB
    with expect("InvalidParameter", 400, "missing.vhd", "BlobNotFound", absent="secret"):
        arm.put_disk(RG, "bad", replace(spec, source_uri="https://127.0.0.1:1/acct/c/missing.vhd?sig=secret"))
    with expect("InvalidParameter", 400):
        arm.put_disk(RG, "bad", replace(spec, storage_account_id=None))
