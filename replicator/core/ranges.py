"""Pure range arithmetic and write planning: integers in, integers out, no I/O.

Why a module of its own: a wrong offset is silent data loss, so everything that computes one lives
here, imports neither asyncio nor Azure, and is property-tested (tests/unit/test_ranges.py).

Conventions:

- Ranges are half-open, `[start, end)`, everywhere. Azure speaks inclusive ends (`bytes=a-b`, and
  the `Start`/`End` of a `PageRange`); `to_http_range` and `from_azure` are the only two places
  that convert, so an off-by-one can only hide in one of them.
- Every function validates its input and raises ValueError with the offending values (unaligned,
  unsorted or overlapping input, empty ranges) instead of computing a plausible wrong answer.
- Everything streams: functions take iterables and return generators holding at most one pending
  range, so memory does not grow with disk size or with the number of changed ranges.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Literal

PAGE = 512
"""Page blob granularity: every page write and clear starts and ends on a multiple of 512 bytes."""

MAX_WRITE = 4 * 1024 * 1024
"""Largest body of one Put Page or Put Page From URL (4 MiB, a service limit)."""

OpKind = Literal["copy", "clear"]


@dataclass(frozen=True, slots=True, order=True)
class Range:
    """The bytes `[start, end)` of a disk or blob; never empty (`0 <= start < end`)."""

    start: int
    end: int

    def __post_init__(self) -> None:
        if not (isinstance(self.start, int) and isinstance(self.end, int)):
            raise ValueError(f"range bounds must be integers, got [{self.start!r}, {self.end!r})")
        if not 0 <= self.start < self.end:
            raise ValueError(f"range [{self.start}, {self.end}) is empty or negative; need 0 <= start < end")

    @property
    def length(self) -> int:
        """Number of bytes in the range."""
        return self.end - self.start

    def __str__(self) -> str:
        return f"[{self.start}, {self.end})"


def to_http_range(r: Range) -> str:
    """The `Range`/`x-ms-range` header value for `r`: `bytes=start-(end-1)` (HTTP ends are inclusive)."""
    return f"bytes={r.start}-{r.end - 1}"


def from_azure(start: int, end_inclusive: int) -> Range:
    """The half-open range of an Azure `PageRange`/`ClearRange` element, whose `End` is inclusive."""
    if end_inclusive < start:
        raise ValueError(f"Azure range {start}-{end_inclusive} ends before it starts")
    return Range(start, end_inclusive + 1)


@dataclass(frozen=True, slots=True)
class Change:
    """One element of a page-range listing: data to copy (`PageRange`) or bytes to zero (`ClearRange`)."""

    range: Range
    clear: bool

    def __post_init__(self) -> None:
        if not isinstance(self.range, Range) or not isinstance(self.clear, bool):
            raise ValueError(f"Change needs a Range and a bool, got {self.range!r}, {self.clear!r}")


@dataclass(frozen=True, slots=True)
class Op:
    """One write to the target: copy the source's bytes of `range`, or clear (zero) them."""

    kind: OpKind
    range: Range

    def __post_init__(self) -> None:
        if self.kind not in ("copy", "clear") or not isinstance(self.range, Range):
            raise ValueError(
                f"Op needs kind 'copy' or 'clear' and a Range, got {self.kind!r}, {self.range!r}"
            )


def _check_aligned(name: str, value: int, align: int) -> None:
    if value % align:
        raise ValueError(f"{name} {value} is not a multiple of {align}")


def _ordered(changes: Iterable[Change]) -> Iterator[Change]:
    """Pass `changes` through, raising ValueError at the first one that is unsorted or overlapping.

    Touching ranges (`prev.end == next.start`) are fine. Why enforce it: every consumer below holds
    only the previous range, which is correct only for sorted, disjoint input.
    """
    prev: Change | None = None
    for change in changes:
        if prev is not None and change.range.start < prev.range.end:
            problem = "unsorted" if change.range.start < prev.range.start else "overlapping"
            raise ValueError(f"{problem} ranges: {change.range} follows {prev.range}")
        yield change
        prev = change


LIST_PREFETCH = 8
"""Listing windows in flight at once (listing.list_changes): a fragmented disk, once its windows have
shrunk to hold about one answer each (core.listwindows), lists 8 windows per round trip, and memory
stays at 8 answers (each at most 10,000 ranges). Stated by the --list-window knob
(settings.knobs.KNOBS), which the docs' knob table is generated from."""


def coalesce(changes: Iterable[Change], max_gap: int = 0) -> Iterator[Change]:
    """Merge touching changes of the same kind; with `max_gap > 0` also copies `max_gap` bytes apart.

    Why: a fragmented diff arrives as many small ranges, and each op is one request against a
    per-blob budget of about 500 requests/s. Touching same-kind ranges always merge (a listing
    split by windows or `NextMarker` pages comes back whole). A copy and a clear never merge.

    `max_gap` trades bytes for requests: copies separated by at most `max_gap` bytes become one,
    and the gap's bytes get copied too. That is only safe where the target already holds the
    source's bytes in the gap, which is true for a diff against the base the target holds (the
    gap is unchanged) but not for arbitrary input. Input must be sorted and non-overlapping.
    """
    if max_gap < 0:
        raise ValueError(f"max_gap must be >= 0, got {max_gap}")
    pending: Change | None = None
    for change in _ordered(changes):
        if pending is not None and pending.clear == change.clear:
            gap = change.range.start - pending.range.end
            if gap == 0 or (not change.clear and gap <= max_gap):
                pending = Change(Range(pending.range.start, change.range.end), change.clear)
                continue
        if pending is not None:
            yield pending
        pending = change
    if pending is not None:
        yield pending


def _aligned(changes: Iterable[Change], align: int) -> Iterator[Change]:
    """Pass `changes` through, raising ValueError at the first one not aligned to `align`.

    Checked before coalescing, so two unaligned pieces that happen to touch cannot hide a bug.
    """
    for change in changes:
        if change.range.start % align or change.range.end % align:
            kind = "clear" if change.clear else "copy"
            raise ValueError(f"{kind} range {change.range} is not aligned to {align} bytes")
        yield change


def _chunks(r: Range, max_write: int) -> Iterator[Range]:
    """`r` as one range if it fits in `max_write`, else cut at every multiple of `max_write` inside it.

    Cutting at absolute multiples (not at `r.start + k * max_write`) means a run resumed at any
    chunk boundary plans the very same chunks as the run it resumes.
    """
    if r.length <= max_write:
        yield r
        return
    pos = r.start
    while pos < r.end:
        end = min((pos // max_write + 1) * max_write, r.end)
        yield Range(pos, end)
        pos = end


def plan(changes: Iterable[Change], *, max_write: int = MAX_WRITE, align: int = PAGE) -> Iterator[Op]:
    """Turn a sorted listing into the writes that replay it on the target, in offset order.

    - touching changes of the same kind are coalesced (pass `coalesce(changes, max_gap)` to also
      bridge small gaps between copies);
    - a copy longer than `max_write` (the 4 MiB Put Page limit) is split at multiples of
      `max_write`, so every chunk is aligned and a resumed run plans identical chunks; a copy that
      fits stays one op even across such a multiple, to save a request;
    - a clear is one op however long (Put Page with `x-ms-page-write: clear` has no size limit);
    - every op is aligned to `align`; unaligned input raises ValueError rather than being widened,
      because widening would copy or clear bytes the listing did not name.

    Streaming: memory is one coalesced range, whatever the number of changes.
    """
    if align <= 0 or max_write <= 0:
        raise ValueError(f"align and max_write must be positive, got {align} and {max_write}")
    _check_aligned("max_write", max_write, align)
    for change in coalesce(_aligned(changes, align)):
        if change.clear:
            yield Op("clear", change.range)
        else:
            for chunk in _chunks(change.range, max_write):
                yield Op("copy", chunk)


def clip(changes: Iterable[Change], start: int, end: int) -> Iterator[Change]:
    """The parts of `changes` inside `[start, end)`, cut at its edges.

    Why: a listing window or a resumed run (start = checkpoint) may return ranges that reach
    outside the part still to do. Input must be sorted and non-overlapping.
    """
    if not 0 <= start <= end:
        raise ValueError(f"clip window [{start}, {end}) is invalid; need 0 <= start <= end")
    if start == end:
        return
    for change in _ordered(changes):
        r = change.range
        if r.start >= end:
            return
        if r.end > start:
            yield Change(Range(max(r.start, start), min(r.end, end)), change.clear)


def fill_gaps(changes: Iterable[Change], start: int, end: int) -> Iterator[Change]:
    """`changes` inside `[start, end)`, with a clear change for every byte of it they do not cover.

    Why: a full copy (no base, or a diff Azure refuses across the 4 TiB resize) copies the
    source's valid ranges, and the target may hold stale data everywhere else; this yields one
    sorted stream of copies and clears that makes the target equal to the source over the window.
    """
    pos = start
    for change in clip(changes, start, end):
        if change.range.start > pos:
            yield Change(Range(pos, change.range.start), clear=True)
        yield change
        pos = change.range.end
    if pos < end:
        yield Change(Range(pos, end), clear=True)


def window_start(offset: int, window: int) -> int:
    """The start of the listing window (edges on multiples of `window`) that holds `offset`.

    Why: a resumed run lists and plans from the grid line (`--list-window`) below its checkpoint, so
    it re-lists at most one grid cell before its checkpoint and its watermark starts where its plan
    does (the listing windows after it adapt: core.listwindows).
    """
    if window <= 0 or offset < 0:
        raise ValueError(f"need offset >= 0 and window > 0, got {offset} and {window}")
    return offset // window * window


class StreamPlanner:
    """The plan of a listing that arrives in batches, equal to planning the whole listing at once.

    Feeding the batches of a listing of `[start, end)` and then calling `finish` yields exactly the
    ops of `plan(coalesce(listing, merge_gap))` over the whole listing clipped to `[start, end)`
    (with `fill`, over `fill_gaps(listing, start, end)`), in the same order. Why a class: the listing
    streams (windows x NextMarker pages) and is planned a batch at a time to bound memory, but the
    last change of a batch may touch, or lie within `merge_gap` of, the first change of the next
    one. So the last coalesced change of each batch is held back until a later batch (or `finish`)
    shows it cannot grow. Memory: one batch and one held change.

    `fill` (a full copy into a target that may hold data): every byte of `[start, end)` the listing
    does not cover becomes a clear. `merge_gap`: see `coalesce` (only safe for a diff).
    """

    def __init__(self, start: int, end: int, *, merge_gap: int = 0, fill: bool = False) -> None:
        if not 0 <= start <= end:
            raise ValueError(f"plan window [{start}, {end}) is invalid; need 0 <= start <= end")
        if merge_gap < 0:
            raise ValueError(f"merge_gap must be >= 0, got {merge_gap}")
        self._pos, self._end, self._merge_gap, self._fill = start, end, merge_gap, fill
        self._held: list[Change] = []

    def feed(self, batch: Iterable[Change]) -> tuple[int, Iterator[Op]]:
        """Take the next batch of the listing; return its copy bytes inside the window and its ops.

        The bytes are what the listing names as data (before gap merging), so a summary can tell
        changed bytes from merged gaps. The ops are those this batch completes (all but the held
        change); they are planned lazily, because one change may be terabytes of 4 MiB chunks, but
        the planner's own state is already advanced, so the next `feed` may come before they are read.
        """
        fresh = list(clip(batch, self._pos, self._end))
        if not fresh:
            return 0, iter(())
        listed = sum(c.range.length for c in fresh if not c.clear)
        if self._fill:
            fresh = list(fill_gaps(fresh, self._pos, fresh[-1].range.end))
        self._pos = fresh[-1].range.end
        items = list(coalesce(self._held + fresh, self._merge_gap))
        self._held = items[-1:]
        return listed, plan(items[:-1])

    def finish(self) -> Iterator[Op]:
        """The ops of the held change and, with `fill`, of the clear from the listing's end to `end`."""
        tail = list(fill_gaps((), self._pos, self._end)) if self._fill else []
        held, self._held = self._held, []
        return plan(held + tail)


def complement(ranges: Iterable[Range], start: int, end: int) -> Iterator[Range]:
    """The parts of `[start, end)` that `ranges` (sorted, non-overlapping) do not cover."""
    for change in fill_gaps((Change(r, clear=False) for r in ranges), start, end):
        if change.clear:
            yield change.range


def total_bytes(items: Iterable[Range | Change | Op]) -> int:
    """Sum of the lengths of ranges, changes or ops; for progress totals and summaries."""
    return sum((item if isinstance(item, Range) else item.range).length for item in items)


class Watermark:
    """The resume checkpoint: the offset below which every issued op has completed.

    Ops are issued in increasing offset order but complete in any order (N workers); only
    `low()` is safe to record as the checkpoint, because every byte below it is written and a
    resumed run re-plans from there. Memory is one entry per op in flight (issued, not done).
    """

    def __init__(self, start: int) -> None:
        if start < 0:
            raise ValueError(f"watermark start must be >= 0, got {start}")
        self._issued_end = start
        # start -> end of ops in flight. Insertion order is offset order (ops are issued sorted),
        # so the first key is the lowest op in flight; deleting any key is O(1).
        self._in_flight: dict[int, int] = {}

    def issued(self, r: Range) -> None:
        """Record that the op covering `r` was handed to a worker; `r` must not start below any earlier op."""
        if r.start < self._issued_end:
            raise ValueError(
                f"op {r} issued out of order: an op up to {self._issued_end} was issued before it"
            )
        self._in_flight[r.start] = r.end
        self._issued_end = r.end

    def done(self, r: Range) -> None:
        """Record that the op covering `r` completed; `r` must be an issued op not yet done."""
        if self._in_flight.get(r.start) != r.end:
            raise ValueError(f"op {r} completed but is not in flight")
        del self._in_flight[r.start]

    def low(self) -> int:
        """Every byte below this offset that any issued op covered is written (the resume point)."""
        return next(iter(self._in_flight), self._issued_end)

    @property
    def in_flight(self) -> int:
        """Number of ops issued and not yet done (also the size of this object's state)."""
        return len(self._in_flight)
