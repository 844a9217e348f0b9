"""The stripe layout (core.stripes): every byte of an export lands in exactly one stripe, at one offset."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from replicator.core.ranges import PAGE, Op, Range
from replicator.core.stripes import (
    STRIPE_BYTES,
    copy_workers,
    layout,
    locate,
    resume_point,
    split,
    stripe_blob_name,
    stripe_count,
)
from replicator.target.stripe_set import StripeSet, StripeSnapshot, missing, orphans

TIB = 1024**4
pages = st.integers(min_value=1, max_value=(64 * TIB) // PAGE + 1).map(lambda n: n * PAGE)


def test_stripe_width_is_the_page_blob_limit_and_4_mib_aligned() -> None:
    assert STRIPE_BYTES == 8 * TIB
    assert STRIPE_BYTES % (4 * 1024 * 1024) == 0


@pytest.mark.parametrize(
    ("size", "lengths"),
    [
        (PAGE, [PAGE]),
        (8 * TIB, [8 * TIB]),
        (8 * TIB + PAGE, [8 * TIB, PAGE]),
        (16 * TIB + PAGE, [8 * TIB, 8 * TIB, PAGE]),
        (32 * TIB + PAGE, [8 * TIB] * 4 + [PAGE]),
    ],
)
def test_layout_of_known_sizes(size: int, lengths: list[int]) -> None:
    assert [s.length for s in layout(size)] == lengths
    assert stripe_count(size) == len(lengths)


@given(pages)
def test_layout_covers_the_export_once(size: int) -> None:
    stripes = layout(size)
    assert stripes[0].start == 0 and stripes[-1].end == size
    for before, after in itertools.pairwise(stripes):
        assert before.end == after.start and before.length == STRIPE_BYTES
    assert all(0 < s.length <= STRIPE_BYTES and s.length % PAGE == 0 for s in stripes)
    assert [s.index for s in stripes] == list(range(len(stripes)))


@pytest.mark.parametrize("size", [0, -PAGE, 100, PAGE + 1])
def test_bad_sizes_are_refused(size: int) -> None:
    with pytest.raises(ValueError, match="multiple of 512"):
        layout(size)


@given(
    st.integers(min_value=0, max_value=(64 * TIB) // PAGE),
    st.integers(min_value=1, max_value=(20 * TIB) // PAGE),
    st.sampled_from(["copy", "clear"]),
)
def test_split_puts_every_byte_at_its_stripe_offset(start_page: int, length_pages: int, kind: str) -> None:
    op = Op(kind, Range(start_page * PAGE, (start_page + length_pages) * PAGE))  # type: ignore[arg-type]
    parts = list(split(op))
    assert sum(p.range.length for _, p in parts) == op.range.length
    pos = op.range.start
    for index, part in parts:
        assert part.kind == op.kind
        assert 0 <= part.range.start < part.range.end <= STRIPE_BYTES
        assert index * STRIPE_BYTES + part.range.start == pos  # the export offset it came from
        pos = index * STRIPE_BYTES + part.range.end
    assert pos == op.range.end
    assert [i for i, _ in parts] == list(range(parts[0][0], parts[0][0] + len(parts)))


def test_an_op_inside_one_stripe_is_unchanged_but_for_its_offset() -> None:
    op = Op("copy", Range(8 * TIB + 4096, 8 * TIB + 8192))
    assert list(split(op)) == [(1, Op("copy", Range(4096, 8192)))]


def test_stripe_names() -> None:
    assert stripe_blob_name("vm/disk.vhd", 0) == "vm/disk.vhd"
    assert stripe_blob_name("vm/disk.vhd", 2) == "vm/disk.vhd.stripe2"
    with pytest.raises(ValueError):
        stripe_blob_name("d.vhd", -1)


@given(
    st.integers(min_value=0, max_value=(64 * TIB) // PAGE),
    st.integers(min_value=1, max_value=(20 * TIB) // PAGE),
)
def test_locate_agrees_with_split_and_refuses_a_straddle(start_page: int, length_pages: int) -> None:
    r = Range(start_page * PAGE, (start_page + length_pages) * PAGE)
    parts = list(split(Op("copy", r)))
    if len(parts) == 1:
        assert locate(r) == (parts[0][0], parts[0][1].range)
    else:
        with pytest.raises(ValueError, match="straddles"):
            locate(r)


@given(st.lists(st.tuples(st.integers(min_value=0, max_value=10**6), st.booleans()), max_size=8))
def test_resume_point_is_the_first_incomplete_streams_low(streams: list[tuple[int, bool]]) -> None:
    point = resume_point(streams, 10**7)
    incomplete = [low for low, complete in streams if not complete]
    assert point == (incomplete[0] if incomplete else 10**7)


def test_resume_point_never_counts_a_later_stripe_past_an_unwritten_earlier_one() -> None:
    # stripe 0 still writing at 1 TiB, stripe 1 done: resume at 1 TiB (stripe 1 is written again)
    assert resume_point([(1 * TIB, False), (16 * TIB, True)], 16 * TIB + PAGE) == 1 * TIB
    assert resume_point([(8 * TIB, True), (9 * TIB, False)], 16 * TIB + PAGE) == 9 * TIB
    assert resume_point([(8 * TIB, True), (16 * TIB + PAGE, True)], 16 * TIB + PAGE) == 16 * TIB + PAGE


def test_orphans_and_missing_stripe_snapshots() -> None:
    listed = [
        StripeSnapshot(1, "t1"),
        StripeSnapshot(2, "t1"),
        StripeSnapshot(1, "t0"),
        StripeSnapshot(2, "t9"),
    ]
    held = [("t1", "t1"), ("t5", "t6")]
    assert orphans(held, listed) == [StripeSnapshot(1, "t0"), StripeSnapshot(2, "t9")]
    assert orphans([()], []) == []  # a target of one blob: nothing to clean, no request
    assert missing(("t1", "t1"), listed) == []
    assert missing(("t5", "t9"), listed) == [1]
    assert missing((), listed) == []


class _Container:
    """Stands in for ContainerClient: a blob client is its name (and snapshot)."""

    def get_blob_client(self, name: str, snapshot: str | None = None) -> str:
        return name if snapshot is None else f"{name}@{snapshot}"


def test_stripe_set_routes_each_range_to_its_blob_and_offset() -> None:
    stripe_set = StripeSet(_Container(), "BASE", "vm/d.vhd", "shown")  # type: ignore[arg-type]
    assert stripe_set.route(Range(4096, 8192)) == (0, "BASE", Range(4096, 8192))
    assert stripe_set.route(Range(16 * TIB, 16 * TIB + PAGE)) == (2, "vm/d.vhd.stripe2", Range(0, PAGE))
    assert stripe_set.client(1, "t1") == "vm/d.vhd.stripe1@t1"
    assert [stripe_set.stripe_of(n) for n in ("vm/d.vhd.stripe1", "vm/d.vhd.stripe12", "vm/d.vhd")] == [
        1,
        12,
        None,
    ]
    assert [stripe_set.stripe_of(n) for n in ("vm/d.vhd.stripe01", "vm/d.vhd.stripe", "vm/d.vhd2")] == [
        None
    ] * 3
    with pytest.raises(ValueError, match="straddles"):
        stripe_set.route(Range(8 * TIB - PAGE, 8 * TIB + PAGE))


def test_copy_workers_let_every_stripe_reach_its_ceiling_within_the_connections() -> None:
    one, sixteen = layout(STRIPE_BYTES - 4096), layout(2 * STRIPE_BYTES + PAGE)
    assert copy_workers(64, one, 192) == 64  # one blob: its ceiling, as before stripes
    assert copy_workers(64, sixteen, 192) == 129  # two stripes at their ceilings, the footer's one write
    assert copy_workers(64, layout(8 * STRIPE_BYTES + PAGE), 192) == 192  # 64 TiB: the connections bound it
    assert copy_workers(192, one, 192) == 192  # a premium ceiling
    assert copy_workers(192, sixteen, 100) == 192  # never below one blob's ceiling
    assert copy_workers(64, layout(8 * 1024**2), 192) == 64  # a small blob is still given its ceiling
    with pytest.raises(ValueError, match="1 or more"):
        copy_workers(0, sixteen, 192)
