"""Properties of ranges.StreamPlanner: a listing planned batch by batch, window by window and after a
resume gets the very ops of planning the whole listing at once.

The listing is modelled as listing.list_changes yields it: window by window (edges on multiples of
the window, a multiple of 4 MiB as --list-window requires), each window's changes clipped to it, so
a change crossing an edge arrives as two touching pieces; then cut into batches at random. Byte
sets are compared as merged `(start, end)` pairs computed here, independently of the code under test.
"""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from replicator.core.listwindows import WindowPlanner
from replicator.core.ranges import (
    MAX_WRITE,
    PAGE,
    Change,
    Op,
    Range,
    StreamPlanner,
    clip,
    coalesce,
    fill_gaps,
    plan,
    window_start,
)

MiB = 1024 * 1024
CHUNK_PAGES = MAX_WRITE // PAGE

props = settings(max_examples=300, deadline=None, derandomize=True)

Spans = list[tuple[int, int]]


def merged(pairs) -> Spans:
    """`[start, end)` pairs sorted, with overlapping and touching ones merged: a canonical byte set."""
    out: Spans = []
    for a, b in sorted(pairs):
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


def spans(items, low: int = 0) -> Spans:
    """The bytes at or above `low` of some changes or ops."""
    return merged((max(i.range.start, low), i.range.end) for i in items if i.range.end > low)


def within(a: Spans, b: Spans) -> bool:
    return merged(a + b) == b


def holes(covered: Spans, start: int, end: int) -> Spans:
    """The bytes of `[start, end)` outside `covered`."""
    edges = [start, *(x for pair in covered for x in pair), end]
    return [(a, b) for a, b in zip(edges[::2], edges[1::2], strict=True) if a < b]


def is_data(item: Change | Op) -> bool:
    return item.kind == "copy" if isinstance(item, Op) else not item.clear


@st.composite
def disks(draw) -> tuple[list[Change], int]:
    """A disk's changes (sorted, disjoint, 512-aligned data and clears) and its size.

    Lengths and gaps mix a few pages with spans beyond 4 MiB, and some changes start a few pages
    either side of a 4 MiB multiple (a possible window edge), so small merged gaps, 4 MiB chunks,
    changes and merged gaps across window edges, and long holes all occur.
    """
    lengths = st.one_of(st.integers(1, 16), st.integers(1, 3 * CHUNK_PAGES))
    gaps = st.one_of(st.just(0), st.integers(1, 16), st.integers(1, 2 * CHUNK_PAGES))
    near_edge = st.one_of(st.none(), st.integers(-8, 8))  # pages from the next 4 MiB multiple
    items = draw(st.lists(st.tuples(gaps, near_edge, lengths, near_edge, st.booleans()), max_size=12))
    pos, changes = 0, []
    for gap, start_edge, length, end_edge, clear in items:
        start = pos + gap * PAGE if start_edge is None else max(pos, edge_after(pos) + start_edge * PAGE)
        end = (
            start + length * PAGE
            if end_edge is None
            else max(start + PAGE, edge_after(start) + end_edge * PAGE)
        )
        changes.append(Change(Range(start, end), clear))
        pos = end
    return changes, pos + draw(gaps) * PAGE


def edge_after(offset: int) -> int:
    return (offset // MAX_WRITE + 1) * MAX_WRITE


def listing(changes: list[Change], size: int, window: int, start: int) -> list[Change]:
    """What list_changes yields from `start`: every window's changes, clipped to the window."""
    return [
        Change(Range(max(c.range.start, w.start), min(c.range.end, w.end)), c.clear)
        for w in iter(WindowPlanner(start, size, largest=window, smallest=window).next, None)
        for c in changes
        if c.range.start < w.end and c.range.end > w.start
    ]


def streamed(
    listed: list[Change], cuts: list[int], start: int, size: int, merge_gap: int, fill: bool
) -> tuple[list[Op], int]:
    """The planner's ops over `listed` cut into batches at `cuts`, and the data bytes it counted."""
    planner = StreamPlanner(start, size, merge_gap=merge_gap, fill=fill)
    ops, counted = [], 0
    edges = [0, *sorted(c for c in cuts if c <= len(listed)), len(listed)]
    for a, b in itertools.pairwise(edges):
        n, batch_ops = planner.feed(listed[a:b])
        counted += n
        ops += batch_ops
    return ops + list(planner.finish()), counted


def coalesced(listed: list[Change], start: int, size: int, merge_gap: int, fill: bool) -> list[Change]:
    """The batch-free model: the whole listing inside `[start, size)`, holes filled, coalesced."""
    inside = list(clip(listed, start, size))
    return list(coalesce(fill_gaps(inside, start, size) if fill else inside, merge_gap))


def check_shape(ops: list[Op]) -> None:
    """Aligned, in offset order, disjoint, touching clears merged, copies at most 4 MiB."""
    for op in ops:
        assert op.range.start % PAGE == 0 and op.range.end % PAGE == 0, op
        assert op.kind == "clear" or op.range.length <= MAX_WRITE, op
    for a, b in itertools.pairwise(ops):
        assert a.range.end <= b.range.start, (a, b)
        assert not (a.kind == b.kind == "clear" and a.range.end == b.range.start), (a, b)


def check_bytes(ops, listed, start, size, merge_gap, fill, low) -> None:
    """Copies cover the listed data at or above `low` and otherwise only merged gaps of at most
    `merge_gap` between two listed copies; clears are exactly the listed clears (and, with `fill`,
    every byte the listing does not name) at or above `low`, and nothing else."""
    inside = list(clip(listed, start, size))
    data = spans([c for c in inside if is_data(c)])
    gaps = [
        (a.range.end, b.range.start)
        for a, b in itertools.pairwise(inside)
        if is_data(a) and is_data(b) and 0 < b.range.start - a.range.end <= merge_gap
    ]
    cleared = spans([c for c in inside if not is_data(c)])
    if fill:
        cleared = merged(cleared + holes(spans(inside), start, size))
    copied = spans([o for o in ops if is_data(o)])
    clears = spans([o for o in ops if not is_data(o)])
    assert within(copied, merged(data + gaps)), "a copy reaches beyond listed data and small gaps"
    assert within(spans([c for c in inside if is_data(c)], low), copied), "listed data left uncopied"
    assert within(clears, cleared), "a clear reaches beyond what the listing clears"
    left = merged((max(a, low), b) for a, b in cleared if b > low)
    assert within(left, spans([o for o in ops if not is_data(o)], low)), (
        "a listed or filled clear left undone"
    )


planner_args = {
    "merge_gap": st.one_of(st.just(0), st.integers(1, 16).map(lambda k: k * PAGE), st.just(MiB)),
    "fill": st.booleans(),  # a full copy into a target that may hold data
    "data_only": st.booleans(),  # a full copy lists valid ranges only; a diff lists clears too
    "window": st.sampled_from([MAX_WRITE, 2 * MAX_WRITE]),
}


@props
@given(disk=disks(), cuts=st.lists(st.integers(0, 30)), **planner_args)
def test_batches_and_windows_plan_exactly_the_whole_listing(disk, cuts, merge_gap, fill, data_only, window):
    changes, size = disk
    if data_only:
        changes = [c for c in changes if not c.clear]
    listed = listing(changes, size, window, 0)
    ops, counted = streamed(listed, cuts, 0, size, merge_gap, fill)
    assert ops == list(plan(coalesced(listed, 0, size, merge_gap, fill)))
    assert counted == sum(c.range.length for c in changes if not c.clear)
    check_shape(ops)
    check_bytes(ops, listed, 0, size, merge_gap, fill, low=0)


@props
@given(disk=disks(), cuts=st.lists(st.integers(0, 30)), data=st.data(), **planner_args)
def test_a_resumed_run_plans_the_ops_the_whole_run_had_left(
    disk, cuts, data, merge_gap, fill, data_only, window
):
    """A checkpoint is an op boundary of the run it resumes (Watermark.low(): the start of the lowest
    op in flight, or the end of the last one issued). The resumed run lists from the window holding
    it and skips ops ending at or below it; the ops it keeps are those of the whole run, except where
    a merged gap of the whole run straddles the window start (the resumed run cannot see the change
    before it, so it copies a little less and chunks that copy from its own start). Either way it
    writes every listed byte above the checkpoint and nothing the listing does not allow."""
    changes, size = disk
    if data_only:
        changes = [c for c in changes if not c.clear]
    whole, _ = streamed(listing(changes, size, window, 0), [], 0, size, merge_gap, fill)
    bounds = sorted({0} | {x for op in whole for x in (op.range.start, op.range.end)})
    # Window starts inside a planned change are where resuming is hardest: prefer them.
    planned = coalesced(listing(changes, size, window, 0), 0, size, merge_gap, fill)
    inside = [
        m for c in planned for m in range(window_start(c.range.start, window) + window, c.range.end, window)
    ]
    bridged = [m for m in inside if not any(c.range.start < m < c.range.end for c in changes)]  # in a gap
    edges = [st.sampled_from(pool) for pool in (bridged, inside) if pool]
    edge = data.draw(st.one_of(*edges, st.integers(0, size // window).map(lambda k: k * window)))
    at_edge = min((b for b in bounds if b >= edge), default=bounds[-1])
    checkpoint = data.draw(st.one_of(st.sampled_from(bounds), st.just(at_edge)))
    start = window_start(checkpoint, window)
    listed = listing(changes, size, window, start)
    ops, counted = streamed(listed, cuts, start, size, merge_gap, fill)

    assert counted == sum(c.range.length for c in clip(changes, start, size) if not c.clear)
    check_shape(ops)
    left = [op for op in ops if op.range.end > checkpoint]
    check_bytes(left, listing(changes, size, window, 0), 0, size, merge_gap, fill, low=checkpoint)
    straddled = coalesced(listed, start, size, merge_gap, fill) != list(
        clip(coalesced(listing(changes, size, window, 0), 0, size, merge_gap, fill), start, size)
    )
    assert not straddled or merge_gap > 0, "without gap merging the resumed listing coalesces alike"
    if not straddled:
        assert left == [op for op in whole if op.range.end > checkpoint]


def test_a_resume_at_a_window_start_inside_a_merged_gap_copies_from_the_next_change():
    """The case the resume property exempts: the whole run bridged a gap across the window start, the
    resumed run lists from that start and so sees only the change after it."""
    changes = [
        Change(Range(0, MAX_WRITE - PAGE), False),
        Change(Range(MAX_WRITE + PAGE, MAX_WRITE + 2 * PAGE), False),
    ]
    whole, _ = streamed(changes, [], 0, 2 * MAX_WRITE, 2 * PAGE, False)
    assert whole == [Op("copy", Range(0, MAX_WRITE)), Op("copy", Range(MAX_WRITE, MAX_WRITE + 2 * PAGE))]
    resumed, _ = streamed(changes[1:], [], MAX_WRITE, 2 * MAX_WRITE, 2 * PAGE, False)
    assert resumed == [Op("copy", Range(MAX_WRITE + PAGE, MAX_WRITE + 2 * PAGE))]


def test_the_last_change_of_a_batch_is_held_until_it_cannot_grow():
    planner = StreamPlanner(0, 8 * PAGE, merge_gap=PAGE)
    assert planner.feed([Change(Range(0, PAGE), False)])[0] == PAGE
    assert list(planner.feed([Change(Range(2 * PAGE, 3 * PAGE), False)])[1]) == []  # within merge_gap
    listed, ops = planner.feed(
        [Change(Range(3 * PAGE, 4 * PAGE), True), Change(Range(6 * PAGE, 7 * PAGE), True)]
    )
    assert (listed, list(ops)) == (
        0,
        [Op("copy", Range(0, 3 * PAGE)), Op("clear", Range(3 * PAGE, 4 * PAGE))],
    )
    assert list(planner.finish()) == [Op("clear", Range(6 * PAGE, 7 * PAGE))]


def test_a_batch_outside_the_window_plans_nothing_and_fill_clears_to_the_end():
    planner = StreamPlanner(4 * PAGE, 8 * PAGE, fill=True)
    listed, ops = planner.feed([Change(Range(0, 4 * PAGE), False)])  # below the resume start
    assert (listed, list(ops)) == (0, [])
    assert list(planner.finish()) == [Op("clear", Range(4 * PAGE, 8 * PAGE))]


def test_stream_planner_rejects_bad_parameters():
    with pytest.raises(ValueError, match="invalid"):
        StreamPlanner(2 * PAGE, PAGE)
    with pytest.raises(ValueError, match="merge_gap"):
        StreamPlanner(0, PAGE, merge_gap=-1)
    with pytest.raises(ValueError, match="window"):
        window_start(PAGE, 0)
    assert window_start(9 * MiB, 4 * MiB) == 8 * MiB
