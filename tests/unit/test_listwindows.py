"""WindowPlanner (core.listwindows): a simulated service answers its windows; the windows, with the rests
given back and the halves of timeouts, cover the disk exactly once, aligned and bounded, and adapt."""

from __future__ import annotations

import bisect
import collections
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from replicator.core.listwindows import (
    GROWTH,
    SLOW_SECONDS,
    Answer,
    WindowPlanner,
)
from replicator.core.ranges import PAGE, Range

MiB = 1024 * 1024
GiB = 1024 * MiB
TiB = 1024 * GiB


@dataclass
class Service:
    """Get Page Ranges over sorted one-page ranges at `offsets`: `page` per answer, a timeout when the rest
    of a window holds more than `timeout_over` ranges, `seconds` per answer."""

    offsets: list[int]
    page: int
    timeout_over: int | None = None
    seconds: float = 0.05

    def answer(self, window: Range, at: int) -> tuple[list[int], bool] | None:
        """(the offsets of one answer from `at`, more follow) or None for 500 OperationTimedOut."""
        low, high = bisect.bisect_left(self.offsets, at), bisect.bisect_left(self.offsets, window.end)
        if self.timeout_over is not None and high - low > self.timeout_over:
            return None
        return self.offsets[low : min(high, low + self.page)], high - low > self.page


@dataclass
class Listing:
    windows: list[Range]  # every window and piece asked for
    covered: list[Range]  # what each window or piece accounted for, in listing order
    found: list[int]
    requests: int


def simulate(planner: WindowPlanner, service: Service, ahead: int = 8) -> Listing:
    """Lists like source.listing does: `ahead` windows handed out at once, answered in offset order."""
    out = Listing([], [], [], 0)
    queue: collections.deque[Range] = collections.deque()
    while True:
        while len(queue) < ahead and (win := planner.next()) is not None:
            queue.append(win)
        if not queue:
            return out
        pieces = [queue.popleft()]
        while pieces:
            piece = pieces.pop(0)
            out.windows.append(piece)
            at = piece.start
            while True:
                out.requests += 1
                answered = service.answer(piece, at)
                if answered is None:
                    instead = planner.timed_out(piece, Range(at, piece.end))
                    assert instead is not None, f"{piece} timed out at the smallest window"
                    pieces[:0] = instead
                    if at > piece.start:
                        out.covered.append(Range(piece.start, at))
                    break
                offsets, more = answered
                out.found += offsets
                listed_to = offsets[-1] + PAGE if more else piece.end
                span = Range(at, max(listed_to, at + PAGE))
                if planner.observe(piece, Answer(span, len(offsets), more, service.seconds)):
                    out.covered.append(Range(piece.start, listed_to))
                    break
                if not more:
                    out.covered.append(piece)
                    break
                at = listed_to


def disk(draw: st.DrawFn) -> tuple[int, int, int, list[int]]:
    size = draw(st.integers(1, 1 << 16)) * 64 * MiB
    start = draw(st.integers(0, size // PAGE)) * PAGE
    clusters = draw(st.lists(st.tuples(st.integers(0, size // PAGE - 1), st.integers(1, 3000)), max_size=4))
    pages: set[int] = set()
    for first, count in clusters:
        pages.update(range(first, min(size // PAGE, first + count * 2), 2))  # dense: every other page
    return size, start, draw(st.integers(0, 20)), sorted(p * PAGE for p in pages)


disks = st.composite(disk)


@settings(max_examples=200, deadline=None)
@given(
    disks(),
    st.sampled_from([1, 7, 100, 10_000]),
    st.sampled_from([None, 9_000, 20_000]),
    st.integers(1, 8),
    st.sampled_from([4 * MiB, 64 * MiB]),
)
def test_windows_cover_the_disk_once_aligned_and_bounded(
    d: tuple[int, int, int, list[int]], page: int, timeout_over: int | None, ahead: int, smallest: int
) -> None:
    size, start, _, offsets = d
    largest = 64 * TiB
    planner = WindowPlanner(start, size, largest=largest, smallest=smallest, page=page)
    # the timeout model never refuses a window of the smallest size: 4 MiB holds at most 8,192 ranges
    listing = simulate(planner, Service(offsets, page, timeout_over), ahead)
    position = start
    for piece in listing.covered:
        assert piece.start == position
        position = piece.end
    assert position == size
    assert listing.found == [o for o in offsets if o >= start]
    for w in listing.windows:
        assert w.start % PAGE == 0 and w.end % PAGE == 0 and 0 < w.length <= largest
        assert start <= w.start and w.end <= size


@settings(max_examples=100, deadline=None)
@given(size=st.integers(1, 1 << 17), start_frac=st.floats(0, 1), largest_exp=st.integers(26, 46))
def test_an_idle_disk_takes_as_many_requests_as_largest_windows_it_holds(
    size: int, start_frac: float, largest_exp: int
) -> None:
    size *= 512 * MiB
    start = int(size // PAGE * start_frac) * PAGE
    largest = 1 << largest_exp
    listing = simulate(WindowPlanner(start, size, largest=largest), Service([], 10_000))
    assert listing.requests == max(0, -(-(size - start) // largest))


def test_an_idle_disk_of_any_size_is_one_request() -> None:
    for size in (PAGE, GiB, 8 * TiB, 32 * TiB + PAGE, 64 * TiB):
        assert simulate(WindowPlanner(0, size), Service([], 10_000)).requests == 1


def test_a_dense_first_answer_gives_the_rest_back_in_windows_of_half_an_answer() -> None:
    planner = WindowPlanner(0, 8 * TiB)
    first = planner.next()
    assert first == Range(0, 8 * TiB)
    # 10,000 ranges over the first GiB, more to come: windows of half a GiB from there
    assert planner.observe(first, Answer(Range(0, GiB), 10_000, more=True, seconds=0.2))
    assert planner.next() == Range(GiB, GiB + GiB // 2)


def test_windows_grow_after_small_quick_answers_and_shrink_after_slow_or_dense_ones() -> None:
    planner = WindowPlanner(0, 64 * TiB, smallest=64 * MiB)
    win = Range(0, GiB)
    planner.observe(win, Answer(win, 10, more=False, seconds=0.1))
    assert planner.size == GROWTH * GiB  # few ranges, quick: grows, at most GROWTH times
    planner.observe(win, Answer(win, 5_000, more=False, seconds=SLOW_SECONDS + 1))
    assert planner.size == GiB // 2  # half an answer's worth, but slow: halved
    planner.observe(win, Answer(win, 1_000_000, more=True, seconds=0.1))
    assert planner.size == GiB // GROWTH  # far too dense: shrinks, at most GROWTH times
    planner.observe(win, Answer(win, 10**9, more=True, seconds=0.1))
    planner.observe(Range(0, 64 * MiB), Answer(Range(0, 64 * MiB), 10**9, more=True, seconds=0.1))
    assert planner.size == 64 * MiB  # never below the smallest window


@given(
    pages=st.integers(1, 1 << 20),
    ranges=st.integers(0, 100_000),
    more=st.booleans(),
    seconds=st.floats(0, 60),
)
def test_an_answer_shrinks_the_next_window_when_dense_or_slow_and_grows_it_when_small_and_quick(
    pages: int, ranges: int, more: bool, seconds: float
) -> None:
    planner = WindowPlanner(0, 64 * TiB, smallest=64 * MiB, page=10_000)
    span = Range(0, pages * PAGE)
    planner.observe(span, Answer(span, ranges, more, seconds))
    assert 64 * MiB <= planner.size <= 64 * TiB and planner.size % PAGE == 0
    if more or ranges > 5_000 or seconds > SLOW_SECONDS:
        assert planner.size <= max(64 * MiB, span.length)
    elif ranges <= 5_000 // GROWTH:
        assert planner.size >= min(64 * TiB, max(64 * MiB, GROWTH * span.length // PAGE * PAGE))


def test_a_timed_out_window_is_given_back_or_split_in_aligned_halves_down_to_the_smallest() -> None:
    planner = WindowPlanner(0, 4 * GiB, largest=GiB, smallest=64 * MiB)
    first, second = planner.next(), planner.next()
    assert first == Range(0, GiB) and second == Range(GiB, 2 * GiB)
    # later windows were handed out: the caller lists the halves itself, in order
    assert planner.timed_out(first, first) == (Range(0, GiB // 2), Range(GiB // 2, GiB))
    assert planner.size == GiB // 2
    # the last window handed out: its rest is given back, and handed out in half-size windows
    assert planner.timed_out(second, Range(GiB + MiB, 2 * GiB)) == ()
    assert planner.next() == Range(GiB + MiB, GiB + MiB + 1023 * MiB // 2)  # half of the 1023 MiB rest
    odd = Range(PAGE, 3 * PAGE + 128 * MiB)
    assert planner.timed_out(first, odd) == (
        Range(PAGE, 2 * PAGE + 64 * MiB),
        Range(2 * PAGE + 64 * MiB, odd.end),
    )
    assert planner.timed_out(first, Range(0, 64 * MiB)) is None
    assert planner.size == 64 * MiB + PAGE  # the half of the odd rest; a refused split changes nothing


def test_a_window_with_later_windows_handed_out_keeps_its_marker() -> None:
    planner = WindowPlanner(0, 4 * GiB, largest=GiB)
    first, second = planner.next(), planner.next()
    assert first is not None and second is not None
    assert not planner.observe(first, Answer(Range(0, MiB), 10_000, more=True, seconds=0.1))
    assert planner.next() == Range(2 * GiB, 2 * GiB + 64 * MiB)


def test_bad_arguments_are_refused() -> None:
    for args in [(100, 512), (0, 1000), (1024, 512)]:
        with pytest.raises(ValueError):
            WindowPlanner(*args)
    with pytest.raises(ValueError):
        WindowPlanner(0, GiB, largest=0)
