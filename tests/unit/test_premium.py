"""core.premium: the size tiers Azure publishes, the account kinds, the pacer's ceiling and the
snapshot arithmetic of premium page-blob targets."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from replicator.core import pacing, premium
from replicator.core.premium import GiB, SnapshotCount, TargetKind

PAGE_BLOB_MAX = 8 * 1024 * GiB


def test_the_published_figures() -> None:
    """P10-P50 as "Premium unmanaged virtual machine disks: per disk limits" gives them; P60 as the
    Premium SSD sizes table does."""
    table = {t.name: (t.max_bytes // GiB, t.requests_per_second, t.mb_per_second) for t in premium.TIERS}
    assert table["P10"] == (128, 500, 100)
    assert table["P20"] == (512, 2_300, 150)
    assert table["P30"] == (1_024, 5_000, 200)
    assert table["P40"] == (2_048, 7_500, 250)
    assert table["P50"] == (4_096, 7_500, 250)
    assert table["P60"] == (8_192, 16_000, 500)
    assert premium.TIERS[-1].max_bytes == PAGE_BLOB_MAX  # no tier a page blob cannot reach


@given(st.integers(0, PAGE_BLOB_MAX))
def test_the_tier_is_the_smallest_that_holds_the_blob(size: int) -> None:
    tier = premium.tier_for(size)
    assert size <= tier.max_bytes
    smaller = [t for t in premium.TIERS if t.max_bytes < tier.max_bytes]
    assert all(size > t.max_bytes for t in smaller)


def test_tier_edges() -> None:
    assert premium.tier_for(1024 * GiB).name == "P30"
    assert premium.tier_for(1024 * GiB + 512).name == "P40"
    assert premium.tier_for(0).name == "P4"
    with pytest.raises(ValueError, match="at most"):
        premium.tier_for(PAGE_BLOB_MAX + 512)


def test_tiers_grow_with_size() -> None:
    pairs = list(zip(premium.TIERS, premium.TIERS[1:], strict=False))
    assert all(a.max_bytes < b.max_bytes for a, b in pairs)
    assert all(a.requests_per_second <= b.requests_per_second for a, b in pairs)
    assert all(a.ceiling <= b.ceiling for a, b in pairs)


@pytest.mark.parametrize(
    ("sku", "kind", "expected"),
    [
        ("Premium_LRS", "StorageV2", True),
        ("Premium_ZRS", "StorageV2", True),
        ("Premium_LRS", "Storage", True),
        ("Premium_LRS", "BlockBlobStorage", False),  # premium block blobs: no page blob tiers
        ("Premium_LRS", "FileStorage", False),
        ("Standard_LRS", "StorageV2", False),
        ("Standard_RAGRS", "StorageV2", False),
        (None, None, False),
    ],
)
def test_premium_page_blob_accounts(sku: str | None, kind: str | None, expected: bool) -> None:
    assert TargetKind(sku, kind).premium is expected


def test_the_ceiling() -> None:
    p30 = 1024 * GiB
    standard, p = TargetKind("Standard_LRS", "StorageV2"), TargetKind("Premium_LRS", "StorageV2")
    assert premium.ceiling_for(standard, p30, None) == 64
    assert premium.ceiling_for(premium.UNKNOWN, p30, None) == 64
    assert premium.ceiling_for(p, p30, None) == premium.MAX_CEILING  # 5,000/s x 128 ms is past the pool
    assert premium.ceiling_for(p, 100 * GiB, None) == 64  # P10: 500/s, a standard blob's rate
    assert premium.ceiling_for(p, p30, 16) == 16  # --concurrency given: the operator's word
    assert premium.blob_tier(32 * 1024 * GiB).name == "P60"  # a striped export: 8 TiB stripes


@given(st.integers(0, PAGE_BLOB_MAX))
def test_a_tier_ceiling_is_bounded_and_starts_the_pacer_three_doublings_below(size: int) -> None:
    ceiling = premium.tier_for(size).ceiling
    assert premium.STANDARD_CEILING <= ceiling <= premium.MAX_CEILING
    start = pacing.start(ceiling).limit
    assert start * 8 >= ceiling  # slow start doubles: three clean windows reach it
    assert start >= pacing.INITIAL


@given(st.integers(0, 150), st.integers(0, 3), st.integers(0, 150))
def test_snapshot_room_and_the_keep_that_makes_it(held: int, commits: int, foreign: int) -> None:
    foreign = min(foreign, held)
    count = SnapshotCount(held)
    assert count.room == max(0, 100 - held)
    keep = count.keep_for(commits, foreign)
    if keep > 0:  # keeping `keep` of the tool's points and every foreign one leaves room for the commits
        assert keep + foreign + commits == premium.SNAPSHOT_LIMIT
    assert count.near is (held >= premium.SNAPSHOT_WARN_AT)


def test_snapshot_count_json() -> None:
    assert SnapshotCount(91).to_json() == {"held": 91, "limit": 100, "room": 9}


def test_the_run_follows_its_target_kind() -> None:
    """engine.pipeline._for_kind: an unread kind is standard with the reason as the note; a premium
    blob replicates the newest snapshot only (one snapshot per ten minutes), said in the notes."""
    from replicator.cli.replicate_cmd import load
    from replicator.engine.pipeline import _for_kind

    group = "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg"
    disk = f"{group}/providers/Microsoft.Compute/disks/d"
    config = load(["--source", disk, "--target", "https://a.blob.core.windows.net/ccc/b.vhd"], env={})
    unread, notes = _for_kind(config, premium.UNKNOWN, "Get Account Information failed (403)")
    assert unread is config and notes == ("Get Account Information failed (403)",)
    standard, notes = _for_kind(config, TargetKind("Standard_LRS", "StorageV2"), None)
    assert standard is config and notes == ()
    paced, (note,) = _for_kind(config, TargetKind("Premium_LRS", "StorageV2"), None)
    assert paced.latest_only and "one snapshot every 10 minutes" in note
