"""The in-flight byte budget: never more than the limit held, a large request never deadlocks."""

from __future__ import annotations

import asyncio

import pytest

from replicator.inflight import ByteBudget, process_budget


async def test_holders_never_exceed_the_limit_and_all_finish() -> None:
    budget = ByteBudget(10)
    peak = 0

    async def hold(n: int) -> None:
        nonlocal peak
        async with budget.hold(n):
            peak = max(peak, budget.used)
            await asyncio.sleep(0.001)

    await asyncio.gather(*(hold(n) for n in [4, 4, 4, 7, 1, 30, 3, 10, 2]))
    assert peak == 10  # the 30-byte request took the whole budget, no more
    assert budget.used == 0


async def test_a_cancelled_waiter_releases_nothing_and_blocks_nobody() -> None:
    budget = ByteBudget(8)
    async with budget.hold(8):
        waiter = asyncio.create_task(budget.hold(4).__aenter__())
        await asyncio.sleep(0)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
    assert budget.used == 0
    async with budget.hold(8):
        assert budget.used == 8


def test_the_limit_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        ByteBudget(0)


async def test_stream_runs_of_one_process_share_one_budget() -> None:
    first = process_budget(8)
    assert process_budget(16) is first and first.limit == 8
