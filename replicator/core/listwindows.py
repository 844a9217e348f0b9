"""Listing windows that adapt: as few Get Page Ranges requests as the service allows, pure.

Why windows at all: the service has a fixed time to build an answer, and "in a highly fragmented
page blob with a large number of writes" Get Page Ranges over the whole blob can exceed it and
fail (500 OperationTimedOut); the Azure Storage team's advice is to list such blobs in offset
segments ("Getting the Page Ranges of a Large Page Blob in Segments", Azure Storage blog: 150 MB
segments are safe for the most fragmented blob). AzCopy lists a page blob whole, once, without
retries, and copies everything when that fails (`ste/sender-pageBlobFromURL.go`, pageRangeOptimizer).
Why not fixed windows: a window costs a round trip whether it holds ranges or not, so an idle
8 TiB disk cut into 256 GiB windows paid 32 requests where one whole-disk listing answers.

How: the first window is as large as allowed (the whole disk), so an idle or lightly changed disk
is one request. Every answer is an observation (the offsets it accounts for, its range count,
whether a NextMarker came back, its seconds); the next window is sized so that it should hold half
an answer of ranges (GROWTH times larger or smaller at most per answer), halved after an answer
slower than SLOW_SECONDS. A window whose answer came back with a NextMarker while no later window
was handed out yet gives the rest of itself back (`observe` returns True): the rest is listed as
windows of the new size, concurrently, instead of marker after marker. A window that timed out is
given back the same way in windows of at most half its rest, or, when later windows were handed
out already, split in halves its caller lists in order (`timed_out`), down to `smallest`.

Invariants (tests/unit/test_listwindows.py, hypothesis): the windows handed out, with the rests
given back and the halves of timeouts, cover `[start, end)` exactly once in offset order; every
window is 512-byte aligned, non-empty and at most `largest` bytes; a window shrinks after a
slow, dense or timed-out answer and grows after small quick ones.
"""

from __future__ import annotations

from dataclasses import dataclass

from replicator.core.ranges import PAGE, Range

MiB = 1024 * 1024
TiB = 1024 * 1024 * MiB

LARGEST_WINDOW = 64 * TiB
"""The largest window: the largest disk Azure makes (Ultra and Premium SSD v2), so one request
lists any idle disk whole."""

SMALLEST_WINDOW = 64 * MiB
"""A window that still times out below this fails the listing: under the 150 MB the Azure Storage
blog calls safe for the most fragmented page blob, and an 8 TiB disk has 131,072 of them, so a
split never recurses more than 20 times."""

SERVICE_PAGE = 10_000
"""Ranges per answer when `maxresults` is not sent (Get Page Ranges, REST reference)."""

SLOW_SECONDS = 10.0
"""An answer slower than this halves the windows after it: the service's own limit to build an
answer is not published, so the planner backs off long before a typical client timeout."""

GROWTH = 4
"""Windows grow or shrink at most this factor per answer, so one odd answer cannot swing the size."""


@dataclass(frozen=True, slots=True)
class Answer:
    """One Get Page Ranges answer as the planner sees it.

    `span`: the offsets it accounts for, from where the answer began to the end of its last range
    (with a NextMarker) or to the end of its window (without one). `ranges`: page and clear ranges
    in it. `more`: a NextMarker came back. `seconds`: how long the request took.
    """

    span: Range
    ranges: int
    more: bool
    seconds: float


class WindowPlanner:
    """Hands out the listing windows of `[start, end)` in offset order and sizes them from answers."""

    def __init__(
        self,
        start: int,
        end: int,
        *,
        largest: int = LARGEST_WINDOW,
        smallest: int = SMALLEST_WINDOW,
        page: int = SERVICE_PAGE,
    ) -> None:
        for name, value in (("start", start), ("end", end), ("largest", largest), ("smallest", smallest)):
            if value < 0 or value % PAGE:
                raise ValueError(f"{name} must be a non-negative multiple of {PAGE}, got {value}")
        if not (start <= end and smallest > 0 and largest > 0 and page > 0):
            raise ValueError(
                f"need start <= end, positive sizes and page; got {start}, {end}, {largest}, {page}"
            )
        self.end = end
        self.largest = largest
        self.smallest = min(smallest, largest)
        self.target = max(1, page // 2)  # ranges a window should hold: half an answer, a margin
        self.cursor = start  # where the next window starts
        self.size = largest  # the next window's size

    def next(self) -> Range | None:
        """The next window to list, or None when every offset up to `end` was handed out."""
        if self.cursor >= self.end:
            return None
        window = Range(self.cursor, min(self.end, self.cursor + self.size))
        self.cursor = window.end
        return window

    def observe(self, window: Range, answer: Answer) -> bool:
        """Size the windows after `answer` (of `window`); True when the caller should stop following
        its NextMarker because the rest of the window, `[answer.span.end, window.end)`, was given back
        to be handed out again (only while no later window was handed out, so order is kept)."""
        span = answer.span.end - answer.span.start
        wanted = span * self.target // max(answer.ranges, 1)
        wanted = max(span // GROWTH, min(wanted, span * GROWTH))
        if answer.more:  # the service had more than one answer's worth: never larger than this span
            wanted = min(wanted, span)
        if answer.seconds > SLOW_SECONDS:
            wanted = min(wanted, span // 2)
        self.size = self._clamp(wanted)
        give_back = (
            answer.more
            and self.cursor == window.end
            and window.start < answer.span.end < window.end
            and self.size < window.end - answer.span.end
        )
        if give_back:
            self.cursor = answer.span.end
        return give_back

    def can_split(self, rest: Range) -> bool:
        """Whether a timeout of `rest` would split it (`timed_out`): it is larger than `smallest`."""
        return rest.end - rest.start > self.smallest

    def timed_out(self, window: Range, rest: Range) -> tuple[Range, ...] | None:
        """What to list instead of `rest`, the part of `window` not answered yet, which timed out.

        Nothing, when no later window was handed out yet: the rest is given back and handed out
        again in windows of at most half its size (listed concurrently). Else its two halves, which
        the caller lists in order before the windows after it. None when `rest` is `smallest` or
        less: the listing fails.
        """
        if not self.can_split(rest):
            return None
        middle = rest.start + (rest.end - rest.start) // 2 // PAGE * PAGE
        self.size = self._clamp(min(self.size, middle - rest.start))
        if self.cursor == window.end:
            self.cursor = rest.start
            return ()
        return Range(rest.start, middle), Range(middle, rest.end)

    def _clamp(self, size: int) -> int:
        return max(self.smallest, min(self.largest, size // PAGE * PAGE))
