"""The ARM surface driven by the real azure-mgmt-compute clients (sync and aio) over HTTPS.

Data checks go through azure-storage-blob with the granted SAS, as the replicator reads them.
Every test uses unique resource-group names, so they share the session emulator safely.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import pytest
from azure.core.exceptions import ClientAuthenticationError, HttpResponseError, ResourceNotFoundError
from azure.core.rest import HttpRequest
from azure.mgmt.compute import ComputeManagementClient
from azure.mgmt.compute.aio import ComputeManagementClient as AsyncComputeManagementClient
from azure.storage.blob import BlobClient

from replicator.emulator.arm import vhd
from replicator.emulator.process import EmulatorProcess
from replicator.plumbing.credentials import AsyncStaticTokenCredential, StaticTokenCredential

GIB = 1 << 30
MIB = 1 << 20


def compute(
    env: dict[str, str], token: str | None = None, subscription: str | None = None
) -> ComputeManagementClient:
    return ComputeManagementClient(
        credential=StaticTokenCredential(token or env["REPLICATOR_ACCESS_TOKEN"]),
        subscription_id=subscription or env["AZURE_SUBSCRIPTION_ID"],
        base_url=env["REPLICATOR_ARM_ENDPOINT"],
        connection_verify=env["SSL_CERT_FILE"],
    )


def async_compute(env: dict[str, str], **kwargs: Any) -> AsyncComputeManagementClient:
    return AsyncComputeManagementClient(
        credential=AsyncStaticTokenCredential(env["REPLICATOR_ACCESS_TOKEN"]),
        subscription_id=env["AZURE_SUBSCRIPTION_ID"],
        base_url=env["REPLICATOR_ARM_ENDPOINT"],
        connection_verify=env["SSL_CERT_FILE"],
        **kwargs,
    )


def sas_blob(env: dict[str, str], sas_url: str) -> BlobClient:
    return BlobClient.from_blob_url(sas_url, connection_verify=env["SSL_CERT_FILE"])


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def disk_body(size_gb: int = 1, sku: str = "Standard_LRS") -> dict[str, Any]:
    return {
        "location": "eastus",
        "sku": {"name": sku},
        "properties": {"creationData": {"createOption": "Empty"}, "diskSizeGB": size_gb},
    }


def snapshot_body(disk_id: str, incremental: bool = True) -> dict[str, Any]:
    return {
        "location": "eastus",
        "properties": {
            "creationData": {"createOption": "Copy", "sourceResourceId": disk_id},
            "incremental": incremental,
        },
    }


def error_code(e: HttpResponseError) -> str:
    assert e.error is not None
    return str(e.error.code)


def grant(client: ComputeManagementClient, rg: str, kind: str, name: str, access: str = "Read") -> str:
    ops = client.disks if kind == "disks" else client.snapshots
    return ops.begin_grant_access(rg, name, {"access": access, "durationInSeconds": 600}).result().access_sas


# --- disks ---------------------------------------------------------------------------------


def test_disk_lifecycle(emulator_env: dict[str, str]) -> None:
    client = compute(emulator_env)
    rg, name = unique("rg"), "data-disk"
    disk = client.disks.begin_create_or_update(rg, name, disk_body(2)).result()
    sub = emulator_env["AZURE_SUBSCRIPTION_ID"]
    assert disk.id == f"/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Compute/disks/{name}"
    assert (disk.name, disk.type, disk.location, disk.sku.name) == (
        name,
        "Microsoft.Compute/disks",
        "eastus",
        "Standard_LRS",
    )
    assert (disk.disk_size_gb, disk.disk_size_bytes, disk.provisioning_state) == (2, 2 * GIB, "Succeeded")
    assert disk.disk_state == "Unattached"
    assert disk.creation_data.create_option == "Empty"
    assert disk.creation_data.logical_sector_size == 512
    assert uuid.UUID(disk.unique_id) and disk.time_created is not None
    assert client.disks.get(rg, name.upper()).unique_id == disk.unique_id  # ARM names are case-insensitive
    assert [d.name for d in client.disks.list_by_resource_group(rg)] == [name]
    assert disk.id in {d.id for d in client.disks.list()}

    grown = client.disks.begin_update(rg, name, {"properties": {"diskSizeGB": 3}}).result()
    assert (grown.disk_size_gb, grown.disk_size_bytes) == (3, 3 * GIB)
    with pytest.raises(HttpResponseError) as shrink:
        client.disks.begin_update(rg, name, {"properties": {"diskSizeGB": 1}}).result()
    assert shrink.value.status_code == 400 and error_code(shrink.value) == "BadRequest"
    assert "cannot be resized down" in str(shrink.value)
    with pytest.raises(HttpResponseError) as too_big:
        client.disks.begin_create_or_update(rg, "huge", disk_body(32768, "Premium_LRS")).result()
    assert error_code(too_big.value) == "InvalidParameter" and "32767" in str(too_big.value)

    client.disks.begin_delete(rg, name).result()
    with pytest.raises(ResourceNotFoundError) as gone:
        client.disks.get(rg, name)
    assert error_code(gone.value) == "ResourceNotFound"
    client.disks.begin_delete(rg, name).result()  # deleting a missing disk is a no-op, as in Azure
    again = client.disks.begin_create_or_update(rg, name, disk_body(2)).result()
    assert again.unique_id != disk.unique_id


def test_lro_answers_like_azure(emulator_env: dict[str, str]) -> None:
    client = compute(emulator_env)
    rg = unique("rg")
    sub = emulator_env["AZURE_SUBSCRIPTION_ID"]
    path = (
        f"/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Compute/disks/d?api-version=2026-03-02"
    )
    put = client.send_request(HttpRequest("PUT", path, json=disk_body()))
    assert put.status_code == 202
    assert put.headers["Retry-After"] == "1"
    assert "monitor=true" in put.headers["Location"]
    status = client.send_request(HttpRequest("GET", put.headers["Azure-AsyncOperation"])).json()
    assert status["status"] == "Succeeded"
    post = client.send_request(
        HttpRequest(
            "POST",
            path.replace("/d?", "/d/beginGetAccess?"),
            json={"access": "Read", "durationInSeconds": 60},
        )
    )
    assert post.status_code == 202
    status = client.send_request(HttpRequest("GET", post.headers["Azure-AsyncOperation"])).json()
    result = client.send_request(HttpRequest("GET", post.headers["Location"])).json()
    assert status["properties"]["output"] == result and set(result) == {"accessSAS"}
    assert client.send_request(HttpRequest("GET", path.split("?")[0])).status_code == 400  # no api-version
    assert (
        client.send_request(HttpRequest("GET", f"/subscriptions/{sub}/nothing?api-version=1")).json()[
            "error"
        ]["code"]
        == "InvalidResourceType"
    )


def test_listing_follows_next_link(emulator_env: dict[str, str]) -> None:
    client = compute(emulator_env)
    rg = unique("rg")
    names = sorted(f"d{i:02}" for i in range(12))
    for name in names:
        client.disks.begin_create_or_update(rg, name, disk_body()).result()
    sub = emulator_env["AZURE_SUBSCRIPTION_ID"]
    first = client.send_request(
        HttpRequest(
            "GET",
            f"/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Compute/disks?api-version=2026-03-02",
        )
    ).json()
    assert len(first["value"]) == 10 and "nextLink" in first
    assert [d.name for d in client.disks.list_by_resource_group(rg)] == names
    assert {d.id for d in client.disks.list_by_resource_group(rg)} <= {d.id for d in client.disks.list()}


# --- grants and data ------------------------------------------------------------------------


def test_read_sas_exports_a_fixed_vhd(emulator_env: dict[str, str]) -> None:
    client = compute(emulator_env)
    rg = unique("rg")
    disk = client.disks.begin_create_or_update(rg, "d", disk_body(1)).result()
    sas = grant(client, rg, "disks", "d")
    assert "sig=" in sas and "/md-" in sas
    assert client.disks.get(rg, "d").disk_state == "ActiveSAS"
    blob = sas_blob(emulator_env, sas)
    assert blob.get_blob_properties().size == GIB + 512
    footer = vhd.parse_footer(blob.download_blob(offset=GIB, length=512).readall())
    assert (footer.current_size, footer.disk_type) == (GIB, 2)
    assert footer.unique_id == uuid.UUID(disk.unique_id).bytes
    client.disks.begin_revoke_access(rg, "d").result()
    assert client.disks.get(rg, "d").disk_state == "Unattached"
    with pytest.raises(HttpResponseError) as denied:
        blob.get_blob_properties()
    assert denied.value.status_code == 403


def test_write_sas_then_incremental_diffs(emulator_env: dict[str, str]) -> None:
    client = compute(emulator_env)
    rg = unique("rg")
    disk = client.disks.begin_create_or_update(rg, "d", disk_body(1)).result()
    client.snapshots.begin_create_or_update(rg, "s0", snapshot_body(disk.id)).result()
    writer = sas_blob(emulator_env, grant(client, rg, "disks", "d", "Write"))
    writer.upload_page(b"a" * MIB, offset=0, length=MIB)
    writer.upload_page(b"b" * 4096, offset=8 * MIB, length=4096)
    client.disks.begin_revoke_access(rg, "d").result()
    s1 = client.snapshots.begin_create_or_update(rg, "s1", snapshot_body(disk.id)).result()
    writer = sas_blob(emulator_env, grant(client, rg, "disks", "d", "Write"))
    writer.upload_page(b"c" * 1024, offset=4 * MIB, length=1024)
    writer.clear_page(offset=8 * MIB, length=4096)
    client.disks.begin_revoke_access(rg, "d").result()
    s2 = client.snapshots.begin_create_or_update(rg, "s2", snapshot_body(disk.id)).result()
    assert s1.incremental_snapshot_family_id == s2.incremental_snapshot_family_id
    client.snapshots.begin_delete(rg, "s0").result()  # an older snapshot's deletion keeps later diffs
    with pytest.raises(HttpResponseError) as refused:
        sas_blob(emulator_env, grant(client, rg, "snapshots", "s1")).upload_page(
            b"x" * 512, offset=0, length=512
        )
    assert refused.value.status_code == 403

    base_sas = grant(client, rg, "snapshots", "s1")
    current = sas_blob(emulator_env, grant(client, rg, "snapshots", "s2"))
    assert current.download_blob(offset=0, length=512).readall() == b"a" * 512
    pages, clears = current.get_page_range_diff_for_managed_disk(base_sas)
    assert pages == [{"start": 4 * MIB, "end": 4 * MIB + 1023}]
    assert clears == [{"start": 8 * MIB, "end": 8 * MIB + 4095}]
    full = [(r.start, r.end) for r in sas_blob(emulator_env, base_sas).list_page_ranges()]
    assert (0, MIB - 1) in full and (GIB, GIB + 511) in full  # data and the VHD footer
    client.snapshots.begin_revoke_access(rg, "s1").result()
    with pytest.raises(HttpResponseError) as revoked:
        sas_blob(emulator_env, base_sas).get_blob_properties()
    assert revoked.value.status_code == 403


def test_diff_pages_follow_next_marker(fresh_emulator: Any) -> None:
    env = fresh_emulator("--max-page-ranges", "2").env
    client = compute(env)
    disk = client.disks.begin_create_or_update("rg", "d", disk_body(1)).result()
    client.snapshots.begin_create_or_update("rg", "s1", snapshot_body(disk.id)).result()
    writer = sas_blob(env, grant(client, "rg", "disks", "d", "Write"))
    offsets = [i * MIB for i in range(5)]
    for offset in offsets:
        writer.upload_page(b"w" * 512, offset=offset, length=512)
    client.disks.begin_revoke_access("rg", "d").result()
    client.snapshots.begin_create_or_update("rg", "s2", snapshot_body(disk.id)).result()
    base = grant(client, "rg", "snapshots", "s1")
    current = sas_blob(env, grant(client, "rg", "snapshots", "s2"))
    starts, marker, calls = [], None, 0
    while True:
        page = current._client.page_blob.get_page_ranges_diff(prev_snapshot_url=base, marker=marker)
        starts += [r.start for r in page.page_range or []]
        calls += 1
        marker = page.next_marker
        if not marker:
            break
    assert starts == offsets and calls == 3


# --- snapshots (aio) ------------------------------------------------------------------------


async def test_snapshot_lifecycle_aio(emulator_env: dict[str, str]) -> None:
    rg = unique("rg")
    async with async_compute(emulator_env) as client:
        disk = await (await client.disks.begin_create_or_update(rg, "d", disk_body(1))).result()
        s1 = await (await client.snapshots.begin_create_or_update(rg, "s1", snapshot_body(disk.id))).result()
        s2 = await (await client.snapshots.begin_create_or_update(rg, "s2", snapshot_body(disk.id))).result()
        full = await (
            await client.snapshots.begin_create_or_update(
                rg, "full", snapshot_body(disk.id, incremental=False)
            )
        ).result()
        assert (s1.incremental, full.incremental, full.incremental_snapshot_family_id) == (True, False, None)
        assert s1.incremental_snapshot_family_id == s2.incremental_snapshot_family_id
        assert s1.incremental_snapshot_family_id
        assert (s1.creation_data.source_resource_id, s1.creation_data.source_unique_id) == (
            disk.id,
            disk.unique_id,
        )
        assert (s1.disk_size_gb, s1.disk_size_bytes, s1.completion_percent) == (1, GIB, 100)
        assert (s1.creation_data.logical_sector_size, s1.provisioning_state) == (512, "Succeeded")
        assert s1.unique_id != s2.unique_id and s1.time_created is not None
        assert [s.name async for s in client.snapshots.list_by_resource_group(rg)] == ["full", "s1", "s2"]
        assert s1.id in {s.id async for s in client.snapshots.list()}
        access = await (
            await client.snapshots.begin_grant_access(rg, "s1", {"access": "Read", "durationInSeconds": 60})
        ).result()
        assert "sig=" in access.access_sas
        with pytest.raises(HttpResponseError) as write:
            await client.snapshots.begin_grant_access(rg, "s2", {"access": "Write", "durationInSeconds": 60})
        assert error_code(write.value) == "InvalidParameter"
        with pytest.raises(HttpResponseError) as busy:
            await client.snapshots.begin_delete(rg, "s1")
        assert error_code(busy.value) == "OperationNotAllowed"
        await (await client.snapshots.begin_revoke_access(rg, "s1")).result()
        await (await client.snapshots.begin_delete(rg, "s1")).result()
        with pytest.raises(ResourceNotFoundError):
            await client.snapshots.get(rg, "s1")
        # a disk deleted and re-created under its name starts a new snapshot family
        await (await client.disks.begin_delete(rg, "d")).result()
        disk2 = await (await client.disks.begin_create_or_update(rg, "d", disk_body(1))).result()
        s3 = await (await client.snapshots.begin_create_or_update(rg, "s3", snapshot_body(disk2.id))).result()
        assert disk2.unique_id != disk.unique_id
        assert s3.incremental_snapshot_family_id != s2.incremental_snapshot_family_id
        assert (await client.snapshots.get(rg, "s2")).creation_data.source_unique_id == disk.unique_id


def test_snapshot_tags_round_trip_and_subscription_listing_follows_next_link(
    emulator_env: dict[str, str],
) -> None:
    """Tags given at create come back from get, the resource-group list and the subscription list
    (more than one page: every nextLink followed); a PUT on an existing snapshot replaces them."""
    client = compute(emulator_env)
    groups = [unique("rg"), unique("rg")]
    tagged: dict[str, dict[str, str]] = {}
    for n in range(12):  # two disks: Azure allows 7 incremental snapshots per disk per 5 minutes
        group = groups[n % 2]
        disk = client.disks.begin_create_or_update(group, f"d{n % 2}", disk_body()).result()
        tags = {"replicator-owner": "replicator"} if n % 3 else {}
        body = {**snapshot_body(disk.id), "tags": tags} if tags else snapshot_body(disk.id)
        snap = client.snapshots.begin_create_or_update(group, f"s{n:02}", body).result()
        assert snap.tags == tags
        tagged[snap.id] = tags
    assert client.snapshots.get(groups[1], "s01").tags == {"replicator-owner": "replicator"}
    by_group = {s.id: s.tags for s in client.snapshots.list_by_resource_group(groups[0])}
    assert by_group == {i: t for i, t in tagged.items() if f"/{groups[0]}/" in i}
    everywhere = {s.id: s.tags for s in client.snapshots.list()}
    assert {i: everywhere.get(i) for i in tagged} == tagged
    first = client.send_request(
        HttpRequest(
            "GET",
            f"/subscriptions/{emulator_env['AZURE_SUBSCRIPTION_ID']}/providers/Microsoft.Compute/snapshots"
            "?api-version=2026-03-02",
        )
    ).json()
    assert len(first["value"]) == 10 and "nextLink" in first
    disk_id = client.disks.get(groups[0], "d0").id
    retagged = client.snapshots.begin_create_or_update(
        groups[0], "s00", {**snapshot_body(disk_id), "tags": {"team": "dba"}}
    ).result()
    assert retagged.tags == {"team": "dba"} == client.snapshots.get(groups[0], "s00").tags


async def test_premium_v2_completion_progress_aio(emulator_env: dict[str, str]) -> None:
    """The session emulator runs with --completion-seconds 2."""
    rg = unique("rg")
    async with async_compute(emulator_env) as client:
        disk = await (
            await client.disks.begin_create_or_update(rg, "d", disk_body(4, "PremiumV2_LRS"))
        ).result()
        assert disk.creation_data.logical_sector_size == 4096
        snap = await (await client.snapshots.begin_create_or_update(rg, "s", snapshot_body(disk.id))).result()
        assert snap.completion_percent < 100 and snap.provisioning_state == "Succeeded"
        with pytest.raises(HttpResponseError) as early:
            await client.snapshots.begin_grant_access(rg, "s", {"access": "Read", "durationInSeconds": 60})
        assert error_code(early.value) == "OperationNotAllowed" and "completionPercent" in str(early.value)
        seen = [snap.completion_percent]
        while seen[-1] < 100:
            await asyncio.sleep(0.3)
            seen.append((await client.snapshots.get(rg, "s")).completion_percent)
            assert len(seen) < 30, "completionPercent did not reach 100"
        assert seen == sorted(seen) and len(set(seen)) > 2
        access = await (
            await client.snapshots.begin_grant_access(rg, "s", {"access": "Read", "durationInSeconds": 60})
        ).result()
    blob = sas_blob(emulator_env, access.access_sas)
    assert blob.get_blob_properties().size == 4 * GIB  # 4096-byte sectors: raw data, no VHD footer


# --- limits ---------------------------------------------------------------------------------


def test_snapshot_limits(emulator_env: dict[str, str]) -> None:
    client = compute(emulator_env)
    rg = unique("rg")
    disk = client.disks.begin_create_or_update(rg, "d", disk_body()).result()
    for i in range(7):
        client.snapshots.begin_create_or_update(rg, f"s{i}", snapshot_body(disk.id)).result()
    with pytest.raises(HttpResponseError) as rate:
        client.snapshots.begin_create_or_update(rg, "s7", snapshot_body(disk.id))
    assert rate.value.status_code == 409 and error_code(rate.value) == "OperationNotAllowed"
    assert "7 incremental snapshots" in str(rate.value) and "5 minutes" in str(rate.value)

    for i in range(5):
        grant(client, rg, "snapshots", f"s{i}")
    grant(client, rg, "snapshots", "s0")  # a fresh SAS on a granted snapshot does not count twice
    with pytest.raises(HttpResponseError) as sas:
        grant(client, rg, "snapshots", "s5")
    assert sas.value.status_code == 409 and error_code(sas.value) == "OperationNotAllowed"
    assert "5 SAS per snapshot family" in str(sas.value)
    client.snapshots.begin_revoke_access(rg, "s0").result()
    grant(client, rg, "snapshots", "s5")


# --- auth and persistence -------------------------------------------------------------------


def test_authentication_and_subscription(emulator_env: dict[str, str]) -> None:
    with pytest.raises(ClientAuthenticationError) as wrong:
        compute(emulator_env, token="not-the-token").disks.get("rg", "d")
    assert wrong.value.status_code == 401 and error_code(wrong.value) == "InvalidAuthenticationToken"
    other = "11111111-2222-3333-4444-555555555555"
    with pytest.raises(ResourceNotFoundError) as sub:
        compute(emulator_env, subscription=other).disks.get("rg", "d")
    assert error_code(sub.value) == "SubscriptionNotFound"
    anonymous = ComputeManagementClient(
        StaticTokenCredential("x"), other, base_url=emulator_env["REPLICATOR_ARM_ENDPOINT"],
        connection_verify=emulator_env["SSL_CERT_FILE"], authentication_policy=None,
        policies=[],
    )  # fmt: skip
    response = anonymous.send_request(
        HttpRequest("GET", f"/subscriptions/{other}/providers/Microsoft.Compute/disks?api-version=1")
    )
    assert (
        response.status_code == 401 and json.loads(response.text())["error"]["code"] == "AuthenticationFailed"
    )


def test_state_survives_restart(fresh_emulator: Any) -> None:
    emulator: EmulatorProcess = fresh_emulator()
    client = compute(emulator.env)
    disk = client.disks.begin_create_or_update("rg", "d", disk_body()).result()
    snap = client.snapshots.begin_create_or_update("rg", "s", snapshot_body(disk.id)).result()
    sas = grant(client, "rg", "snapshots", "s")
    emulator.restart()
    client = compute(emulator.env)
    assert client.disks.get("rg", "d").unique_id == disk.unique_id
    again = client.snapshots.get("rg", "s")
    assert (again.unique_id, again.disk_state) == (snap.unique_id, "ActiveSAS")
    assert sas_blob(emulator.env, sas).get_blob_properties().size == GIB + 512
