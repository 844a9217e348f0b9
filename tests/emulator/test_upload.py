"""Direct upload (createOption Upload) driven by the real azure-mgmt-compute and azure-storage-blob clients:
its states, its Write SAS (Put Page and Put Page From URL), its end, and what Azure refuses."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError

from replicator.emulator.arm import vhd
from tests.emulator.test_arm_sdk import compute, error_code, grant, sas_blob, snapshot_body, unique
from tests.emulator.test_vm_restore_points import vm_body
from tests.helpers.blob_clients import BlobClients

MIB = 1 << 20
SIZE = 32 * MIB  # the disk's data; the upload is one VHD footer longer


def upload_body(upload_size: int | None = SIZE + 512, **creation: Any) -> dict[str, Any]:
    return {
        "location": "eastus",
        "sku": {"name": "Standard_LRS"},
        "properties": {
            "creationData": {"createOption": "Upload", "uploadSizeBytes": upload_size, **creation}
        },
    }


def refused(call: Any) -> HttpResponseError:
    with pytest.raises(HttpResponseError) as caught:
        call()
    return caught.value


def test_upload_states_writes_and_end(emulator_env: dict[str, str]) -> None:
    client, rg = compute(emulator_env), unique("rg")
    disk = client.disks.begin_create_or_update(rg, "up", upload_body()).result()
    assert disk.disk_state == "ReadyToUpload"
    assert disk.creation_data.upload_size_bytes == SIZE + 512 and disk.disk_size_bytes == SIZE
    # The source of a Put Page From URL: a page blob of an ordinary account, read with a bearer token.
    account = unique("acct").replace("-", "")
    service = BlobClients(emulator_env).key(account)
    service.create_container("src")
    source = service.get_blob_client("src", "b")
    source.create_page_blob(4 * MIB)
    source.upload_page(b"s" * MIB, offset=MIB, length=MIB)
    writer = sas_blob(emulator_env, grant(client, rg, "disks", "up", "Write"))
    assert client.disks.get(rg, "up").disk_state == "ActiveUpload"
    assert list(writer.list_page_ranges()) == []  # a fresh upload disk reads as zeros
    writer.upload_page(b"a" * 512, offset=0, length=512)
    writer.upload_pages_from_url(
        source.url, offset=8 * MIB, length=MIB, source_offset=MIB,
        source_authorization=f"Bearer {emulator_env['REPLICATOR_ACCESS_TOKEN']}",
    )  # fmt: skip
    footer = vhd.build_footer(SIZE, original_size=SIZE, created=datetime.now(UTC), unique_id=bytes(16))
    writer.upload_page(footer, offset=SIZE, length=512)
    past = refused(lambda: writer.upload_page(b"x" * 512, offset=SIZE + 512, length=512))
    assert past.status_code == 416
    client.disks.begin_revoke_access(rg, "up").result()
    done = client.disks.get(rg, "up")
    assert done.disk_state == "Unattached" and done.disk_size_bytes == SIZE
    reader = sas_blob(emulator_env, grant(client, rg, "disks", "up"))
    assert reader.download_blob(offset=0, length=512).readall() == b"a" * 512
    assert reader.download_blob(offset=8 * MIB, length=MIB).readall() == b"s" * MIB
    assert reader.download_blob(offset=SIZE, length=512).readall() == footer
    assert reader.download_blob(offset=MIB, length=512).readall() == bytes(512)
    client.disks.begin_revoke_access(rg, "up").result()
    client.snapshots.begin_create_or_update(rg, "s", snapshot_body(done.id)).result()  # an ordinary disk now


def test_upload_refusals(emulator_env: dict[str, str]) -> None:
    client, rg = compute(emulator_env), unique("rg")
    create = client.disks.begin_create_or_update
    for size in (20 * MIB, 32 * (1 << 40) + 512, SIZE + 1024):
        e = refused(lambda size=size: create(rg, "bad", upload_body(size)).result())
        assert (e.status_code, error_code(e)) == (400, "InvalidParameter"), size
    e = refused(lambda: create(rg, "bad", upload_body(sourceUri="https://x/y/z")).result())
    assert (e.status_code, error_code(e)) == (400, "InvalidParameter")
    e = refused(lambda: create(rg, "bad", upload_body(None)).result())
    assert error_code(e) == "InvalidParameter"
    biggest = create(rg, "big", upload_body(35183298347520)).result()  # the documented maximum
    assert biggest.disk_size_gb == 32767
    disk = create(rg, "up", upload_body()).result()
    e = refused(lambda: grant(client, rg, "disks", "up", "Read"))
    assert (e.status_code, error_code(e)) == (409, "OperationNotAllowed")
    e = refused(lambda: client.snapshots.begin_create_or_update(rg, "s", snapshot_body(disk.id)).result())
    assert error_code(e) == "OperationNotAllowed"
    client.disks.begin_revoke_access(rg, "up").result()  # no upload yet: still ReadyToUpload
    assert client.disks.get(rg, "up").disk_state == "ReadyToUpload"
    grant(client, rg, "disks", "up", "Write")
    e = refused(lambda: grant(client, rg, "disks", "up", "Read"))
    assert "ActiveUpload" in str(e.message)
    vm = vm_body(disk.id, {}, location="eastus")
    e = refused(lambda: client.virtual_machines.begin_create_or_update(rg, "vm", vm).result())
    assert (e.status_code, error_code(e)) == (409, "OperationNotAllowed")
    assert not list(client.virtual_machines.list(rg))  # refused before the VM exists
    e = refused(lambda: client.disks.begin_delete(rg, "up").result())  # a Write SAS is out
    assert e.status_code == 409
    client.disks.begin_revoke_access(rg, "up").result()
    client.disks.begin_delete(rg, "up").result()
