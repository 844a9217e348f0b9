"""The pacer's controller (replicator.core.pacing): never over the ceiling nor under 1, cut at once by a
throttled window, grows while throughput grows and nothing is throttled, holds at the knee, and, on
a modelled blob, settles between its knee and the load it throttles at; a window in which the process
was CPU-bound never grows the limit (at or above INITIAL) and changes nothing else."""

from __future__ import annotations

from dataclasses import replace

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
    # the loop's busy seconds: idle, or anything up to two cores' worth of a long window
    # (time.process_time, the fallback busy clock, counts every thread)
    busy_seconds=st.one_of(st.just(0.0), st.floats(0.0, 10.0)),
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


def idle(seen: Observation) -> Observation:
    """The same window with the process's event loop idle all along."""
    return replace(seen, busy_seconds=0.0)


def cpu_bound(seen: Observation, share: float) -> Observation:
    """The same window, made CPU-bound (`share` of one core, at least the threshold) if it has a length."""
    return replace(seen, busy_seconds=seen.seconds * max(share, pacing.CPU_BOUND))


@given(states(), observations, st.floats(0.0, 2.0))
def test_a_cpu_bound_window_never_grows_the_limit_and_changes_nothing_else(
    state: PacerState, seen: Observation, share: float
) -> None:
    """The CPU rule only withholds growth: never a cut (503s remain the only one), never below INITIAL,
    and the rest of the state moves as in the same window with the loop idle."""
    seen = cpu_bound(seen, share)
    after, without = pacing.step(state, seen), pacing.step(state, idle(seen))
    if seen.seconds > 0 and state.limit >= pacing.INITIAL:
        assert after.limit <= state.limit
        assert after == replace(without, limit=min(without.limit, state.limit))
    else:  # an instant window has no share; below INITIAL the limit recovers whatever the CPU
        assert after == without
    assert pacing.held_for_cpu(state, seen) == (after.limit == state.limit < without.limit)


@given(states(), observations, st.floats(0.0, 1.0, exclude_max=True))
def test_below_the_cpu_threshold_a_window_moves_the_limit_as_if_the_loop_were_idle(
    state: PacerState, seen: Observation, fraction: float
) -> None:
    seen = replace(seen, busy_seconds=seen.seconds * pacing.CPU_BOUND * fraction)
    assert pacing.step(state, seen) == pacing.step(state, idle(seen))
    assert not pacing.held_for_cpu(state, seen)


def test_a_cpu_bound_client_holds_where_noisy_windows_would_climb() -> None:
    """The premium run: windows whose throughput seems to grow (the machine's other load easing) while
    the process's loop is busy throughout climb to the ceiling by throughput alone, and hold by CPU."""
    climbed, held = pacing.start(192), pacing.start(192)
    for window in range(20):
        seen = Observation(held.limit, 0, 1 / 1.6**window, busy_seconds=0.95 / 1.6**window)
        climbed, held = pacing.step(climbed, idle(seen)), pacing.step(held, seen)
    assert climbed.limit == 192
    assert held.limit == pacing.start(192).limit == 24


def test_the_record_counts_the_windows_the_cpu_held() -> None:
    """Throughput that doubles each window: one with the loop half idle grows 8 -> 16, the next two are
    CPU-bound and hold, and one that was not worth growing in anyway (as fast as the last) is not
    counted."""
    state, record = pacing.start(64), pacing.PacingRecord.at(8)
    for seconds, busy in ((1.0, 0.5), (0.5, 0.45), (0.25, 0.25), (0.25, 0.25)):
        seen = Observation(state.limit, 0, seconds, busy_seconds=busy)
        record.closed(state, seen, 0.0)
        state = pacing.step(state, seen)
    assert state.limit == 16 and (record.cpu_held, record.cpu_share) == (2, 1.0)


@given(st.lists(observations, max_size=700), ceilings)
def test_the_trace_is_bounded_ordered_and_evenly_strided(seen: list[Observation], ceiling: int) -> None:
    """However many windows close, the trace keeps at most TRACE_POINTS of them, in time order, the
    first window always, and exactly the windows whose index is a multiple of its stride, each with
    the limit that window ran under and its rate."""
    state, record, clock, ran_under = pacing.start(ceiling), pacing.PacingRecord.at(1), 0.0, []
    for window in seen:
        clock += window.seconds
        record.closed(state, window, clock)
        ran_under.append([round(clock, 3), state.limit, round(window.rate, 1)])
        state = pacing.step(state, window)
    assert record.windows == len(seen)
    assert len(record.trace) <= pacing.TRACE_POINTS
    assert record.trace == ran_under[:: record.trace_every]
    assert record.trace_every == 1 or len(record.trace) > pacing.TRACE_POINTS // 2


def test_a_long_run_keeps_its_whole_span_in_the_trace() -> None:
    """Ten thousand windows of a second each: the trace still spans the run from its first window to
    within one stride of its last, in at most TRACE_POINTS points."""
    state, record = pacing.start(64), pacing.PacingRecord.at(8)
    for window in range(10_000):
        record.closed(state, Observation(8, 0, 1.0), float(window + 1))
    assert record.trace[0][0] == 1.0 and 10_000 - record.trace[-1][0] < record.trace_every
    assert record.trace_every == 64 and len(record.trace) == 157


def test_the_schema_bounds_the_trace_as_the_record_does() -> None:
    """The `--json` schema's bound on a job's trace is TRACE_POINTS, so a document never fails it."""
    import json
    from pathlib import Path

    import replicator

    schema = json.loads((Path(replicator.__file__).parent / "schema" / "envelope.schema.json").read_text())

    def traces(node: object) -> list[dict[str, object]]:
        if isinstance(node, dict):
            found = [node["trace"]] if isinstance(node.get("trace"), dict) else []
            return found + [t for value in node.values() for t in traces(value)]
        return [t for value in node for t in traces(value)] if isinstance(node, list) else []

    [trace] = traces(schema)
    assert trace["maxItems"] == pacing.TRACE_POINTS
