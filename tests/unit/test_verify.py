"""The verifier's own range union: it reads exactly the bytes either side holds, so `--verify` proves
the copy without sharing code with the planner that made it."""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import AsyncIterator

import pytest
from hypothesis import given
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
