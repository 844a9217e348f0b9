"""Pure parts of --snapshot-now and --source-keep: Azure's snapshot limits, what source-keep deletes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from replicator.errors import LimitError
from replicator.snapshots import check_limits, snapshot_name, to_delete
from replicator.source import SnapshotInfo
from replicator.target import InProgress, SnapshotRef, State

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
RG = "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg/providers/Microsoft.Compute"


def snap(n: int) -> SnapshotInfo:
    return SnapshotInfo(
        f"{RG}/snapshots/s{n}", f"s{n}", f"u{n}", "fam", NOW - timedelta(hours=10 - n), 1 << 30, 512,
        True, None, f"{RG}/disks/d", "du",
    )  # fmt: skip


def test_seven_per_five_minutes() -> None:
    recent = [NOW - timedelta(seconds=30 * i) for i in range(6)]
    check_limits(recent, NOW)
    with pytest.raises(
        LimitError, match="7 incremental snapshots of the disk were taken in the last 5 minutes"
    ) as refused:
        check_limits([*recent, NOW - timedelta(seconds=200)], NOW)
    # the oldest of the seven (200 s ago) leaves the window in 100 s: the envelope says so
    assert refused.value.retry_after_seconds == 100
    # the oldest of the seven leaves the window: allowed again
    check_limits([*recent, NOW - timedelta(seconds=301)], NOW)


def test_five_hundred_per_disk() -> None:
    old = [NOW - timedelta(days=1, minutes=i) for i in range(499)]
    check_limits(old, NOW)
    with pytest.raises(LimitError, match="already has 500 incremental snapshots"):
        check_limits([*old, NOW - timedelta(days=3)], NOW)


def test_snapshot_names_are_valid_and_unique() -> None:
    a, b = snapshot_name("d" * 80, NOW), snapshot_name("d" * 80, NOW)
    assert a != b and len(a) <= 80 and "-repl-20261125T120000Z-" in a


def test_source_keep_never_deletes_what_the_target_needs() -> None:
    snaps = [snap(n) for n in range(1, 7)]
    assert [s.name for s in to_delete(snaps, 2, State())] == ["s1", "s2", "s3", "s4"]
    last = State(last=SnapshotRef(snaps[1].id, "u2", "", "s2"))
    assert [s.name for s in to_delete(snaps, 2, last)] == ["s1", "s3", "s4"]
    running = InProgress(SnapshotRef(snaps[3].id, "u4", "", "s4"), snaps[2].id.upper(), "diff", "", 0)
    assert [s.name for s in to_delete(snaps, 2, State(in_progress=running))] == ["s1", "s2"]
    assert to_delete(snaps, 10, State()) == []
