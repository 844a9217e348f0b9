"""replicator.source (arm, grants, listing) against the emulator over HTTPS, through the real Azure SDKs.

The bodies take every endpoint from the environment (REPLICATOR_ARM_ENDPOINT, AZURE_SUBSCRIPTION_ID,
REPLICATOR_ACCESS_TOKEN, SSL_CERT_FILE), so they describe Azure's behaviour as much as the emulator's.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import pytest
from azure.core.exceptions import HttpResponseError
from azure.mgmt.compute.aio import ComputeManagementClient
from azure.storage.blob.aio import BlobClient

from replicator.core.errors import LimitError, ReplicationError, UserError
from replicator.core.ranges import Change
from replicator.emulator.process import EmulatorProcess
from replicator.plumbing import credentials
from replicator.source import grants as grants_module
from replicator.source import listing as listing_module
from replicator.source.arm import ArmSource
from replicator.source.grants import read_grant
from replicator.source.listing import DiffNotPossible, list_changes, snapshot_blob_size

GiB = 1 << 30
PAGE = 512
LOCATION = "westeurope"


@dataclass(frozen=True)
class Config:
    arm_endpoint: str
    subscription_id: str
    access_token: str | None = None
    allow_http: bool = False
    sas_duration_seconds: int = 3600
    sas_wait_seconds: float = 5.0
    list_window_bytes: int = 1 << 20
    page_size: int | None = None


def config_from_env(**overrides: Any) -> Config:
    values = {
        "arm_endpoint": os.environ["REPLICATOR_ARM_ENDPOINT"],
        "subscription_id": os.environ["AZURE_SUBSCRIPTION_ID"],
    }
    return Config(**(values | overrides))


class Setup:
    """Creates disks and snapshots and writes disk pages the way an operator's VM would."""

    def __init__(self, client: ComputeManagementClient, subscription_id: str) -> None:
        self.client = client
        self.subscription_id = subscription_id
        self.group = f"rg-{uuid.uuid4().hex[:10]}"

    def disk_id(self, name: str, group: str | None = None) -> str:
        return (
            f"/subscriptions/{self.subscription_id}/resourceGroups/{group or self.group}"
            f"/providers/Microsoft.Compute/disks/{name}"
        )

    async def disk(self, name: str, size_gb: int = 1, sku: str = "Standard_LRS") -> str:
        body = {
            "location": LOCATION,
            "sku": {"name": sku},
            "properties": {"creationData": {"createOption": "Empty"}, "diskSizeGB": size_gb},
        }
        poller = await self.client.disks.begin_create_or_update(self.group, name, body)
        return (await poller.result()).id

    async def resize(self, name: str, size_gb: int) -> None:
        poller = await self.client.disks.begin_update(
            self.group, name, {"properties": {"diskSizeGB": size_gb}}
        )
        await poller.result()

    async def delete_disk(self, name: str) -> None:
        await (await self.client.disks.begin_delete(self.group, name)).result()

    async def snapshot(
        self,
        disk_id: str,
        name: str,
        *,
        incremental: bool = True,
        group: str | None = None,
        tags: dict[str, str] | None = None,
    ) -> str:
        body = {
            "tags": tags or {},
            "location": LOCATION,
            "properties": {
                "creationData": {"createOption": "Copy", "sourceResourceId": disk_id},
                "incremental": incremental,
            },
        }
        poller = await self.client.snapshots.begin_create_or_update(group or self.group, name, body)
        return (await poller.result()).id

    async def write(
        self, disk: str, writes: Iterable[tuple[int, bytes]], clears: Iterable[tuple[int, int]] = ()
    ) -> None:
        """Writes and clears pages through a Write SAS on the disk, then revokes the SAS."""
        poller = await self.client.disks.begin_grant_access(
            self.group, disk, {"access": "Write", "durationInSeconds": 600}
        )
        url = (await poller.result()).access_sas
        try:
            async with BlobClient.from_blob_url(url, **credentials.transport_kwargs()) as blob:
                for offset, data in writes:
                    await blob.upload_page(data, offset=offset, length=len(data))
                for offset, length in clears:
                    await blob.clear_page(offset=offset, length=length)
        finally:
            await (await self.client.disks.begin_revoke_access(self.group, disk)).result()


@contextlib.asynccontextmanager
async def opened() -> AsyncIterator[tuple[ArmSource, Setup]]:
    """An ArmSource and a Setup (its own ARM client) on the emulator named by the environment."""
    config = config_from_env()
    cred = credentials.async_credential(config)
    client = ComputeManagementClient(
        cred,
        config.subscription_id,
        base_url=config.arm_endpoint,
        polling_interval=0.2,
        **credentials.transport_kwargs(),
    )
    try:
        async with client, await ArmSource.open(config) as source:
            yield source, Setup(client, config.subscription_id)
    finally:
        await cred.close()


@pytest.fixture
async def arm(emulator_env: dict[str, str]) -> AsyncIterator[tuple[ArmSource, Setup]]:
    async with opened() as pair:
        yield pair


def pages(changes: Iterable[Change]) -> dict[int, bool]:
    """{page index: clear} of every page a listing names; fails if a page is named twice."""
    out: dict[int, bool] = {}
    for change in changes:
        for page in range(change.range.start // PAGE, change.range.end // PAGE):
            assert page not in out, f"page {page} listed twice"
            out[page] = change.clear
    return out


async def listed(
    current: Any, base: Any, *, end: int, window: int = 64 << 20, page_size: int | None = None
) -> list[Change]:
    return [
        c async for c in list_changes(current, base, start=0, end=end, window=window, page_size=page_size)
    ]


# --- resolve -------------------------------------------------------------------------------------


async def test_resolve_a_disk_lists_its_incremental_snapshots_oldest_first(
    arm: tuple[ArmSource, Setup],
) -> None:
    source, setup = arm
    disk_id = await setup.disk("d1")
    other_id = await setup.disk("other")
    s1 = await setup.snapshot(disk_id, "s-b")
    s2 = await setup.snapshot(disk_id, "s-a")  # newer, though its name sorts first
    await setup.snapshot(disk_id, "full", incremental=False)
    await setup.snapshot(other_id, "of-other")
    third_id = await setup.disk("third")
    for i in range(12):  # names that list first: the disk's snapshots come after a nextLink
        await setup.snapshot(other_id if i % 2 else third_id, f"a-fill-{i:02}")
    elsewhere = f"{setup.group}-backups"
    s3 = await setup.snapshot(disk_id, "kept-elsewhere", group=elsewhere)

    disk, snaps = await source.resolve(disk_id.upper())  # ARM IDs compare case-insensitively
    assert disk is not None and disk.id == disk_id and disk.size_bytes == GiB and disk.sku == "Standard_LRS"
    assert [s.id for s in snaps] == [s1, s2]
    assert all(s.incremental and s.family_id and s.source_unique_id == disk.unique_id for s in snaps)
    assert snaps[0].time_created <= snaps[1].time_created

    _, everywhere = await source.resolve(disk_id, search="subscription")
    assert [s.id for s in everywhere] == [s1, s2, s3]
    assert [s.name for s in await source.full_snapshots(disk_id)] == ["full"]


async def test_the_owner_tag_marks_the_tools_own_snapshots(arm: tuple[ArmSource, Setup]) -> None:
    """ARM tag names are case-insensitive, values are not: only replicator-owner=replicator is ours."""
    source, setup = arm
    disk_id = await setup.disk("d")
    for name, tags in (
        ("ours", {"replicator-owner": "replicator"}),
        ("ours-upper", {"Replicator-Owner": "replicator"}),
        ("theirs", {}),
        ("other-value", {"replicator-owner": "Replicator"}),
        ("other-key", {"owner": "replicator"}),
    ):
        await setup.snapshot(disk_id, name, tags=tags)
    _, snaps = await source.resolve(disk_id)
    assert {s.name for s in snaps if s.owned} == {"ours", "ours-upper"}


async def test_snapshots_of_a_deleted_and_recreated_disk_are_not_its_history(
    arm: tuple[ArmSource, Setup],
) -> None:
    source, setup = arm
    disk_id = await setup.disk("reborn")
    old = await setup.snapshot(disk_id, "old")
    await setup.delete_disk("reborn")
    assert await setup.disk("reborn") == disk_id  # same name, same ID, new uniqueId
    new = await setup.snapshot(disk_id, "new")

    disk, snaps = await source.resolve(disk_id)
    assert [s.id for s in snaps] == [new]

    # The old snapshot still resolves on its own, but not to the new disk.
    old_disk, (old_snap,) = await source.resolve(old)
    assert old_disk is None and old_snap.id == old
    assert old_snap.source_unique_id != disk.unique_id  # type: ignore[union-attr]
    new_disk, _ = await source.resolve(new)
    assert new_disk == disk


async def test_resolve_refuses_full_snapshots_and_missing_resources(arm: tuple[ArmSource, Setup]) -> None:
    source, setup = arm
    disk_id = await setup.disk("d")
    full = await setup.snapshot(disk_id, "full", incremental=False)
    with pytest.raises(UserError, match="full snapshot"):
        await source.resolve(full)
    with pytest.raises(UserError, match="does not exist"):
        await source.resolve(setup.disk_id("nope"))
    with pytest.raises(UserError, match="does not exist"):
        await source.resolve(full.replace("/full", "/nope"))
    assert await source.get_snapshot(full.replace("/full", "/nope")) is None
    with pytest.raises(UserError, match="expected"):
        await source.resolve("/subscriptions/x/disks/d")


async def test_an_unreachable_endpoint_is_a_failure_naming_it(emulator_env: dict[str, str]) -> None:
    import socket

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = config_from_env(arm_endpoint=f"https://127.0.0.1:{port}")
    async with await ArmSource.open(config) as source:
        with pytest.raises(
            ReplicationError, match=rf"ARM endpoint https://127\.0\.0\.1:{port} could not be reached"
        ):
            await source.resolve(
                f"/subscriptions/{config.subscription_id}/resourceGroups/g/providers/Microsoft.Compute/disks/d"
            )


async def test_plain_http_arm_endpoints_are_refused() -> None:
    with pytest.raises(UserError, match="plain HTTP"):
        await ArmSource.open(
            Config("http://127.0.0.1:1", "00000000-0000-0000-0000-000000000001", access_token="t")
        )


async def test_wait_complete_follows_the_background_copy(arm: tuple[ArmSource, Setup]) -> None:
    source, setup = arm
    disk_id = await setup.disk("v2", sku="PremiumV2_LRS")
    _, (snap,) = await source.resolve(await setup.snapshot(disk_id, "v2-snap"))
    assert not snap.complete
    seen: list[float | None] = []
    done = await source.wait_complete(snap, lambda s: seen.append(s.completion_percent), poll_seconds=0.3)
    assert done.complete and seen[-1] == 100
    assert seen == sorted(seen, key=lambda p: p or 0) and len(seen) >= 2


# --- grants and listing --------------------------------------------------------------------------


async def test_diff_listing_yields_exactly_the_pages_written_and_cleared(
    arm: tuple[ArmSource, Setup],
) -> None:
    source, setup = arm
    disk_id = await setup.disk("data")
    await setup.write("data", [(0, b"a" * 4096), (64 * 1024, b"b" * 1024), (GiB - 4096, b"c" * 4096)])
    await setup.snapshot(disk_id, "s1")
    await setup.write(
        "data",
        # the last write spans the edge of the first 64 MiB listing window
        [(8192, b"d" * 512), (64 * 1024, b"b" * 512), ((64 << 20) - 512, b"e" * 1024)],
        clears=[(0, 1024), (GiB - 4096, 4096)],
    )
    await setup.snapshot(disk_id, "s2")
    _, (s1, s2) = await source.resolve(disk_id)

    async with read_grant(source, s2) as current, read_grant(source, s1) as base:
        end = await snapshot_blob_size(current)
        assert end == GiB + PAGE  # a 512-byte-sector disk exports a fixed VHD: one footer page more
        diff = await listed(current, base, end=end, page_size=2)
        full = await listed(current, None, end=end)

    expected_diff = {16: False, 128: False, 131071: False, 131072: False, 0: True, 1: True}
    expected_diff |= {(GiB - 4096) // PAGE + i: True for i in range(8)}
    assert pages(diff) == expected_diff
    assert [c.range.start for c in diff] == sorted(c.range.start for c in diff)

    footer = GiB // PAGE
    assert pages(full) == dict.fromkeys([*range(2, 8), 16, 128, 129, 131071, 131072, footer], False)


def counted_calls(monkeypatch: pytest.MonkeyPatch, proc: EmulatorProcess) -> Counter[str]:
    """The listing's "requests" and "timeouts" (ListingTimedOut), counted, against `proc` (its env set)."""
    counts: Counter[str] = Counter()
    real_call = listing_module._SasCaller.call

    async def counting_call(self: Any, what: str, request: Any) -> Any:
        counts["requests"] += 1
        try:
            return await real_call(self, what, request)
        except listing_module.ListingTimedOut:
            counts["timeouts"] += 1
            raise

    monkeypatch.setattr(listing_module._SasCaller, "call", counting_call)
    for key, value in proc.env.items():
        monkeypatch.setenv(key, value)
    return counts


async def test_listing_follows_every_marker_of_a_small_page_service(
    fresh_emulator: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    counts = counted_calls(monkeypatch, fresh_emulator("--max-page-ranges", "3"))
    async with opened() as (source, setup):
        disk_id = await setup.disk("frag")
        written = [(i * 8192, bytes([i]) * 512) for i in range(40)]  # 40 separate ranges
        await setup.write("frag", written)
        await setup.snapshot(disk_id, "s1")
        await setup.write(
            "frag", [(i * 8192 + 4096, b"x" * 512) for i in range(0, 40, 3)], clears=[(8192 * 5, 512)]
        )
        await setup.snapshot(disk_id, "s2")
        _, (s1, s2) = await source.resolve(disk_id)
        async with read_grant(source, s2) as current, read_grant(source, s1) as base:
            # dozens of ranges in one window: answers of 3 ranges, each after a NextMarker
            full = await listed(current, None, end=GiB + PAGE, window=GiB)
            full_requests, counts["requests"] = counts["requests"], 0
            # eight windows, several answers in most of them
            diff = await listed(current, base, end=512 * 1024, window=64 * 1024)
    assert full_requests >= len(full) // 3 + 1  # (+1: the footer's window)
    assert counts["requests"] >= len(diff) // 3
    valid = {i * 16 for i in range(40) if i != 5} | {i * 16 + 8 for i in range(0, 40, 3)} | {GiB // PAGE}
    assert pages(full) == dict.fromkeys(valid, False)  # page 80 (i = 5) was cleared in s2
    assert pages(diff) == {i * 16 + 8: False for i in range(0, 40, 3)} | {80: True}


async def test_a_window_that_times_out_is_listed_again_in_halves(
    fresh_emulator: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Get Page Ranges times out over more than 100 ranges (the emulator's model of a fragmented blob)
    counts = counted_calls(monkeypatch, fresh_emulator("--list-timeout-ranges", "100"))
    spread = [(i * (GiB // 400) // PAGE * PAGE, bytes([i % 251 + 1]) * 512) for i in range(400)]
    async with opened() as (source, setup):  # 400 ranges, about 25 in each 64 MiB
        disk_id = await setup.disk("frag")
        await setup.write("frag", spread)
        await setup.snapshot(disk_id, "s1")
        _, (s1,) = await source.resolve(disk_id)
        async with read_grant(source, s1) as current:
            full = await listed(current, None, end=GiB + PAGE, window=GiB + PAGE)
    assert counts["timeouts"] >= 3  # the whole disk, then both halves of it, at least
    assert pages(full) == dict.fromkeys([offset // PAGE for offset, _ in spread] + [GiB // PAGE], False)


async def test_a_diff_across_a_4_tib_resize_raises_diff_not_possible(arm: tuple[ArmSource, Setup]) -> None:
    source, setup = arm
    disk_id = await setup.disk("grows", size_gb=1024)
    await setup.snapshot(disk_id, "small")
    await setup.resize("grows", 5 * 1024)
    await setup.snapshot(disk_id, "large")
    _, (small, large) = await source.resolve(disk_id)
    async with read_grant(source, large) as current, read_grant(source, small) as base:
        with pytest.raises(DiffNotPossible, match="4 TiB"):
            await listed(current, base, end=8 * GiB, window=4 * GiB)


async def _sas_works(url: str) -> bool:
    async with BlobClient.from_blob_url(url, **credentials.transport_kwargs()) as blob:
        try:
            await blob.get_blob_properties()
        except HttpResponseError:
            return False
        return True


async def test_grants_are_revoked_after_exceptions_and_cancellation(arm: tuple[ArmSource, Setup]) -> None:
    source, setup = arm
    disk_id = await setup.disk("rev")
    await setup.snapshot(disk_id, "s1")
    _, (snap,) = await source.resolve(disk_id)

    urls: list[str] = []
    with pytest.raises(RuntimeError):
        async with read_grant(source, snap) as grant:
            urls.append(await grant.url())
            assert await _sas_works(urls[-1])
            raise RuntimeError("body failed")
    assert not await _sas_works(urls[-1])

    inside = asyncio.Event()

    async def hold() -> None:
        async with read_grant(source, snap) as grant:
            urls.append(await grant.url())
            inside.set()
            await asyncio.sleep(3600)

    task = asyncio.create_task(hold())
    await inside.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not await _sas_works(urls[-1])


async def test_a_revoked_sas_is_regranted_transparently(arm: tuple[ArmSource, Setup]) -> None:
    source, setup = arm
    disk_id = await setup.disk("regrant")
    await setup.write("regrant", [(0, b"z" * 512)])
    await setup.snapshot(disk_id, "s1")
    _, (snap,) = await source.resolve(disk_id)
    async with read_grant(source, snap) as grant:
        first = await grant.url()
        # Another run revokes the same snapshot (Azure revokes per snapshot, not per SAS).
        await (await setup.client.snapshots.begin_revoke_access(setup.group, "s1")).result()
        changes = await listed(grant, None, end=GiB + PAGE, window=GiB)
        assert await grant.url() != first
    assert pages(changes) == {0: False, GiB // PAGE: False}


async def test_snapshot_errors_never_show_the_sas(arm: tuple[ArmSource, Setup]) -> None:
    source, setup = arm
    disk_a = await setup.disk("a")
    disk_b = await setup.disk("b")
    await setup.snapshot(disk_a, "sa")
    await setup.snapshot(disk_b, "sb")
    _, (sa,) = await source.resolve(disk_a)
    _, (sb,) = await source.resolve(disk_b)
    async with read_grant(source, sa) as current, read_grant(source, sb) as base:
        with pytest.raises(ReplicationError) as caught:  # different lineages: no diff
            await listed(current, base, end=GiB + PAGE, window=GiB)
    assert not isinstance(caught.value, DiffNotPossible)
    assert "sig=" not in str(caught.value) and "sig%3D" not in str(caught.value)


async def test_waits_for_a_family_slot_held_by_other_processes_then_gives_up(
    arm: tuple[ArmSource, Setup], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(grants_module, "FAMILY_RETRY_BACKOFF_SECONDS", 0.1)
    arm_source, setup = arm
    disk_id = await setup.disk("busy")
    for i in range(6):
        await setup.snapshot(disk_id, f"s{i}")
    _, snaps = await arm_source.resolve(disk_id)
    others = [s.name for s in snaps[:5]]
    for name in others:  # another process holds all five SAS slots of the family
        poller = await setup.client.snapshots.begin_grant_access(
            setup.group, name, {"access": "Read", "durationInSeconds": 600}
        )
        await poller.result()

    short = await ArmSource.open(config_from_env(sas_wait_seconds=1.0))
    async with short:
        with pytest.raises(LimitError, match="five per family"):
            async with read_grant(short, snaps[5]):
                pytest.fail("granted beyond the family limit")

    async def release_one_later() -> None:
        await asyncio.sleep(0.5)
        await (await setup.client.snapshots.begin_revoke_access(setup.group, others[0])).result()

    release = asyncio.create_task(release_one_later())
    async with read_grant(arm_source, snaps[5]) as grant:
        assert await _sas_works(await grant.url())
    await release


async def test_no_sas_reaches_the_logs(
    arm: tuple[ArmSource, Setup], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="azure")  # an in-process CLI run may have quietened it
    source, setup = arm
    disk_id = await setup.disk("logged")
    await setup.snapshot(disk_id, "s1")
    await setup.snapshot(disk_id, "s2")
    _, (s1, s2) = await source.resolve(disk_id)
    async with read_grant(source, s2) as current, read_grant(source, s1) as base:
        signatures = [parse_qs(urlsplit(await g.url()).query)["sig"][0] for g in (current, base)]
        await listed(current, base, end=GiB + PAGE, window=GiB)
        await snapshot_blob_size(current)
    assert caplog.records  # the SDKs did log the requests
    for signature in signatures:
        assert signature not in caplog.text
        assert quote(signature, safe="") not in caplog.text
