"""The verifier's own range union: it reads exactly the bytes either side holds, so `--verify` proves
the copy without sharing code with the planner that made it."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from replicator.core.ranges import Range
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
