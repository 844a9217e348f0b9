"""The account budget's arithmetic (replicator.core.account_budget), property-tested: the bucket never
lets more than its rate go over any window (plus its burst, or one larger request), serves requests in
the order they were made, starves no run that shares it; a cut is once per overload and regrowth climbs
back to the ceiling; the account's 503 messages are told from a blob's."""

from __future__ import annotations

import heapq
import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from replicator.core import account_budget
from replicator.core.account_budget import (
    BURST_SECONDS,
    DECREASE,
    MESSAGES,
    Bucket,
    BudgetRecord,
    admit,
    ceilings,
    cut,
    grow,
    limit_of,
    start,
)

EPS = 1e-6

rates = st.floats(min_value=1.0, max_value=5000.0)
arrivals = st.lists(
    st.tuples(st.floats(min_value=0.0, max_value=0.05), st.integers(min_value=1, max_value=400)),
    min_size=1,
    max_size=120,
)


def reserve(bucket: Bucket, now: float, cost: float) -> tuple[Bucket, float]:
    """One bucket's turn: the bucket after a request of `cost` made at `now`, and its wait."""
    turn = admit((bucket,), now, (cost,))
    return turn.buckets[0], turn.go - now


def _go_times(rate: float, requests: list[tuple[float, int]]) -> list[tuple[float, int]]:
    """(when each request goes, its cost), reserving at arrival times `gap` apart."""
    bucket, now, gone = Bucket.full(rate, 0.0), 0.0, []
    for gap, cost in requests:
        now += gap
        bucket, wait = reserve(bucket, now, cost)
        gone.append((now + wait, cost))
    return gone


@given(rates, arrivals)
@settings(max_examples=300, deadline=None)
def test_never_over_the_rate_over_any_window(rate: float, requests: list[tuple[float, int]]) -> None:
    gone = sorted(_go_times(rate, requests))
    allowance = max(rate * BURST_SECONDS, max(cost for _, cost in gone))
    for i, j in itertools.combinations_with_replacement(range(len(gone)), 2):
        start_at, end_at = gone[i][0], gone[j][0]
        taken = sum(cost for at, cost in gone if start_at <= at <= end_at)
        assert taken <= allowance + rate * (end_at - start_at) + EPS * max(1.0, taken)


@given(rates, arrivals)
@settings(max_examples=200, deadline=None)
def test_requests_go_in_the_order_they_were_made(rate: float, requests: list[tuple[float, int]]) -> None:
    times = [at for at, _ in _go_times(rate, requests)]
    assert all(a <= b + EPS for a, b in itertools.pairwise(times))


@given(
    requests_rate=rates,
    bytes_rate=st.floats(min_value=1000.0, max_value=1e6),
    made=st.lists(
        st.tuples(st.floats(min_value=0.0, max_value=0.05), st.integers(min_value=0, max_value=50_000)),
        min_size=1,
        max_size=80,
    ),
)
@settings(max_examples=300, deadline=None)
def test_every_limit_holds_over_any_window_when_requests_take_from_both(
    requests_rate: float, bytes_rate: float, made: list[tuple[float, int]]
) -> None:
    buckets, now, gone = (Bucket.full(requests_rate, 0.0), Bucket.full(bytes_rate, 0.0)), 0.0, []
    for gap, nbytes in made:
        now += gap
        turn = admit(buckets, now, (1, nbytes))
        buckets = turn.buckets
        assert turn.go >= now
        gone.append((turn.go, 1, nbytes))
    assert all(a[0] <= b[0] for a, b in itertools.pairwise(gone))  # first come, first served
    for limit, rate in ((1, requests_rate), (2, bytes_rate)):
        allowance = max(rate * BURST_SECONDS, max(g[limit] for g in gone))
        for i, j in itertools.combinations_with_replacement(range(len(gone)), 2):
            taken = sum(g[limit] for g in gone[i : j + 1])
            assert taken <= allowance + rate * (gone[j][0] - gone[i][0]) + EPS * max(1.0, taken)


def test_both_limits_are_spent_at_once_not_in_turn() -> None:
    # a 4 MiB chunk after every 15 writes of 16 KiB, at 400 requests/s and 100 MiB/s: 4 s of each
    buckets = (Bucket.full(400.0, 0.0), Bucket.full(100.0 * 2**20, 0.0))
    costs = [(1, 4 * 2**20) if i % 16 == 15 else (1, 16 * 2**10) for i in range(1600)]
    go = 0.0
    for cost in costs:
        turn = admit(buckets, 0.0, cost)
        buckets, go = turn.buckets, turn.go
    by_requests, by_bytes = len(costs) / 400.0, sum(c[1] for c in costs) / (100.0 * 2**20)
    assert go == pytest.approx(max(by_requests, by_bytes), abs=0.15)  # not their sum (8 s)
    assert go < 0.6 * (by_requests + by_bytes)


def test_an_idle_bucket_saves_a_tenth_of_a_second_and_lends_the_rest() -> None:
    bucket = Bucket.full(100.0, 0.0)  # 10 tokens saved
    waits = []
    for _ in range(12):
        bucket, wait = reserve(bucket, 0.0, 1)
        waits.append(wait)
    assert waits[:10] == [0.0] * 10 and waits[10:] == pytest.approx([0.01, 0.02])
    bucket, wait = reserve(bucket, 10.0, 1)  # long idle: refilled to the burst, not beyond
    assert wait == 0.0 and bucket.tokens == pytest.approx(9.0)


def test_a_new_rate_keeps_the_debt() -> None:
    bucket = Bucket.full(100.0, 0.0)
    bucket, _ = reserve(bucket, 0.0, 30)  # 20 in debt
    slower = bucket.with_rate(10.0, 0.0)
    assert slower.tokens == pytest.approx(-20.0) and slower.burst == pytest.approx(1.0)
    _, wait = reserve(slower, 0.0, 1)
    assert wait == pytest.approx(2.1)


def _share(rate: float, runs: list[tuple[int, int]], latency: float, seconds: float) -> list[list[float]]:
    """Closed-loop runs sharing one bucket: run i keeps `concurrency` requests of `cost` tokens going
    (each next one made when one ends, `latency` after it went). Every request's wait, per run."""
    bucket = Bucket.full(rate, 0.0)
    waits: list[list[float]] = [[] for _ in runs]
    ready = [(0.0, i, n) for i, (concurrency, _) in enumerate(runs) for n in range(concurrency)]
    heapq.heapify(ready)
    while ready:
        now, i, n = heapq.heappop(ready)
        if now > seconds:
            break
        bucket, wait = reserve(bucket, now, runs[i][1])
        waits[i].append(wait)
        heapq.heappush(ready, (now + wait + latency, i, n))
    return waits


@given(
    rate=st.floats(min_value=10.0, max_value=2000.0),
    runs=st.lists(
        st.tuples(st.integers(min_value=1, max_value=16), st.integers(min_value=1, max_value=64)),
        min_size=2,
        max_size=6,
    ),
    latency=st.floats(min_value=0.001, max_value=0.2),
)
@settings(max_examples=100, deadline=None)
def test_no_run_sharing_the_budget_is_starved(
    rate: float, runs: list[tuple[int, int]], latency: float
) -> None:
    waits = _share(rate, runs, latency, seconds=5.0)
    # a request waits at most for what every run can have reserved ahead of it, its own included
    bound = sum(concurrency * cost for concurrency, cost in runs) / rate
    assert all(w <= bound + EPS for run in waits for w in run)
    assert all(run for run in waits)  # every run got requests through


def test_runs_of_equal_demand_get_equal_shares() -> None:
    waits = _share(200.0, [(8, 1), (8, 1), (8, 1)], latency=0.02, seconds=30.0)
    counts = [len(run) for run in waits]
    assert max(counts) - min(counts) <= 8  # within one run's requests in flight
    assert sum(counts) == pytest.approx(200 * 30, rel=0.05)  # and together they are held at the rate


def test_a_small_writer_is_not_starved_by_large_chunks() -> None:
    # ingress tokens: one run of 4 MiB chunks, one of 4 KiB writes, at 64 MiB/s
    waits = _share(64.0 * 2**20, [(8, 4 * 2**20), (8, 4096)], latency=0.02, seconds=10.0)
    chunks, small = waits
    assert max(small) <= (8 * 4 * 2**20 + 8 * 4096) / (64.0 * 2**20) + EPS
    assert len(small) >= len(chunks) - 8  # turn for turn: as many requests as the chunks' writer


@given(ceiling=st.floats(min_value=1.0, max_value=1e10), sent=st.floats(min_value=0.0, max_value=1e11))
def test_a_cut_is_at_most_the_rate_and_at_least_the_floor(ceiling: float, sent: float) -> None:
    limit = start(ceiling)
    after = cut(limit, sent, floor=1.0)
    assert after.epoch == limit.epoch + 1 and after.ceiling == ceiling
    assert max(1.0, 0.0) <= after.rate <= limit.rate
    assert after.peak == (min(ceiling, sent) if sent > 0 else ceiling)
    assert after.rate == max(1.0, min(ceiling, DECREASE * after.peak))


def test_the_cut_is_from_what_was_sent_not_from_an_unused_ceiling() -> None:
    after = cut(start(20_000), sent=400.0, floor=1.0)
    assert after.rate == pytest.approx(260.0) and after.peak == 400.0


@given(
    ceiling=st.floats(min_value=10.0, max_value=1e6),
    sent=st.floats(min_value=1.0, max_value=1e6),
    cuts=st.integers(min_value=1, max_value=5),
)
@settings(max_examples=200)
def test_regrowth_climbs_back_to_the_ceiling_and_never_past_it(
    ceiling: float, sent: float, cuts: int
) -> None:
    limit = start(ceiling)
    for _ in range(cuts):
        limit = cut(limit, sent, floor=1.0)
    rates = [limit.rate]
    for _ in range(2000):
        limit = grow(limit)
        rates.append(limit.rate)
    assert all(a <= b <= ceiling for a, b in itertools.pairwise(rates))
    assert rates[-1] == ceiling
    assert grow(start(ceiling)) == start(ceiling)  # never cut: nothing to regrow


def test_regrowth_is_fast_below_the_peak_and_slow_near_it() -> None:
    limit = cut(start(20_000), sent=1000.0, floor=1.0)  # 650/s, peak 1000
    limit = grow(limit)
    assert limit.rate == pytest.approx(650 + (900 - 650) / 2)
    steps = 1
    while limit.rate < 0.99 * 900:
        limit, steps = grow(limit), steps + 1
    assert steps <= 8 and limit.rate <= 900  # fast, and never past 90 % of the peak that way
    assert grow(limit).rate == pytest.approx(limit.rate * 1.02)  # then 2 % a second


@pytest.mark.parametrize("limit", ["requests", "ingress", "egress"])
def test_the_account_messages_name_their_limit(limit: str) -> None:
    text = f"{MESSAGES[limit]}\nRequestId:99909524-001e-006f-1fb1-67ad25000000\nTime:2019-01-01T01:00:00Z"
    assert limit_of(text) == limit
    assert limit_of(MESSAGES[limit] + " ") == limit  # as AzCopy logs it, a space before </Message>


@pytest.mark.parametrize(
    "message",
    [
        "The server is currently unable to receive requests. Please retry your request.",
        "The server is busy.",
        "",
    ],
)
def test_a_blobs_or_partitions_503_is_not_the_accounts(message: str) -> None:
    assert limit_of(message) is None


def test_the_ceilings_are_the_knobs_else_azures_targets() -> None:
    assert ceilings("standard", None, None) == (20_000, 25e9 / 8)
    assert ceilings("standard", 500, 64 * 2**20) == (500, 64 * 2**20)
    with pytest.raises(ValueError):
        start(0)


def test_the_record_keeps_the_lowest_limits_waits_and_refusals() -> None:
    record = BudgetRecord.at("https://a.blob.core.windows.net", 100.0, 1e6)
    record.moved(50.0, 1e6)
    record.moved(80.0, 5e5)
    record.waited(0.0)
    record.waited(0.25)
    record.refused("requests")
    record.refused("egress")
    record.refused("requests")
    assert (record.requests_per_second, record.lowest_requests_per_second) == (80.0, 50.0)
    assert record.lowest_ingress_bytes_per_second == 5e5
    assert (record.waits, record.wait_seconds) == (1, 0.25)
    assert record.throttled == 3 and record.throttled_by == {"requests": 2, "egress": 1}
    assert account_budget.LIMITS == ("requests", "ingress")
