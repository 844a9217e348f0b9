"""SAS grants with a fake ARM client: the per-family budget, retries on the family limit, revocation
on every way out (exceptions, cancellation), re-grants, and no SAS in any message."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest

from replicator.core.errors import EXIT_RETRY_LATER, LimitError, ReplicationError
from replicator.source import grants
from replicator.source.arm import ArmSource
from replicator.source.grants import read_grant
from tests.helpers.source_fakes import (
    SUB,
    FakeConfig,
    FakeSnapshots,
    Poller,
    arm_error,
    family_limit_error,
    snapshot,
)


@pytest.fixture(autouse=True)
def fast_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(grants, "FAMILY_RETRY_BACKOFF_SECONDS", 0.02)


async def test_grants_read_access_for_the_configured_duration_and_revokes(
    arm: ArmSource, fake: FakeSnapshots
) -> None:
    async with read_grant(arm, snapshot("s1")) as grant:
        url = await grant.url()
        assert url.startswith("https://md.invalid/c/s1/")
        assert fake.active == {"s1"}
    ((name, data),) = fake.grants
    assert (name, data.access, data.duration_in_seconds) == ("s1", "Read", 3600)
    assert fake.revokes == ["s1"] and fake.active == set()


async def test_eight_concurrent_grants_on_one_family_never_exceed_five(
    arm: ArmSource, fake: FakeSnapshots
) -> None:
    inside = 0
    most_inside = 0

    async def use(name: str) -> None:
        nonlocal inside, most_inside
        async with read_grant(arm, snapshot(name)):
            inside += 1
            most_inside = max(most_inside, inside)
            await asyncio.sleep(0.02)
            inside -= 1

    await asyncio.gather(*(use(f"s{i}") for i in range(8)))
    assert most_inside == 5
    assert fake.max_active == 5
    assert sorted(fake.revokes) == sorted(f"s{i}" for i in range(8))
    assert fake.active == set()


async def test_families_have_separate_budgets(arm: ArmSource, fake: FakeSnapshots) -> None:
    entered = asyncio.Event()
    count = 0

    async def hold(name: str, family: str) -> None:
        nonlocal count
        async with read_grant(arm, snapshot(name, family)):
            count += 1
            if count == 10:
                entered.set()
            await entered.wait()

    await asyncio.wait_for(asyncio.gather(*(hold(f"{f}-{i}", f) for f in "ab" for i in range(5))), 5)
    assert fake.max_active == 10


async def test_revokes_when_the_body_raises(arm: ArmSource, fake: FakeSnapshots) -> None:
    with pytest.raises(RuntimeError, match="boom"):
        async with read_grant(arm, snapshot("s1")):
            raise RuntimeError("boom")
    assert fake.revokes == ["s1"] and fake.active == set()


async def test_revokes_when_cancelled_even_if_cancelled_again_during_the_revoke(
    arm: ArmSource, fake: FakeSnapshots
) -> None:
    fake.revoke_delay = 0.2
    inside = asyncio.Event()

    async def body() -> None:
        async with read_grant(arm, snapshot("s1")):
            inside.set()
            await asyncio.sleep(3600)

    task = asyncio.create_task(body())
    await inside.wait()
    task.cancel()
    await asyncio.sleep(0.05)  # now inside the shielded revoke
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert fake.revokes == ["s1"]
    assert fake.active == set()  # the revoke ran to its end


async def test_retries_while_other_processes_hold_the_family_then_succeeds(
    arm: ArmSource, fake: FakeSnapshots
) -> None:
    fake.refusals = 2
    async with read_grant(arm, snapshot("s1")) as grant:
        assert await grant.url()
    assert len(fake.grants) == 3
    assert fake.revokes == ["s1"]


async def test_limit_error_after_the_wait_names_the_five_sas_limit_and_revokes_nothing(
    fake: FakeSnapshots,
) -> None:
    fake.refuse_always = True
    arm = await ArmSource.open(FakeConfig(sas_wait_seconds=0.5))
    arm._clients[SUB] = SimpleNamespace(snapshots=fake)  # type: ignore[assignment]
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(LimitError) as caught:
        async with read_grant(arm, snapshot("s1")):
            pytest.fail("must not enter")
    elapsed = loop.time() - started
    assert 0.4 <= elapsed < 2.0
    assert caught.value.exit_code == EXIT_RETRY_LATER
    assert "five per family" in str(caught.value)
    assert len(fake.grants) >= 2
    assert fake.revokes == []  # a refused grant created no SAS; revoking could end another run's access


async def test_other_arm_errors_are_not_retried(arm: ArmSource, fake: FakeSnapshots) -> None:
    async def refuse(group: str, name: str, data: Any) -> Poller:
        fake.grants.append((name, data))
        raise arm_error(
            409, "OperationNotAllowed", "Snapshot s1 is not ready: its background copy is 10% complete."
        )

    fake.begin_grant_access = refuse  # type: ignore[method-assign]
    with pytest.raises(ReplicationError, match="not ready"):
        async with read_grant(arm, snapshot("s1")):
            pass
    assert len(fake.grants) == 1


async def test_url_regrants_after_invalidate_once_for_many_callers(
    arm: ArmSource, fake: FakeSnapshots
) -> None:
    async with read_grant(arm, snapshot("s1")) as grant:
        first = await grant.url()
        for _ in range(3):  # three workers saw 403 with the same SAS
            grant.invalidate(first)
        urls = await asyncio.gather(*(grant.url() for _ in range(4)))
        assert len(set(urls)) == 1 and urls[0] != first
        grant.invalidate(first)  # a late report about the old SAS changes nothing
        assert await grant.url() == urls[0]
    assert len(fake.grants) == 2


async def test_url_regrants_before_expiry(fake: FakeSnapshots) -> None:
    arm = await ArmSource.open(FakeConfig(sas_duration_seconds=1))
    arm._clients[SUB] = SimpleNamespace(snapshots=fake)  # type: ignore[assignment]
    async with read_grant(arm, snapshot("s1")) as grant:
        first = await grant.url()
        await asyncio.sleep(0.8)  # past 3/4 of its lifetime
        assert await grant.url() != first
    assert len(fake.grants) == 2


async def test_no_sas_in_repr_or_errors(arm: ArmSource, fake: FakeSnapshots) -> None:
    async with read_grant(arm, snapshot("s1")) as grant:
        await grant.url()
        assert "SECRET" not in repr(grant)


def test_classifies_the_family_limit() -> None:
    assert grants.is_family_sas_limit(family_limit_error())
    assert grants.is_family_sas_limit(arm_error(429, "TooManyRequests", "SAS limit for the snapshot family"))
    assert not grants.is_family_sas_limit(
        arm_error(409, "OperationNotAllowed", "Disk has an active SAS; revoke")
    )
    assert not grants.is_family_sas_limit(arm_error(500, "InternalError", "SAS family limit"))
    assert not grants.is_family_sas_limit(RuntimeError("SAS family limit"))


async def test_limit_error_when_this_process_holds_the_family_for_too_long(fake: FakeSnapshots) -> None:
    arm = await ArmSource.open(FakeConfig(sas_wait_seconds=0.3))
    arm._clients[SUB] = SimpleNamespace(snapshots=fake)  # type: ignore[assignment]
    release = asyncio.Event()
    holding = 0

    async def hold(name: str) -> None:
        nonlocal holding
        async with read_grant(arm, snapshot(name)):
            holding += 1
            await release.wait()

    holders = [asyncio.create_task(hold(f"s{i}")) for i in range(5)]
    while holding < 5:
        await asyncio.sleep(0.01)
    with pytest.raises(LimitError, match="in this process"):
        async with read_grant(arm, snapshot("s5")):
            pytest.fail("must not enter")
    assert len(fake.grants) == 5  # the sixth never reached ARM
    release.set()
    await asyncio.gather(*holders)
    async with read_grant(arm, snapshot("s5")):  # the budget is whole again
        assert fake.active == {"s5"}
