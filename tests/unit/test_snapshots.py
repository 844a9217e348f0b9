"""Pure parts of --snapshot-now and --source-keep: Azure's snapshot limits, what source-keep deletes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from replicator.core.errors import LimitError
from replicator.engine.snapshots import check_limits, plan_trim, snapshot_name
from replicator.source.arm import SnapshotInfo, target_tag
from replicator.target.state import InProgress, SnapshotRef, State

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
RG = "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg/providers/Microsoft.Compute"


TARGET = "https://acct.blob.core.windows.net/replicas/d.vhd"
OTHER = "https://other.blob.core.windows.net/replicas/d.vhd"


def snap(n: int, *, owned: bool = True, target: str = TARGET) -> SnapshotInfo:
    return SnapshotInfo(
        f"{RG}/snapshots/s{n}", f"s{n}", f"u{n}", "fam", NOW - timedelta(hours=10 - n), 1 << 30, 512,
        True, None, f"{RG}/disks/d", "du", owned=owned, owner_target=target_tag(target) if owned else None,
    )  # fmt: skip


def to_delete(snaps: list[SnapshotInfo], keep: int, state: State) -> list[SnapshotInfo]:
    return plan_trim(snaps, keep, state, TARGET).delete


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


def test_source_keep_deletes_only_the_tools_own_snapshots_whatever_n() -> None:
    """Hand-made snapshots count towards the newest N but are never deleted, and are counted."""
    hand = [snap(n, owned=False) for n in range(1, 7)]
    own = [snap(n) for n in range(7, 10)]
    trim = plan_trim([*hand, *own], 3, State(), TARGET)
    assert (trim.delete, [s.name for s in trim.not_owned]) == ([], [f"s{n}" for n in range(1, 7)])
    trim = plan_trim([*hand, *own], 1, State(), TARGET)
    assert [s.name for s in trim.delete] == ["s7", "s8"] and len(trim.not_owned) == 6
    mixed = [hand[0], own[0], hand[1], own[1], own[2]]
    trim = plan_trim(mixed, 2, State(), TARGET)
    assert [s.name for s in trim.delete] == ["s7"] and [s.name for s in trim.not_owned] == ["s1", "s2"]
    assert plan_trim(hand, 1, State(), TARGET).delete == []


def test_source_keep_leaves_the_snapshots_taken_for_another_target() -> None:
    """Two targets of one disk: each trims only its own, so neither deletes the other's diff base."""
    mine, theirs = [snap(n) for n in (1, 3)], [snap(n, target=OTHER) for n in (2, 4)]
    trim = plan_trim([mine[0], theirs[0], mine[1], theirs[1], snap(5)], 1, State(), TARGET)
    assert [s.name for s in trim.delete] == ["s1", "s3"]
    assert [s.name for s in trim.other_targets] == ["s2", "s4"] and trim.not_owned == []
    long = "https://acct.blob.core.windows.net/c/" + "x" * 300
    assert len(target_tag(long)) == 256 and target_tag(long) != target_tag(long + "y")


@given(
    owners=st.lists(st.sampled_from([None, TARGET, OTHER]), max_size=12),
    keep=st.integers(1, 14),
    last=st.integers(0, 12),
)
def test_source_keep_property(owners: list[str | None], keep: int, last: int) -> None:
    """Whatever N and whatever mix: never a snapshot the tool did not take for this target, never one
    the target needs, never one of the newest N; and every older snapshot is deleted, needed or counted."""
    snaps = [snap(n, owned=o is not None, target=o or TARGET) for n, o in enumerate(owners, 1)]
    state = (
        State(last=SnapshotRef(snaps[last - 1].id, f"u{last}", "", f"s{last}"))
        if 0 < last <= len(snaps)
        else State()
    )
    trim = plan_trim(snaps, keep, state, TARGET)
    assert all(s.owner_target == target_tag(TARGET) for s in trim.delete)
    assert not any(s.owned for s in trim.not_owned)
    assert all(s.owner_target == target_tag(OTHER) for s in trim.other_targets)
    assert all(s not in snaps[-keep:] for s in trim.delete + trim.not_owned + trim.other_targets)
    assert state.last is None or all(s.unique_id != state.last.unique_id for s in trim.delete)
    older = snaps[: max(0, len(snaps) - keep)]
    needed = [s for s in older if s.owner_target == target_tag(TARGET) and s not in trim.delete]
    assert len(trim.delete) + len(trim.not_owned) + len(trim.other_targets) + len(needed) == len(older)
    assert all(state.last and s.unique_id == state.last.unique_id for s in needed)
