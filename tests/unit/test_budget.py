"""The time budget bounds every wait of a run, not only the copy pool."""

from __future__ import annotations

import asyncio

import pytest

from replicator.engine import time_budget
from replicator.engine.time_budget import Budget, BudgetSpent


async def test_a_wait_outliving_the_budget_ends_as_budget_spent() -> None:
    budget = Budget(0.4)  # reserve 0.1 s: soft at 0.3, hard at 0.35, end at 0.375
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(BudgetSpent, match="while waiting for the lease"):
        async with budget.bounded("while waiting for the lease"):
            await asyncio.sleep(10)
    assert 0.3 < loop.time() - started < 1.0


async def test_other_timeouts_inside_are_not_the_budget() -> None:
    with pytest.raises(TimeoutError):
        async with Budget(10).bounded("x"):
            async with asyncio.timeout(0.01):
                await asyncio.sleep(1)


async def test_cap_never_waits_past_the_soft_deadline() -> None:
    assert Budget(None).cap(70) == 70
    assert 2.5 < Budget(4).cap(70) <= 3.0  # soft deadline: 4 s minus a 1 s reserve
    assert Budget(400).cap(70) == 70


async def test_stop_ends_a_bounded_wait_after_the_grace(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(time_budget, "STOP_GRACE_SECONDS", 0.05)
    budget = Budget(None)
    asyncio.get_running_loop().call_later(0.05, budget.stop, "SIGTERM")
    with pytest.raises(BudgetSpent, match="SIGTERM"):
        async with budget.bounded("while granting"):
            await asyncio.sleep(10)
