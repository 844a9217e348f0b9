"""The pacer's controller (replicator.core.pacing): never over the ceiling nor under 1, cut at once by a
throttled window, grows while throughput grows and nothing is throttled, holds at the knee, and, on
a modelled blob, settles between its knee and the load it throttles at."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from replicator.core import pacing
from replicator.core.pacing import Observation, PacerState

ceilings = st.integers(1, 64)
observations = st.builds(
    Observation,
    completed=st.integers(1, 200),
    throttled=st.integers(0, 3),
    # an instant window (0 s) or one of a millisecond or more: a subnormal length would make a rate
    # of infinity, which no monotonic clock measures and no window can then outgrow
    seconds=st.one_of(st.just(0.0), st.floats(1e-3, 5.0)),
    full=st.booleans(),
)


@st.composite
def states(draw: st.DrawFn) -> PacerState:
    """Any state `step` can reach: a run of random windows from the start."""
    state = pacing.start(draw(ceilings))
    for seen in draw(st.lists(observations, max_size=30)):
        state = pacing.step(state, seen)
    return state


@given(states(), observations)
def test_the_limit_stays_between_one_and_the_ceiling(state: PacerState, seen: Observation) -> None:
    after = pacing.step(state, seen)
    assert 1 <= after.limit <= after.ceiling == state.ceiling


@given(states(), observations)
def test_a_throttled_window_cuts_the_limit_at_once(state: PacerState, seen: Observation) -> None:
    if not seen.throttled:
        seen = Observation(seen.completed, 1, seen.seconds, seen.full)
    after = pacing.step(state, seen)
    assert after.limit < state.limit or after.limit == state.limit == 1
    assert after.limit >= int(state.limit * pacing.DECREASE)  # no deeper than AzCopy's cut
    assert after.peak == state.limit


@given(states(), st.integers(1, 100), st.floats(0.01, 5.0))
def test_a_clean_full_window_with_throughput_grown_with_the_limit_grows_it(
    state: PacerState, completed: int, seconds: float
) -> None:
    seen = Observation(completed, 0, seconds)
    if state.last_rate is not None:  # make this window's rate at least what the growth asks
        seen = Observation(completed, 0, completed / (state.last_rate * pacing.GAIN * state.limit + 1))
    after = pacing.step(state, seen)
    assert after.limit > state.limit or state.limit == state.ceiling


@given(states(), st.integers(1, 100), st.floats(0.01, 5.0))
def test_a_clean_window_without_more_throughput_holds(
    state: PacerState, completed: int, seconds: float
) -> None:
    seen = Observation(completed, 0, seconds)
    if state.last_rate is None or seen.rate >= state.last_rate:
        return  # only a window no faster than the last one is asked about here
    assert pacing.step(state, seen).limit == state.limit


@given(states(), observations)
def test_a_window_that_never_filled_the_limit_moves_nothing_but_forgets_the_rate(
    state: PacerState, seen: Observation
) -> None:
    seen = Observation(seen.completed, 0, seen.seconds, full=False)
    after = pacing.step(state, seen)
    assert after.limit == state.limit and after.last_rate is None


def test_the_first_limit_is_initial_or_the_ceiling() -> None:
    assert pacing.start(64).limit == pacing.INITIAL
    assert pacing.start(3).limit == 3
    with pytest.raises(ValueError, match="at least 1"):
        pacing.start(0)


def test_slow_start_doubles_while_throughput_doubles() -> None:
    state, rtt = pacing.start(64), 0.06
    limits = [state.limit]
    for _ in range(4):  # a blob far from its limits: the rate is the limit over the round trip
        state = pacing.step(state, Observation(state.limit, 0, rtt))
        limits.append(state.limit)
    assert limits == [8, 16, 32, 64, 64]


def blob_window(limit: int, knee: int, overload: int) -> Observation:
    """A modelled blob: throughput proportional to the requests in flight up to `knee`, flat past it
    (the rest queue), and throttled past `overload` (its backlog is full)."""
    return Observation(limit, int(limit > overload), limit / min(limit, knee))


@given(ceilings, st.integers(1, 64), st.integers(1, 64))
def test_on_a_modelled_blob_the_limit_settles_between_the_knee_and_the_overload(
    ceiling: int, knee: int, spare: int
) -> None:
    """A blob whose backlog holds as much again as its knee (Azure: 500 requests/s and about a second
    of backlog) is paced to a limit that reaches the knee and throttles no more."""
    overload = knee + max(spare, knee)
    state = pacing.start(ceiling)
    for _ in range(200):
        state = pacing.step(state, blob_window(state.limit, knee, overload))
    settled = state.limit
    for _ in range(20):
        state = pacing.step(state, blob_window(state.limit, knee, overload))
        assert state.limit == settled
    assert min(knee, ceiling) <= settled <= min(overload, ceiling)
