"""The async SDK (aiohttp transport) against the emulator: writes, snapshots, paged diffs, leases."""

from __future__ import annotations

import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.storage.blob.aio import BlobServiceClient

from replicator.plumbing.credentials import AsyncStaticTokenCredential

P = 512


def service(env: dict[str, str], account: str, *, bearer: bool) -> BlobServiceClient:
    credential = (
        AsyncStaticTokenCredential(env["REPLICATOR_ACCESS_TOKEN"])
        if bearer
        else {"account_name": account, "account_key": env["REPLICATOR_ACCOUNT_KEY"]}
    )
    url = f"{env['REPLICATOR_BLOB_ENDPOINT']}/{account}"
    return BlobServiceClient(url, credential, connection_verify=env["SSL_CERT_FILE"])


@pytest.mark.parametrize("bearer", [False, True], ids=["shared-key", "bearer"])
async def test_async_page_blob_round_trip(emulator_env: dict[str, str], unique_name, bearer: bool) -> None:
    async with service(emulator_env, unique_name("acct"), bearer=bearer) as svc:
        await svc.create_container("c")
        blob = svc.get_blob_client("c", "b")
        await blob.create_page_blob(32 * P, metadata={"k": "v"})
        await blob.upload_page(b"a" * 4 * P, offset=0, length=4 * P)
        snap = (await blob.create_snapshot())["snapshot"]
        await blob.upload_page(b"b" * P, offset=8 * P, length=P)
        await blob.clear_page(offset=P, length=P)
        diff = [(r.start, r.end, r.cleared) async for r in blob.list_page_ranges(previous_snapshot=snap)]
        assert diff == [(P, 2 * P - 1, True), (8 * P, 9 * P - 1, False)]
        data = await (await blob.download_blob(offset=0, length=2 * P)).readall()
        assert data == b"a" * P + bytes(P)
        lease = await blob.acquire_lease(lease_duration=-1)
        with pytest.raises(HttpResponseError) as exc:
            await blob.resize_blob(64 * P)
        assert exc.value.error_code == "LeaseIdMissing"
        await blob.resize_blob(64 * P, lease=lease)
        await lease.release()
        props = await blob.get_blob_properties()
        assert (props.size, props.metadata) == (64 * P, {"k": "v"})
        await blob.delete_blob(delete_snapshots="include")
        with pytest.raises(ResourceNotFoundError) as exc:
            await blob.get_blob_properties()
        assert exc.value.error_code == "BlobNotFound"
