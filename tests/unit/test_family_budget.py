"""Source fixes of the run path, with the fake ARM of tests/helpers/source_fakes.py: a diff takes both family
slots at once (no deadlock), and a snapshot deleted mid-run is a failure of the run, not bad input."""

from __future__ import annotations

import asyncio

import pytest
from azure.core.exceptions import ResourceNotFoundError

from replicator.core.errors import EXIT_FAILED, ReplicationError, UserError
from replicator.core.weighted import WeightedSemaphore
from replicator.source import grants
from replicator.source.arm import ArmSource
from replicator.source.grants import family_sas_slots, read_grant, read_grants
from tests.helpers.source_fakes import FakeSnapshots, snapshot


async def test_five_concurrent_diffs_of_one_family_complete(arm: ArmSource, fake: FakeSnapshots) -> None:
    entered = 0
    all_in = asyncio.Event()

    async def diff(i: int) -> None:
        nonlocal entered
        async with read_grants(arm, snapshot(f"cur{i}"), snapshot(f"base{i}")):
            entered += 1
            if entered == 2:  # at most two diffs (four slots) fit at once; let them overlap a little
                all_in.set()
            await asyncio.sleep(0.01)

    # sas_wait 5 s; taking slots one at a time would stall all five diffs for all of it
    await asyncio.wait_for(asyncio.gather(*(diff(i) for i in range(5))), 2)
    assert entered == 5 and all_in.is_set()
    assert fake.max_active <= grants.FAMILY_SAS_LIMIT and fake.active == set()


async def test_family_budget_is_all_or_nothing_and_first_come_first_served() -> None:
    budget = family_sas_slots("fifo-family")  # FAMILY_SAS_LIMIT: 5 slots
    await budget.acquire(4)
    order: list[str] = []

    async def take(name: str, n: int) -> None:
        await budget.acquire(n)
        order.append(name)

    pair = asyncio.create_task(take("pair", 2))
    await asyncio.sleep(0)
    single = asyncio.create_task(take("single", 1))
    await asyncio.sleep(0)
    assert order == [] and budget.free == 1  # the pair waits whole; the single waits behind it
    budget.release(1)
    await asyncio.wait_for(pair, 1)
    assert order == ["pair"] and budget.free == 0
    budget.release(1)
    await asyncio.wait_for(single, 1)
    assert order == ["pair", "single"] and budget.free == 0


async def test_a_cancelled_waiter_leaves_the_budget_whole() -> None:
    budget = WeightedSemaphore(2)
    await budget.acquire(2)
    waiter = asyncio.create_task(budget.acquire(2))
    await asyncio.sleep(0)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    budget.release(2)
    assert budget.free == 2
    await asyncio.wait_for(budget.acquire(2), 1)


async def test_a_snapshot_deleted_mid_run_is_a_run_failure(
    arm: ArmSource,
    fake: FakeSnapshots,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def gone(group: str, name: str, data: object) -> None:
        raise ResourceNotFoundError(message="ResourceNotFound")

    monkeypatch.setattr(fake, "begin_grant_access", gone)
    with pytest.raises(ReplicationError, match="s1 was deleted during the run") as caught:
        async with read_grant(arm, snapshot("s1")):
            pass
    assert caught.value.exit_code == EXIT_FAILED and not isinstance(caught.value, UserError)
    assert fake.revokes == []  # a refused grant created no SAS: nothing to revoke
