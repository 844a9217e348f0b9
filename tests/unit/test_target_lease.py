"""target.lease and the target adapter with fakes: the lease renewer retries transient errors until
the lease would expire, a lost lease cancels the run with a clear error, the renewer never masks the
run's outcome, and a commit survives a listing that lags behind it."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest
from azure.core.exceptions import HttpResponseError, ServiceResponseError

from replicator.cli.replicate_cmd import load
from replicator.core.errors import ReplicationError
from replicator.target import lease as lease_mod
from replicator.target import page_blob
from replicator.target.lease import keep_renewed
from replicator.target.page_blob import PageBlobTarget
from replicator.target.state import RestorePointMeta

LEASE = 0.4  # seconds: renewals every 0.1 s


class FakeLease:
    """Stands in for BlobLeaseClient: acquire works, renew follows a script, release is recorded."""

    script: list[BaseException | None] = []
    released = 0

    def __init__(self, blob: object) -> None:
        pass

    async def acquire(self, lease_duration: int) -> None:
        pass

    async def renew(self) -> None:
        outcome = FakeLease.script.pop(0) if FakeLease.script else ServiceResponseError("reset")
        if outcome is not None:
            raise outcome

    async def release(self) -> None:
        FakeLease.released += 1


def conflict() -> HttpResponseError:
    exc = HttpResponseError(message="lease id mismatch")
    exc.status_code = 409
    return exc


@pytest.fixture
def leased_target(monkeypatch: pytest.MonkeyPatch) -> PageBlobTarget:
    monkeypatch.setattr(page_blob, "BlobLeaseClient", FakeLease)
    monkeypatch.setattr(lease_mod, "RENEW_RETRY_SECONDS", 0.02)
    FakeLease.released = 0
    group = "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg"
    disk = f"{group}/providers/Microsoft.Compute/disks/d"
    url = "https://a.blob.core.windows.net/ccc/b?sv=1&sr=b&sig=s"
    config = load(["--source", disk, "--target", url], env={})
    target = PageBlobTarget(config, command="replicate")
    target._lease_seconds = LEASE  # type: ignore[assignment]
    return target


async def test_transient_failures_of_any_kind_are_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lease_mod, "RENEW_RETRY_SECONDS", 0.02)
    calls = 0
    script: list[BaseException | None] = [ServiceResponseError("reset"), TimeoutError(), None, None]

    async def renew() -> None:
        nonlocal calls
        calls += 1
        outcome = script.pop(0) if script else conflict()
        if outcome is not None:
            raise outcome

    lost = await asyncio.wait_for(keep_renewed(renew, LEASE), 5)
    assert isinstance(lost, HttpResponseError) and lost.status_code == 409
    assert calls == 5


async def test_lost_when_no_renewal_succeeds_before_expiry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lease_mod, "RENEW_RETRY_SECONDS", 0.02)

    async def renew() -> None:
        raise ServiceResponseError("reset")

    loop = asyncio.get_running_loop()
    started = loop.time()
    lost = await asyncio.wait_for(keep_renewed(renew, LEASE), 5)
    assert isinstance(lost, TimeoutError)
    assert LEASE - 0.05 <= loop.time() - started < LEASE + 0.3


async def test_a_lost_lease_cancels_the_run_and_still_releases(leased_target: PageBlobTarget) -> None:
    FakeLease.script = []  # every renewal fails with a reset
    with pytest.raises(ReplicationError, match="lost the lease"):
        async with leased_target.leased():
            await asyncio.sleep(5)
    assert FakeLease.released == 1


async def test_the_runs_own_error_is_never_masked_by_the_renewer(leased_target: PageBlobTarget) -> None:
    FakeLease.script = [ServiceResponseError("reset"), TimeoutError()]
    with pytest.raises(ValueError, match="the run's own failure"):
        async with leased_target.leased():
            await asyncio.sleep(0.25)  # the renewer is mid-retry now
            raise ValueError("the run's own failure")
    assert FakeLease.released == 1


async def test_a_successful_run_releases_once(leased_target: PageBlobTarget) -> None:
    FakeLease.script = [None] * 10
    async with leased_target.leased():
        await asyncio.sleep(0.3)
    assert FakeLease.released == 1


async def test_commit_returns_its_snapshot_when_the_listing_does_not_show_it_yet(
    leased_target: PageBlobTarget, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def create_snapshot(**kwargs: object) -> dict[str, str]:
        return {"snapshot": "2026-01-01T00:00:00.0000000Z"}

    async def no_points(*, required: bool = True) -> list[object]:
        return []  # the listing lags behind the snapshot just taken

    monkeypatch.setattr(leased_target, "_blob", SimpleNamespace(create_snapshot=create_snapshot))
    monkeypatch.setattr(leased_target, "restore_points", no_points)
    assert await leased_target.commit(RestorePointMeta(snapshot_id="s1")) == "2026-01-01T00:00:00.0000000Z"
