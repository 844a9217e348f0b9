"""What a striped restore relies on of core.stripes and core.ranges.plan: a range listed in a stripe's
own offsets, moved to the export's (`to_export`) and planned into writes, gives writes that each lie in
that one stripe and map back (`split`) to the very bytes listed."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from replicator.core.ranges import PAGE, Change, Op, Range, plan
from replicator.core.stripes import layout, split, to_export

TIB = 1024**4
EXPORT = 32 * TIB + PAGE  # the largest upload: 32 TiB and its VHD footer, five stripes


@st.composite
def listed(draw: st.DrawFn) -> tuple[int, Range]:
    """A stripe of EXPORT and a page-aligned range in its own offsets."""
    stripe = draw(st.sampled_from(layout(EXPORT)))
    pages = stripe.length // PAGE
    start = draw(st.integers(0, pages - 1))
    end = draw(st.integers(start + 1, min(pages, start + 64 * 1024)))  # up to 32 MiB: several writes
    return stripe.index, Range(start * PAGE, end * PAGE)


@given(listed())
def test_planned_writes_stay_in_their_stripe_and_map_back(case: tuple[int, Range]) -> None:
    index, r = case
    stripe = layout(EXPORT)[index]
    back = []
    for op in plan([Change(to_export(stripe, r), False)]):
        [(where, local)] = split(op)
        assert where == index
        back.append(local.range)
    assert back[0].start == r.start and back[-1].end == r.end
    assert all(a.end == b.start for a, b in itertools.pairwise(back))


def test_a_range_past_its_stripe_is_refused() -> None:
    last = layout(EXPORT)[-1]
    with pytest.raises(ValueError, match="not within stripe"):
        to_export(last, Range(0, 2 * PAGE))
    assert split(Op("copy", to_export(last, Range(0, PAGE)))).__next__() == (
        last.index,
        Op("copy", Range(0, PAGE)),
    )
