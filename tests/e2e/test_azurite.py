"""The client-streamed path against Azurite: an independent implementation of the target's blob plane.

The source is the project's emulator (Azurite has no managed disks and no page-range diff); the
target is Azurite over plain HTTP (`--allow-http`), authorised by an account SAS in the target URL.
Azurite lacks Put Page From URL, which is exactly why `--mode stream` exists.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest
from azure.storage.blob import AccountSasPermissions, ContainerClient, ResourceTypes, generate_account_sas

from tests.azurite_process import ACCOUNT, ACCOUNT_KEY, AzuriteProcess, azurite_binary
from tests.e2e.world import World, pattern
from tests.helpers.cli_runs import Run

pytestmark = pytest.mark.azurite
MiB = 1024 * 1024
ACCOUNT_KEY_CREDENTIAL = {"account_name": ACCOUNT, "account_key": ACCOUNT_KEY}


@pytest.fixture(scope="module")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AzuriteProcess]:
    if azurite_binary() is None:
        pytest.fail("azurite-blob is not installed: scripts/setup.sh installs it into node_modules")
    proc = AzuriteProcess(tmp_path_factory.mktemp("azurite"))
    proc.start()
    yield proc
    proc.stop()


def _sas_target(azurite: AzuriteProcess) -> str:
    sas = generate_account_sas(
        ACCOUNT,
        ACCOUNT_KEY,
        resource_types=ResourceTypes(service=True, container=True, object=True),
        permission=AccountSasPermissions(
            read=True, write=True, delete=True, list=True, add=True, create=True
        ),
        expiry=datetime.now(UTC) + timedelta(hours=1),
    )
    return f"{azurite.blob_endpoint}/dr{uuid.uuid4().hex[:10]}/replica.vhd?{sas}"


def test_stream_mode_into_azurite(
    world: World, azurite: AzuriteProcess, replicate: Callable[..., Run]
) -> None:
    disk = world.create_disk("azurite-src", 1)
    world.write(
        disk, (512, pattern(1, 3 * MiB + 512)), (600 * MiB, pattern(2, 8192)), (900 * MiB, pattern(3, 4096))
    )
    s1 = world.snapshot(disk)
    url = _sas_target(azurite)
    args = ("--source", disk.id, "--target", url, "--mode", "stream", "--allow-http", "--json")

    first = replicate(*args)
    assert first.code == 0, first.err
    (full,) = first.doc["snapshots"]
    assert full["mode"] == "full"
    world.assert_restore_point_equals(url, full["restore_point"], s1)

    world.write(disk, (2 * MiB, pattern(4, 2 * MiB)), (600 * MiB, 4096), (1000 * MiB, pattern(5, 1024)))
    s2 = world.snapshot(disk)
    second = replicate(*args)
    assert second.code == 0, second.err
    (diff,) = second.doc["snapshots"]
    assert diff["mode"] == "diff"
    assert diff["changed_bytes"] == 2 * MiB + 1024 and diff["cleared_bytes"] == 4096
    world.assert_restore_point_equals(url, diff["restore_point"], s2)
    # the earlier restore point is untouched by the diff
    world.assert_restore_point_equals(url, full["restore_point"], s1)
    assert "sig=" not in first.err + second.err + first.out + second.out


def test_server_mode_into_azurite_is_refused_or_fails_cleanly(
    world: World, azurite: AzuriteProcess, replicate: Callable[..., Run]
) -> None:
    """Azurite lacks Put Page From URL: server mode fails with one clear line and leaves no restore point."""
    disk = world.create_disk("azurite-srv", 1)
    world.write(disk, (0, pattern(6, 4096)))
    world.snapshot(disk)
    url = _sas_target(azurite)
    run = replicate(
        "--source", disk.id, "--target", url, "--mode", "server", "--allow-http", "--max-attempts", "2"
    )
    assert run.code == 1
    assert "Traceback" not in run.err and "sig=" not in run.err
    container = ContainerClient(azurite.blob_endpoint, url.split("/")[4], credential=ACCOUNT_KEY_CREDENTIAL)
    with container:
        assert [b.name for b in container.list_blobs(include=["snapshots"]) if b.snapshot] == []
