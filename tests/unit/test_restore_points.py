"""Pure parts of restore: the replicator's VHD footer check (against the emulator's writer), point
selection, SKU rules, prune planning, storage account IDs."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from replicator.core import vhd
from replicator.core.errors import UserError
from replicator.emulator.arm import vhd as emulator_vhd
from replicator.plumbing.urlcheck import parse_target_url
from replicator.target.restore_disk import source_uri, storage_account_id
from replicator.target.restore_points import PointInfo, check_sku, plan_prune, select
from replicator.target.state import RestorePoint, SnapshotRef, State

MiB = 1024**2
NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def footer(size: int) -> bytes:
    return emulator_vhd.build_footer(size, original_size=size, created=NOW, unique_id=uuid.uuid4().bytes)


def test_footer_written_by_the_emulator_passes() -> None:
    for size in (MiB, 1024 * MiB, 3 * 1024**4):
        assert vhd.check_footer(footer(size), size + 512).current_size == size


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda f: b"XXXXXXXX" + f[8:], "cookie"),
        (lambda f: f[:100] + bytes([f[100] ^ 1]) + f[101:], "checksum"),
        (lambda f: f[:64] + b"\0\0\0\0" + f[68:], "checksum"),
        (lambda f: f[:-1], "511 bytes"),
    ],
)
def test_damaged_footers_are_refused(damage, message: str) -> None:
    with pytest.raises(vhd.FooterError, match=message):
        vhd.check_footer(damage(footer(MiB)), MiB + 512)


def test_footer_of_another_size_is_refused() -> None:
    with pytest.raises(vhd.FooterError, match="footer says the disk is 1048576 bytes"):
        vhd.check_footer(footer(MiB), 2 * MiB + 512)


def test_checksum_agrees_with_the_emulator() -> None:
    f = footer(5 * MiB)
    assert vhd.checksum(f) == int.from_bytes(f[64:68], "big") == emulator_vhd.parse_footer(f).checksum


def point(n: int, *, sector: int = 512, state: State | None = None) -> PointInfo:
    ident = (NOW - timedelta(days=10 - n)).strftime("%Y-%m-%dT%H:%M:%S.0000000Z")
    meta = {"snapshot_name": f"s{n}", "snapshot_id": f"id{n}", "snapshot_unique_id": f"u{n}"}
    meta["size_bytes"] = str(MiB + 512)
    meta["logical_sector_size"] = str(sector)
    return PointInfo.of(RestorePoint(ident, meta), state or State())


def test_select_by_id_name_and_latest() -> None:
    points = [point(1), point(2), point(3)]
    assert select(points, "latest") == points[-1]
    assert select(points, "s2") == points[1]
    assert select(points, points[0].id) == points[0]
    with pytest.raises(UserError, match="no restore point 'nope'"):
        select(points, "nope")
    with pytest.raises(UserError, match="no restore point yet"):
        select([], "latest")


def test_4096_sector_points_only_become_v2_or_ultra() -> None:
    p = point(1, sector=4096)
    check_sku(p, "PremiumV2_LRS")
    check_sku(p, "UltraSSD_LRS")
    for sku in ("Premium_LRS", "Standard_LRS", "StandardSSD_LRS"):
        with pytest.raises(UserError, match="4096-byte logical sectors"):
            check_sku(p, sku)
    check_sku(point(1), "Standard_LRS")


def test_prune_keeps_the_newest_and_the_base_of_the_next_diff() -> None:
    # An interrupted run left the base blob naming s2 as last completed although s3 is newer.
    state = State(last=SnapshotRef("id2", "u2", "", "s2"))
    points = [point(n, state=state) for n in range(1, 6)]
    plan = plan_prune(points, keep=1, now=NOW)
    assert [p.snapshot_name for p in plan.delete] == ["s1", "s3", "s4"]
    assert [(p.snapshot_name, why.split(" (")[0]) for p, why in plan.protected] == [
        ("s2", "the base of the next diff")
    ]
    assert plan_prune(points, keep=10, now=NOW).delete == []
    everything = plan_prune(points, older_than_days=0, now=NOW)
    assert [p.snapshot_name for p in everything.delete] == ["s1", "s3", "s4"]
    assert {p.snapshot_name for p, _ in everything.protected} == {"s2", "s5"}
    # points are 9, 8, ... 5 days old
    assert [p.snapshot_name for p in plan_prune(points, older_than_days=7.5, now=NOW).delete] == ["s1"]


def test_prune_never_deletes_a_snapshot_the_replicator_did_not_take() -> None:
    """A blob snapshot taken by hand copies the base blob's metadata, which names no source snapshot: it
    counts toward a premium blob's 100 but is someone else's. `--keep N` counts the replicator's own."""
    taken_by_hand = PointInfo.of(
        RestorePoint("2026-01-01T00:00:00.0000000Z", {"replicator_schema": "1"}), State()
    )
    assert taken_by_hand.foreign and not point(1).foreign
    points = [taken_by_hand, *(point(n) for n in range(1, 5))]
    plan = plan_prune(points, keep=2, now=NOW)
    assert [p.snapshot_name for p in plan.delete] == ["s1", "s2"]
    assert taken_by_hand not in plan.delete and taken_by_hand not in [p for p, _ in plan.protected]
    assert taken_by_hand not in plan_prune(points, older_than_days=0, now=NOW).delete
    assert plan_prune([taken_by_hand], keep=1, now=NOW).delete == []


def test_prune_policy_is_validated() -> None:
    with pytest.raises(UserError, match="exactly one"):
        plan_prune([], now=NOW)
    with pytest.raises(UserError, match="at least 1"):
        plan_prune([point(1)], keep=0, now=NOW)


def test_storage_account_id_and_source_uri() -> None:
    emulated = parse_target_url("https://127.0.0.1:8443/acct1/ccc/dir/r.vhd", allow_http=False)
    azure = parse_target_url("https://drsite.blob.core.windows.net/ccc/r.vhd?sv=1&sig=x", allow_http=False)
    sub = "00000000-0000-0000-0000-000000000001"
    assert storage_account_id(emulated, sub, "rg").endswith(
        "/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/acct1"
    )
    assert storage_account_id(azure, sub, "rg").endswith("/storageAccounts/drsite")
    uri = source_uri(azure, "2026-11-25T21:23:22.2198434Z")
    assert uri == "https://drsite.blob.core.windows.net/ccc/r.vhd?snapshot=2026-11-25T21%3A23%3A22.2198434Z"
    assert "sig" not in uri
