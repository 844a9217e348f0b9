"""Properties of the pure range core: every byte goes where it came from, and nothing else does.

Byte sets are compared at 512-byte page granularity (every input is page aligned), against models
written here independently of the code under test.
"""

from __future__ import annotations

import itertools
import random
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from replicator.core.ranges import (
    MAX_WRITE,
    PAGE,
    Change,
    Op,
    Range,
    Watermark,
    clip,
    coalesce,
    complement,
    fill_gaps,
    from_azure,
    plan,
    to_http_range,
    total_bytes,
)

MiB = 1024 * 1024
GiB = 1024 * MiB
TiB = 1024 * GiB
FAR = 1 << 60  # an end offset beyond any test input

props = settings(max_examples=300, deadline=None, derandomize=True)


def pages(ranges) -> set[int]:
    """Page indices covered by `ranges` (Range, Change or Op)."""
    out: set[int] = set()
    for item in ranges:
        r = item if isinstance(item, Range) else item.range
        out.update(range(r.start // PAGE, r.end // PAGE))
    return out


def copies(items) -> list:
    return [i for i in items if (i.kind == "copy" if isinstance(i, Op) else not i.clear)]


def clears(items) -> list:
    return [i for i in items if (i.kind == "clear" if isinstance(i, Op) else i.clear)]


@st.composite
def change_lists(draw, unit: int = PAGE, max_len: int = 40, max_count: int = 25) -> list[Change]:
    """Sorted, non-overlapping changes in multiples of `unit`, starting at a random (often far) offset.

    Gaps of 0 make touching neighbours, of the same kind or not.
    """
    pos = draw(st.one_of(st.integers(0, 64), st.integers(0, (8 * TiB) // unit))) * unit
    items = draw(
        st.lists(st.tuples(st.integers(0, 6), st.integers(1, max_len), st.booleans()), max_size=max_count)
    )
    out = []
    for gap, length, clear in items:
        pos += gap * unit
        out.append(Change(Range(pos, pos + length * unit), clear))
        pos += length * unit
    return out


max_writes = st.integers(1, 12).map(lambda k: k * PAGE)


def check_op_shape(ops: list[Op], max_write: int, align: int) -> None:
    for op in ops:
        assert op.range.start % align == 0 and op.range.end % align == 0, op
        if op.kind == "copy":
            assert op.range.length <= max_write, op
    for a, b in itertools.pairwise(ops):
        assert a.range.end <= b.range.start, (a, b)
        if a.kind == b.kind == "clear":
            assert a.range.end < b.range.start, f"touching clears were not merged: {a}, {b}"


# --- plan --------------------------------------------------------------------------------------


@props
@given(changes=change_lists(), max_write=max_writes)
def test_plan_copies_and_clears_exactly_the_listed_bytes(changes, max_write):
    ops = list(plan(changes, max_write=max_write))
    check_op_shape(ops, max_write, PAGE)
    assert pages(copies(ops)) == pages(copies(changes))
    assert pages(clears(ops)) == pages(clears(changes))
    assert total_bytes(ops) == total_bytes(changes)
    assert list(plan(changes, max_write=max_write)) == ops


@props
@given(changes=change_lists(), max_write=max_writes)
def test_plan_splits_only_at_multiples_of_max_write(changes, max_write):
    """A copy op crossing a multiple of max_write must be a whole coalesced copy that fits in one op."""
    whole = {c.range for c in coalesce(changes) if not c.clear}
    for op in copies(plan(changes, max_write=max_write)):
        if op.range.start // max_write != (op.range.end - 1) // max_write:
            assert op.range in whole, op
        if op.range not in whole:
            inside = [w for w in whole if w.start <= op.range.start and op.range.end <= w.end]
            assert len(inside) == 1 and inside[0].length > max_write, op


@props
@given(unit_pages=st.sampled_from([1, 8]), data=st.data())
def test_plan_respects_a_coarser_alignment(unit_pages, data):
    align = unit_pages * PAGE
    changes = data.draw(change_lists(unit=align))
    max_write = data.draw(st.integers(1, 6)) * align
    ops = list(plan(changes, max_write=max_write, align=align))
    check_op_shape(ops, max_write, align)
    assert pages(copies(ops)) == pages(copies(changes))
    assert pages(clears(ops)) == pages(clears(changes))


@props
@given(changes=change_lists(), max_write=max_writes, max_gap=st.integers(0, 4 * PAGE))
def test_plan_after_gap_merging_copies_extra_bytes_only_inside_small_gaps(changes, max_write, max_gap):
    ops = list(plan(coalesce(changes, max_gap=max_gap), max_write=max_write))
    check_op_shape(ops, max_write, PAGE)
    allowed = set()
    for a, b in itertools.pairwise(changes):
        if not a.clear and not b.clear and b.range.start - a.range.end <= max_gap:
            allowed |= set(range(a.range.end // PAGE, b.range.start // PAGE))
    copied = pages(copies(ops))
    assert pages(copies(changes)) <= copied
    assert copied - pages(copies(changes)) <= allowed
    assert pages(clears(ops)) == pages(clears(changes))


@props
@given(
    changes=change_lists(max_count=12),
    max_write=max_writes,
    max_gap=st.integers(0, 8).map(lambda k: k * PAGE),
    seed=st.integers(0, 2**32 - 1),
)
def test_merged_diff_plan_on_a_target_holding_the_base_makes_it_equal_to_the_source(
    changes, max_write, max_gap, seed
):
    """The safety argument of gap merging, per page: a target holding the base, after the merged plan
    of the diff, equals the source; a copy writes only pages that changed or are unchanged since the
    base (source page == base page), and never a page the diff clears."""
    if not changes:
        return
    origin = changes[0].range.start // PAGE
    size = changes[-1].range.end // PAGE - origin + 8
    rng = random.Random(seed)
    base = [rng.randrange(1, 1 << 30) for _ in range(size)]  # page contents: one number per page
    source = list(base)
    cleared = set()
    for change in changes:
        for page in range(change.range.start // PAGE - origin, change.range.end // PAGE - origin):
            source[page] = 0 if change.clear else -rng.randrange(1, 1 << 30)  # never equal to a base page
            if change.clear:
                cleared.add(page)
    target = list(base)
    for op in plan(coalesce(changes, max_gap=max_gap), max_write=max_write):
        for page in range(op.range.start // PAGE - origin, op.range.end // PAGE - origin):
            if op.kind == "clear":
                target[page] = 0
                continue
            assert page not in cleared, f"{op} copies a page the diff clears"
            assert source[page] < 0 or source[page] == base[page], f"{op} copies a page of neither kind"
            target[page] = source[page]
    assert target == source


@props
@given(changes=change_lists(), max_write=max_writes, max_gap=st.sampled_from([0, 2 * PAGE]), data=st.data())
def test_resume_below_watermark_replans_the_rest(changes, max_write, max_gap, data):
    """Kill a run with some ops done in random order, resume from low(): nothing listed is missed,
    and without gap merging the resumed run plans exactly the ops the first run had left."""
    ops = list(plan(coalesce(changes, max_gap), max_write=max_write))
    first = changes[0].range.start if changes else 0
    wm = Watermark(first)
    n_issued = data.draw(st.integers(0, len(ops)))
    for op in ops[:n_issued]:
        wm.issued(op.range)
    order = data.draw(st.permutations(range(n_issued)))
    finished = order[: data.draw(st.integers(0, n_issued))]
    for i in finished:
        wm.done(ops[i].range)
    low = wm.low()
    done_ops = [ops[i] for i in finished]
    assert all(i in finished for i, op in enumerate(ops[:n_issued]) if op.range.start < low)

    rest = list(plan(coalesce(clip(changes, low, FAR), max_gap), max_write=max_write))
    assert pages(copies(changes)) <= pages(copies(done_ops + rest))
    assert pages(clears(changes)) == pages(clears(done_ops + rest))
    if max_gap == 0:
        assert rest == [op for op in ops if op.range.start >= low]


def test_plan_example_scattered_ranges_far_into_the_disk():
    changes = [
        Change(Range(GiB + 512, GiB + 4096), False),
        Change(Range(GiB + 4096, GiB + 9 * MiB), False),  # touches the previous copy: merged
        Change(Range(GiB + 9 * MiB, GiB + 10 * MiB), True),  # touches a copy: stays separate
        Change(Range(3 * GiB - MiB, 3 * GiB + MiB), False),  # crosses a 4 MiB multiple but fits: one op
        Change(Range(5 * GiB, 5 * GiB + 100 * MiB), True),  # a clear is one op whatever its size
        Change(Range(6 * TiB + 3 * 512, 6 * TiB + 4 * 512), False),
    ]
    assert list(plan(changes)) == [
        Op("copy", Range(GiB + 512, GiB + 4 * MiB)),
        Op("copy", Range(GiB + 4 * MiB, GiB + 8 * MiB)),
        Op("copy", Range(GiB + 8 * MiB, GiB + 9 * MiB)),
        Op("clear", Range(GiB + 9 * MiB, GiB + 10 * MiB)),
        Op("copy", Range(3 * GiB - MiB, 3 * GiB + MiB)),
        Op("clear", Range(5 * GiB, 5 * GiB + 100 * MiB)),
        Op("copy", Range(6 * TiB + 1536, 6 * TiB + 2048)),
    ]


def test_plan_streams_without_reading_all_input():
    endless = (Change(Range(i * 2 * PAGE, i * 2 * PAGE + PAGE), False) for i in itertools.count())
    first = list(itertools.islice(plan(endless), 3))
    assert [op.range for op in first] == [Range(0, 512), Range(1024, 1536), Range(2048, 2560)]
    huge = plan([Change(Range(0, 8 * TiB), False)])
    assert next(huge) == Op("copy", Range(0, MAX_WRITE))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ([Change(Range(0, 700), False)], "not aligned"),
        ([Change(Range(100, 512), True)], "not aligned"),
        ([Change(Range(0, 700), False), Change(Range(700, 1024), False)], "not aligned"),
        ([Change(Range(1024, 2048), False), Change(Range(0, 512), False)], "unsorted"),
        ([Change(Range(0, 1024), False), Change(Range(512, 2048), True)], "overlapping"),
    ],
)
def test_plan_rejects_bad_input(changes, message):
    with pytest.raises(ValueError, match=message):
        list(plan(changes))


def test_plan_rejects_bad_parameters():
    with pytest.raises(ValueError, match="multiple"):
        list(plan([], max_write=1000))
    with pytest.raises(ValueError, match="positive"):
        list(plan([], max_write=0))


# --- coalesce, clip, complement, fill_gaps ------------------------------------------------------


@props
@given(changes=change_lists())
def test_coalesce_keeps_bytes_and_merges_all_touching_same_kind(changes):
    merged = list(coalesce(changes))
    assert pages(copies(merged)) == pages(copies(changes))
    assert pages(clears(merged)) == pages(clears(changes))
    for a, b in itertools.pairwise(merged):
        assert a.range.end <= b.range.start
        assert a.range.end < b.range.start or a.clear != b.clear
    assert list(coalesce(merged)) == merged


def test_coalesce_max_gap_example():
    a, b = Change(Range(0, 512), False), Change(Range(1024, 1536), False)
    assert list(coalesce([a, b], max_gap=512)) == [Change(Range(0, 1536), False)]
    assert list(coalesce([a, b], max_gap=511)) == [a, b]
    between = Change(Range(512, 1024), True)
    assert list(coalesce([a, between, b], max_gap=4096)) == [a, between, b]
    c, d = Change(Range(0, 512), True), Change(Range(1024, 1536), True)
    assert list(coalesce([c, d], max_gap=4096)) == [c, d]  # clears never bridge a gap
    with pytest.raises(ValueError, match="max_gap"):
        list(coalesce([a], max_gap=-1))


@props
@given(changes=change_lists(), bounds=st.tuples(st.integers(0, 300), st.integers(0, 300)))
def test_clip_is_intersection(changes, bounds):
    base = changes[0].range.start if changes else 0
    start, end = sorted(base + b * PAGE for b in bounds)
    window = set(range(start // PAGE, end // PAGE))
    clipped = list(clip(changes, start, end))
    assert pages(copies(clipped)) == pages(copies(changes)) & window
    assert pages(clears(clipped)) == pages(clears(changes)) & window


@props
@given(changes=change_lists(), bounds=st.tuples(st.integers(0, 300), st.integers(0, 300)))
def test_complement_and_ranges_partition_the_window(changes, bounds):
    base = changes[0].range.start if changes else 0
    start, end = sorted(base + b * PAGE for b in bounds)
    ranges = [c.range for c in changes]
    window = set(range(start // PAGE, end // PAGE))
    holes = list(complement(ranges, start, end))
    assert pages(holes) | (pages(ranges) & window) == window
    assert not pages(holes) & pages(ranges)
    for a, b in itertools.pairwise(holes):
        assert a.end < b.start  # maximal holes: never touching
    filled = list(fill_gaps(changes, start, end))
    assert pages(filled) == window
    assert total_bytes(filled) == end - start  # also proves no overlap
    inside = list(clip(changes, start, end))
    assert copies(filled) == copies(inside)
    assert pages(clears(filled)) == pages(holes) | pages(clears(inside))


def test_fill_gaps_example():
    changes = [Change(Range(1024, 2048), False), Change(Range(4096, 8192), False)]
    assert list(fill_gaps(changes, 512, 6144)) == [
        Change(Range(512, 1024), True),
        Change(Range(1024, 2048), False),
        Change(Range(2048, 4096), True),
        Change(Range(4096, 6144), False),
    ]
    assert list(complement([], 0, 512)) == [Range(0, 512)]
    assert list(complement([Range(0, 512)], 0, 512)) == []


# --- conversions and types ---------------------------------------------------------------------------


@props
@given(start=st.integers(0, 1 << 45), length=st.integers(1, 1 << 40))
def test_http_and_azure_conversions_round_trip(start, length):
    r = Range(start, start + length)
    header = to_http_range(r)
    a, b = map(int, re.fullmatch(r"bytes=(\d+)-(\d+)", header).groups())
    assert b - a + 1 == r.length
    assert from_azure(a, b) == r


def test_conversion_examples():
    assert to_http_range(Range(0, 512)) == "bytes=0-511"
    assert to_http_range(Range(GiB + 512, GiB + 4 * MiB)) == "bytes=1073742336-1077936127"
    assert from_azure(512, 1023) == Range(512, 1024)
    with pytest.raises(ValueError, match="ends before"):
        from_azure(512, 511)


@pytest.mark.parametrize("bounds", [(5, 5), (6, 5), (-512, 0), (0.0, 512)])
def test_range_rejects_empty_negative_or_non_integer(bounds):
    with pytest.raises(ValueError):
        Range(*bounds)


def test_change_and_op_reject_bad_fields():
    with pytest.raises(ValueError):
        Change((0, 512), False)
    with pytest.raises(ValueError):
        Change(Range(0, 512), 0)
    with pytest.raises(ValueError):
        Op("write", Range(0, 512))


# --- Watermark ---------------------------------------------------------------------------------


def model_low(start: int, issued: list[Range], done: set[Range]) -> int:
    """Brute force: the largest candidate offset x, not beyond what was issued, such that every
    issued op starting below x is done."""
    frontier = issued[-1].end if issued else start
    candidates = {start, frontier} | {r.start for r in issued} | {r.end for r in issued}
    return max(x for x in candidates if x <= frontier and all(r in done for r in issued if r.start < x))


@props
@given(changes=change_lists(max_len=10), data=st.data())
def test_watermark_matches_brute_force_model(changes, data):
    start = changes[0].range.start if changes else 0
    todo = [c.range for c in changes]
    wm = Watermark(start)
    issued: list[Range] = []
    done: set[Range] = set()
    while todo or len(done) < len(issued):
        in_flight = [r for r in issued if r not in done]
        if todo and (not in_flight or data.draw(st.booleans())):
            r = todo.pop(0)
            wm.issued(r)
            issued.append(r)
        else:
            r = data.draw(st.sampled_from(in_flight))
            wm.done(r)
            done.add(r)
        assert wm.low() == model_low(start, issued, done)
        assert wm.in_flight == len(issued) - len(done)
    assert wm.low() == (issued[-1].end if issued else start)


def test_watermark_example_and_misuse():
    wm = Watermark(1024)
    assert wm.low() == 1024
    a, b, c = Range(1024, 2048), Range(4096, 8192), Range(8192, 9216)
    for r in (a, b, c):
        wm.issued(r)
    wm.done(b)
    assert wm.low() == 1024
    wm.done(a)
    assert wm.low() == 8192  # the gap [2048, 4096) had nothing to write
    wm.done(c)
    assert wm.low() == 9216 and wm.in_flight == 0
    with pytest.raises(ValueError, match="out of order"):
        wm.issued(Range(8192, 9216))
    with pytest.raises(ValueError, match="not in flight"):
        wm.done(c)
    with pytest.raises(ValueError, match="not in flight"):
        Watermark(0).done(Range(0, 512))
    with pytest.raises(ValueError):
        Watermark(-1)
