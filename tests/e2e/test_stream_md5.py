"""Stream mode sends each chunk with the MD5 it checked on the read, instead of hashing it twice:
the digest must be the body's (the service refuses a body that does not match it)."""

from __future__ import annotations

import hashlib

import pytest
from azure.core.exceptions import HttpResponseError

from replicator.cli.replicate_cmd import load
from replicator.core.ranges import Op, Range
from replicator.plumbing.credentials import AsyncStaticTokenCredential
from replicator.source.arm import snapshot_info
from replicator.source.disk_auth import DiskAuth
from replicator.source.reader import SasBlobReader
from replicator.target.page_blob import PageBlobTarget
from tests.e2e.world import World, pattern


async def test_a_chunk_read_with_its_md5_is_written_with_it_and_a_wrong_md5_is_refused(world: World) -> None:
    disk = world.create_disk("md5", 1)
    world.write(disk, (8192, pattern(5, 64 * 1024)))
    snapshot_id = world.snapshot(disk)
    url = world.target_url()
    world.container(url).create_container()
    world.target(url).create_page_blob(1024 * 1024)
    config = load(["--source", disk.id, "--target", url], env=world.env)
    r = Range(8192, 8192 + 64 * 1024)
    snapshot = snapshot_info(world.compute.snapshots.get(world.rg, snapshot_id.rsplit("/", 1)[1]))
    async with PageBlobTarget(config, command="replicate") as target:
        reader = SasBlobReader(DiskAuth(AsyncStaticTokenCredential("unused")))  # unprotected: no token
        try:
            with world.read_snapshot(snapshot_id) as source:  # a Read SAS, revoked on leaving
                data, md5 = await reader.read(source.url, snapshot, r)
        finally:
            await reader.aclose()
        assert data == pattern(5, 64 * 1024) and md5 == hashlib.md5(data).digest()
        wrong = hashlib.md5(b"something else").digest()
        with pytest.raises(HttpResponseError) as refused:
            await target.put_pages(Op("copy", r), data, wrong)
        assert refused.value.error_code == "Md5Mismatch"
        assert world.target(url).download_blob(offset=r.start, length=r.length).readall() == bytes(r.length)
        await target.put_pages(Op("copy", r), data, md5)
    assert world.target(url).download_blob(offset=r.start, length=r.length).readall() == data
