"""The verifier's own range union: it reads exactly the bytes either side holds, so `--verify` proves
the copy without sharing code with the planner that made it."""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from replicator.core.ranges import MAX_WRITE, Range
from replicator.engine import verify
from replicator.engine.verify import union


@given(
    st.lists(st.integers(0, 60), max_size=12, unique=True),
    st.lists(st.integers(0, 60), max_size=12, unique=True),
)
def test_union_covers_exactly_the_bytes_of_either_side(xs: list[int], ys: list[int]) -> None:
    def as_ranges(points: list[int]) -> list[Range]:
        pts = sorted(points)
        return [Range(pts[i], pts[i + 1]) for i in range(0, len(pts) - 1, 2)]

    a, b = as_ranges(xs), as_ranges(ys)
    merged = list(union(a, b))
    covered = {x for r in merged for x in range(r.start, r.end)}
    assert covered == {x for r in a + b for x in range(r.start, r.end)}
    assert all(p.end < q.start for p, q in itertools.pairwise(merged))


def test_union_rejects_overlapping_input() -> None:
    with pytest.raises(ValueError, match="first range list"):
        list(union([Range(0, 10), Range(5, 20)], []))


async def test_the_copys_reads_hold_a_slot_and_the_sources_do_not(monkeypatch: pytest.MonkeyPatch) -> None:
    entered, inside = 0, 0
    reads: list[tuple[str, bool]] = []

    @contextlib.asynccontextmanager
    async def slot() -> AsyncIterator[None]:  # the target's pacer slot, as JobRunner._verify passes it
        nonlocal entered, inside
        entered, inside = entered + 1, inside + 1
        try:
            yield
        finally:
            inside -= 1

    async def read(client: str, r: Range) -> bytes:
        reads.append((client, inside > 0))
        return b"\0" * r.length

    monkeypatch.setattr(verify, "read_range", read)
    regions = [Range(0, 8 * MAX_WRITE + 512)]  # nine chunks
    compared, mismatch = await verify.compare_regions("source", "target", regions, slot=slot)  # type: ignore[arg-type]
    assert (compared, mismatch) == (regions[0].length, None)
    assert entered == 9 and sorted(c for c, _ in reads) == ["source"] * 9 + ["target"] * 9
    assert all(held for client, held in reads if client == "target")


class _Blob:
    """A page blob in memory: its bytes, and its valid pages (512-byte) as the service lists them."""

    def __init__(self, data: bytes, valid: set[int]) -> None:
        self.data, self.valid = data, valid

    async def get_blob_properties(self) -> Any:
        return SimpleNamespace(size=len(self.data))

    async def list_page_ranges(self, offset: int, length: int) -> AsyncIterator[Any]:
        for page in sorted(p for p in self.valid if offset <= p < offset + length):
            yield SimpleNamespace(start=page, end=page + 511, cleared=False)  # Azure's inclusive end


PAGES, WIDTH = 12, 4 * 512  # a 6 KiB export in stripes of 2 KiB: three stripes, 4 pages each


@given(
    st.sets(st.integers(0, PAGES - 1)),
    st.sets(st.integers(0, PAGES - 1)),
    st.integers(0, PAGES * 512 - 1),
    st.sampled_from([0, 512]),
    st.booleans(),
)
@example(set(), set(), PAGES * 512 - 1, 512, True)  # in the footer: not compared
@example(set(), set(), PAGES * 512 - 1, 0, False)  # the last byte, compared
@example({3, 4}, set(), WIDTH + 5, 512, True)  # one read spans the first boundary
@settings(max_examples=300, deadline=None, derandomize=True)
async def test_a_striped_side_is_compared_completely_but_its_tail(
    stripe_pages: set[int], whole_pages: set[int], flipped: int, tail: int, stripes_expected: bool
) -> None:
    """The disk made of a striped restore point (`whole`) against its stripes: every byte either side
    holds is compared, reads spanning a stripe boundary included, but for the last `tail` bytes; the
    first difference is found where it is."""
    export = bytes((i * 7 + 1) % 251 for i in range(PAGES * 512))
    valid = {p * 512 for p in stripe_pages}
    held = bytes(export[i] if i - i % 512 in valid else 0 for i in range(len(export)))
    copy = bytearray(held)  # the whole side holds the same bytes, its own pages listed, one byte changed
    copy[flipped] ^= 0xFF
    whole = _Blob(bytes(copy), {p * 512 for p in whole_pages} | valid | {flipped - flipped % 512})
    starts = range(0, PAGES * 512, WIDTH)
    parts = [_Blob(held[k : k + WIDTH], {p - k for p in valid if k <= p < k + WIDTH}) for k in starts]

    def route(r: Range) -> list[tuple[Any, Range]]:
        pieces, pos = [], r.start
        while pos < r.end:
            k = pos // WIDTH
            end = min(r.end, (k + 1) * WIDTH)
            pieces.append((parts[k], Range(pos - k * WIDTH, end - k * WIDTH)))
            pos = end
        return pieces

    async def read(client: _Blob, r: Range) -> bytes:
        return client.data[r.start : r.end]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(verify, "read_range", read)
        stripes = [(k, WIDTH, blob) for k, blob in zip(starts, parts, strict=True)]
        found = await verify.compare_striped(
            whole,  # type: ignore[arg-type]
            stripes,  # type: ignore[arg-type]
            route,  # type: ignore[arg-type]
            tail=tail,
            stripes_expected=stripes_expected,
        )
    in_tail = flipped >= len(export) - tail
    assert found.first_mismatch == (None if in_tail else flipped)
    assert found.equal == in_tail
    assert (found.expected_size, found.actual_size) == (len(export), len(export))


@pytest.mark.parametrize(("stripes_expected", "sizes"), [(False, (512, 1024)), (True, (1024, 512))])
async def test_sizes_that_differ_are_reported_the_callers_way_round(
    stripes_expected: bool, sizes: tuple[int, int]
) -> None:
    """`--verify` reports the source (the whole blob) as expected, a drill the restore point (stripes)."""
    whole, part = _Blob(bytes(512), set()), _Blob(bytes(1024), set())
    found = await verify.compare_striped(
        whole,  # type: ignore[arg-type]
        [(0, 1024, part)],  # type: ignore[list-item]
        lambda r: [(part, r)],  # type: ignore[arg-type,list-item]
        stripes_expected=stripes_expected,
    )
    assert (found.expected_size, found.actual_size, found.bytes_compared, found.equal) == (*sizes, 0, False)
