"""The weighted FIFO semaphore (replicator.core.weighted): never over capacity, served in request order (a
large request is not starved by small ones), no lost wakeup, no deadlock once capacity frees, a
cancelled waiter hands its place and any units it was granted on, and a resize (the pacer's) keeps
all of that while holders keep what they hold."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from replicator.core.weighted import WeightedSemaphore


async def test_holders_never_exceed_the_capacity_and_all_finish() -> None:
    semaphore = WeightedSemaphore(10)
    peak = 0

    async def hold(n: int) -> None:
        nonlocal peak
        async with semaphore.hold(n):
            peak = max(peak, semaphore.capacity - semaphore.free)
            await asyncio.sleep(0.001)

    await asyncio.gather(*(hold(n) for n in [4, 4, 4, 7, 1, 30, 3, 10, 2]))
    assert peak == 10  # the 30-unit request took the whole capacity, no more
    assert semaphore.free == 10


async def test_a_large_request_is_not_starved_by_small_ones() -> None:
    semaphore = WeightedSemaphore(8)
    await semaphore.acquire(4)
    large = asyncio.create_task(semaphore.acquire(8))
    await asyncio.sleep(0)
    small = asyncio.create_task(semaphore.acquire(2))
    await asyncio.sleep(0)
    assert not small.done() and semaphore.free == 4  # it would fit, but the large one came first
    semaphore.release(4)
    await asyncio.wait_for(large, 1)
    assert not small.done() and semaphore.free == 0
    semaphore.release(8)
    await asyncio.wait_for(small, 1)
    assert semaphore.free == 6


async def test_a_cancelled_waiter_releases_nothing_and_blocks_nobody() -> None:
    semaphore = WeightedSemaphore(8)
    async with semaphore.hold(8):
        waiter = asyncio.create_task(semaphore.hold(4).__aenter__())
        await asyncio.sleep(0)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
    assert semaphore.free == 8
    async with semaphore.hold(8):
        assert semaphore.free == 0


def test_the_capacity_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        WeightedSemaphore(0)
    with pytest.raises(ValueError, match="positive"):
        WeightedSemaphore(1).resize(0)


async def test_a_shrink_holds_new_requests_until_enough_holders_return() -> None:
    semaphore = WeightedSemaphore(4)
    for _ in range(4):
        await semaphore.acquire(1)
    semaphore.resize(2)
    assert semaphore.free == -2
    waiter = asyncio.create_task(semaphore.acquire(1))
    for _ in range(2):
        semaphore.release(1)
        await asyncio.sleep(0)
        assert not waiter.done()  # two held of a capacity of two: still full
    semaphore.release(1)
    assert await asyncio.wait_for(waiter, 1) == 1
    semaphore.resize(3)  # a grow frees units at once
    assert semaphore.free == 1


@dataclass
class Request:
    """One `acquire(asked)` of the model; `task` ends when it is granted (or cancelled)."""

    id: int
    asked: int
    needs: int  # what it takes: `asked` clamped to the capacity (of its time: a resize shrinks a waiter's)
    task: asyncio.Task[None]
    released: bool = False
    taken: int | None = None  # what acquire returned


class SemaphoreMachine(RuleBasedStateMachine):
    """Random sequences of acquire, release and cancel on one semaphore, on a private event loop.

    Every rule ends with the loop run until nothing is ready, so the invariants see a settled
    semaphore and `granted` (appended when `acquire` returns) is the order of the grants. The races
    that matter are composed inside one rule: a waiter cancelled in the same turn in which a release
    grants it, and units freed while a cancelled waiter still stands at the head of the line.
    """

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.requests: list[Request] = []
        self.granted: list[int] = []

    @initialize(capacity=st.integers(1, 8))
    def start(self, capacity: int) -> None:
        self.semaphore = WeightedSemaphore(capacity)

    # --- the model

    def holders(self) -> list[Request]:
        return [self.requests[i] for i in self.granted if not self.requests[i].released]

    def waiting(self) -> list[Request]:
        return [r for r in self.requests if not r.task.done()]

    async def take(self, request_id: int, n: int) -> None:
        self.requests[request_id].taken = await self.semaphore.acquire(n)
        self.granted.append(request_id)

    def settle(self) -> None:
        """Run the loop until no task is ready: every grant or hand-back cascade takes one turn a task."""

        async def turns() -> None:
            for _ in range(2 * len(self.requests) + 4):
                await asyncio.sleep(0)

        self.loop.run_until_complete(turns())

    def release(self, holder: Request) -> None:
        holder.released = True
        assert holder.taken == holder.needs  # `asked` clamped to the capacity of its time
        self.semaphore.release(holder.taken)

    # --- the rules

    @rule(n=st.integers(0, 10))
    def acquire(self, n: int) -> None:
        request_id = len(self.requests)
        task = self.loop.create_task(self.take(request_id, n))
        self.requests.append(Request(request_id, n, min(n, self.semaphore.capacity), task))
        self.settle()

    @rule(capacity=st.integers(1, 8))
    def resize(self, capacity: int) -> None:
        self.semaphore.resize(capacity)
        for waiter in self.waiting():
            waiter.needs = min(waiter.needs, capacity)
        self.settle()

    @precondition(lambda self: self.holders())
    @rule(data=st.data())
    def release_one(self, data: st.DataObject) -> None:
        self.release(data.draw(st.sampled_from(self.holders())))
        self.settle()

    @precondition(lambda self: self.waiting())
    @rule(data=st.data())
    def cancel_one(self, data: st.DataObject) -> None:
        data.draw(st.sampled_from(self.waiting())).task.cancel()
        self.settle()

    @precondition(lambda self: self.holders() and self.waiting())
    @rule(data=st.data(), release_first=st.booleans())
    def release_and_cancel_in_one_turn(self, data: st.DataObject, release_first: bool) -> None:
        holder = data.draw(st.sampled_from(self.holders()))
        waiter = data.draw(st.sampled_from(self.waiting()))
        if release_first:  # the release may grant the waiter before it sees its cancellation
            self.release(holder)
            waiter.task.cancel()
        else:  # the cancelled waiter is still in line when the units come back
            waiter.task.cancel()
            self.release(holder)
        self.settle()

    # --- the properties

    @invariant()
    def never_over_capacity_and_nothing_lost(self) -> None:
        held = sum(r.needs for r in self.holders())
        assert held + self.semaphore.free == self.semaphore.capacity
        assert held <= self.semaphore.capacity or self.semaphore.free < 0  # only a shrink over-holds

    @invariant()
    def served_in_request_order(self) -> None:
        assert self.granted == sorted(self.granted)
        waiting = self.waiting()
        if waiting:  # nobody who asked after the oldest waiter has been served
            assert max(self.granted, default=-1) < waiting[0].id

    @invariant()
    def no_lost_wakeup(self) -> None:
        waiting = self.waiting()
        if waiting:  # the oldest waiter waits only because its units are not free
            assert waiting[0].needs > self.semaphore.free

    def teardown(self) -> None:
        """No deadlock: releasing every holder serves every waiter, round after round."""
        try:
            while self.waiting():
                before = len(self.granted)
                for holder in self.holders():
                    self.release(holder)
                self.settle()
                assert len(self.granted) > before
            for holder in self.holders():
                self.release(holder)
            assert self.semaphore.free == self.semaphore.capacity
        finally:
            for request in self.waiting():
                request.task.cancel()
            self.settle()
            self.loop.close()


SemaphoreMachine.TestCase.settings = settings(deadline=None)
test_semaphore_under_random_acquire_release_cancel = SemaphoreMachine.TestCase
