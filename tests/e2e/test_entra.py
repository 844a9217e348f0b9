"""End to end: Entra-ID-protected disks (`dataAccessAuthMode: AzureActiveDirectory`) through the real CLI
in a child process, whose credential is DefaultAzureCredential on the emulator's managed-identity
endpoint (IDENTITY_ENDPOINT, IDENTITY_HEADER; no REPLICATOR_ACCESS_TOKEN): both copy modes, --plan,
--verify, mixed families, a diff the service refuses, an identity without the data role,
REPLICATOR_ACCESS_TOKEN refused, list / status / restore, and the challenge fallback.

The emulator's system identity holds "Data Operator for Managed Disks"; a user-assigned identity
(AZURE_CLIENT_ID, any new client ID) holds nothing until `/_emulator/identities/<id>` gives it a role.
Every restore point is read back byte-for-byte by the World's oracle, which sends a disk token of
its own where the source is protected.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from dataclasses import replace

import pytest
from azure.identity.aio import DefaultAzureCredential

from replicator.cli.replicate_cmd import load
from replicator.core.ranges import Range
from replicator.devtools.disk_builder import control
from replicator.source.arm import ArmSource
from replicator.source.grants import read_grant
from replicator.source.listing import list_changes, snapshot_blob_size
from tests.e2e.world import Disk, GiB, MiB, World, pattern
from tests.helpers.cli_runs import Run, run

ENTRA = "AzureActiveDirectory"
ROLE = "Data Operator for Managed Disks"
ROLE_ID = "959f8984-c045-4866-89c7-12bf9737be2e"
DOWNLOAD = "Microsoft.Compute/snapshots/download/action"


@pytest.fixture
def entra(world: World, emulator_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The runs' environment: the emulator's without REPLICATOR_ACCESS_TOKEN, so every token (ARM, the
    target account, the disk plane) comes from DefaultAzureCredential. The World keeps the token it
    was built with for its own setup."""
    monkeypatch.delenv("REPLICATOR_ACCESS_TOKEN")
    return {k: v for k, v in emulator_env.items() if k != "REPLICATOR_ACCESS_TOKEN"}


@pytest.fixture
def refusing_diffs(world: World, request: pytest.FixtureRequest) -> Iterator[int]:
    """The emulator refuses a diff whose previous snapshot is protected (the answer Azure does not
    document either way) with the status the test is parametrized with, for the test's duration."""
    status = getattr(request, "param", 403)
    control(world.env, "entra", {"refuse_protected_previous": status})
    try:
        yield status
    finally:
        control(world.env, "entra", {"refuse_protected_previous": False})


def replicate(env: dict[str, str], *args: str) -> Run:
    return run(env, *args)


def _protected_disk(world: World) -> tuple[Disk, str]:
    """A protected disk with data at both ends and one protected snapshot of it, s1."""
    disk = world.create_disk("d", 1, auth_mode=ENTRA)
    world.write(disk, (0, pattern(1, 2 * MiB)), (1023 * MiB, pattern(2, MiB)))
    return disk, world.snapshot(disk, "s1", auth_mode=ENTRA)


def _results(done: Run) -> list[tuple[str, str]]:
    assert done.code == 0, done.err
    return [(s["mode"], s["reason"]) for s in done.doc["snapshots"]]


@pytest.mark.parametrize("mode", ["server", "stream"])
def test_a_protected_disk_full_then_diff_with_plan_and_verify(
    world: World, entra: dict[str, str], mode: str
) -> None:
    disk, s1 = _protected_disk(world)
    url = world.target_url()
    args = ("--source", disk.id, "--target", url, "--mode", mode, "--json")
    first = replicate(entra, *args, "--verify")
    assert [m for m, _ in _results(first)] == ["full"] and first.doc["snapshots"][0]["verified"]
    world.assert_restore_point_equals(url, first.doc["snapshots"][0]["restore_point"], s1)

    world.write(disk, (MiB, pattern(3, MiB)), (1023 * MiB, 4096))
    s2 = world.snapshot(disk, "s2", auth_mode=ENTRA)
    plan = replicate(entra, *args, "--plan")
    assert [m for m, _ in _results(plan)] == ["diff"] and plan.doc["status"] == "planned"
    planned = plan.doc["snapshots"][0]
    assert (planned["changed_bytes"], planned["cleared_bytes"]) == (MiB, 4096)
    assert len(world.restore_points(url)) == 1  # --plan wrote nothing

    second = replicate(entra, *args, "--verify")
    assert _results(second) == [("diff", "diff from s1")] and second.doc["snapshots"][0]["verified"]
    world.assert_restore_point_equals(url, second.doc["snapshots"][0]["restore_point"], s2)
    world.assert_sas_free(s1, s2)


def test_snapshot_now_list_status_and_restore_of_a_protected_disk(
    world: World, entra: dict[str, str]
) -> None:
    disk = world.create_disk("d", 1, auth_mode=ENTRA)
    world.write(disk, (0, pattern(1, 2 * MiB)), (1023 * MiB, pattern(2, MiB)))
    url = world.target_url()
    taken = replicate(entra, "--source", disk.id, "--target", url, "--snapshot-now", "--json")
    assert [m for m, _ in _results(taken)] == ["full"]
    s1 = taken.doc["snapshot_taken"]
    # the snapshot the tool takes is protected as its disk is (ARM documents no inheritance)
    assert world.compute.snapshots.get(world.rg, s1.rsplit("/", 1)[1]).data_access_auth_mode == ENTRA

    listed = replicate(entra, "list", "--target", url, "--json")
    assert listed.code == 0, listed.err
    points = listed.doc["restore_points"]
    assert [p["data_access_auth_mode"] for p in points] == [ENTRA]
    assert "Entra ID" in replicate(entra, "list", "--target", url).out
    status = replicate(entra, "status", "--target", url, "--max-age", "1h", "--json")
    assert status.code == 0 and status.doc["status"] == "fresh", status.err

    where = ("--resource-group", world.rg, "--location", world.location, "--sku", "Standard_LRS", "--json")
    restored = replicate(entra, "restore", "--target", url, "--point", "latest", "--disk-name", "r1", *where)
    assert restored.code == 0, restored.err
    assert restored.doc["data_access_auth_mode"] == ENTRA
    assert world.compute.disks.get(world.rg, "r1").data_access_auth_mode == ENTRA
    world.assert_disk_equals("r1", s1, full=True)  # read with a disk token: the new disk is protected

    plain = replicate(
        entra, "restore", "--target", url, "--point", points[0]["id"], "--disk-name", "r2", *where,
        "--data-access-auth-mode", "None",
    )  # fmt: skip
    assert plain.code == 0, plain.err
    assert world.compute.disks.get(world.rg, "r2").data_access_auth_mode == "None"
    world.assert_disk_equals("r2", s1)


def test_a_mixed_family_diffs_both_ways(world: World, entra: dict[str, str]) -> None:
    """Unprotected s1, protected s2, unprotected s3 of one disk: each diff carries the disk token, which
    authorizes the protected side whichever it is."""
    disk = world.create_disk("d", 1, auth_mode=ENTRA)
    url = world.target_url()
    args = ("--source", disk.id, "--target", url, "--json")
    snaps = []
    for n, auth_mode in enumerate((None, ENTRA, None), 1):
        world.write(disk, (n * MiB, pattern(n, MiB)))
        snaps.append(world.snapshot(disk, f"s{n}", auth_mode=auth_mode))
        done = replicate(entra, *args)
        assert [m for m, _ in _results(done)] == (["full"] if n == 1 else ["diff"])
        world.assert_restore_point_equals(url, done.doc["snapshots"][0]["restore_point"], snaps[-1])
    listed = replicate(entra, "list", "--target", url, "--json").doc["restore_points"]
    assert [p["data_access_auth_mode"] for p in listed] == [None, ENTRA, None]


@pytest.mark.parametrize("refusing_diffs", [403, 401], indirect=True)
def test_a_refused_diff_is_a_full_copy_with_the_reason(
    world: World, entra: dict[str, str], refusing_diffs: int
) -> None:
    disk, s1 = _protected_disk(world)
    url = world.target_url()
    args = ("--source", disk.id, "--target", url, "--json")
    assert [m for m, _ in _results(replicate(entra, *args))] == ["full"]
    world.write(disk, (MiB, pattern(3, MiB)))
    s2 = world.snapshot(disk, "s2", auth_mode=ENTRA)

    planned = replicate(entra, *args, "--plan")
    ((mode, reason),) = _results(planned)
    assert mode == "full"
    code = {403: "AuthorizationFailure", 401: "InvalidAuthenticationInfo"}[refusing_diffs]
    assert reason == f"the service refused the diff from s1 ({code} to the Entra ID token)"
    done = replicate(entra, *args)
    assert _results(done) == [(mode, reason)]
    world.assert_restore_point_equals(url, done.doc["snapshots"][0]["restore_point"], s2)
    world.assert_sas_free(s1, s2)


def test_an_identity_without_the_role_exits_2_naming_it_and_writes_nothing(
    world: World, entra: dict[str, str]
) -> None:
    disk, s1 = _protected_disk(world)
    url = world.target_url()
    client_id = str(uuid.uuid4())  # a user-assigned identity: no role until one is given
    identity = {**entra, "AZURE_CLIENT_ID": client_id}
    args = ("--source", disk.id, "--target", url, "--json")

    refused = replicate(identity, *args)
    assert refused.code == 2 and refused.doc["status"] == "bad input", refused.err
    assert ROLE in refused.err and ROLE_ID in refused.err and DOWNLOAD in refused.err
    assert f"user-assigned managed identity {client_id}" in refused.err and "s1" in refused.err
    assert not world.container(url).exists()  # nothing written, not even the container
    world.assert_sas_free(s1)  # the probe's grant was revoked

    # A custom role with the one data action is enough.
    control(world.env, f"identities/{client_id}", {"actions": [DOWNLOAD]})
    done = replicate(identity, *args)
    assert [m for m, _ in _results(done)] == ["full"]
    world.assert_restore_point_equals(url, done.doc["snapshots"][0]["restore_point"], s1)


def test_an_identity_without_the_role_on_the_protected_base_exits_2_before_the_diff(
    world: World, entra: dict[str, str]
) -> None:
    """Protected base s1 (replicated by the system identity), unprotected s2: the next run reads s1 only
    as the diff's previous snapshot, and is still checked before anything is written."""
    disk, s1 = _protected_disk(world)
    url = world.target_url()
    args = ("--source", disk.id, "--target", url, "--json")
    assert [m for m, _ in _results(replicate(entra, *args))] == ["full"]
    world.write(disk, (MiB, pattern(3, MiB)))
    s2 = world.snapshot(disk, "s2", auth_mode=None)
    points = len(world.restore_points(url))

    identity = {**entra, "AZURE_CLIENT_ID": str(uuid.uuid4())}
    refused = replicate(identity, *args)
    assert refused.code == 2 and ROLE in refused.err and "s1" in refused.err, refused.err
    assert len(world.restore_points(url)) == points
    world.assert_sas_free(s1, s2)


def test_replicator_access_token_cannot_read_a_protected_source(
    world: World, entra: dict[str, str], emulator_env: dict[str, str]
) -> None:
    disk, s1 = _protected_disk(world)
    url = world.target_url()
    token = emulator_env["REPLICATOR_ACCESS_TOKEN"]
    with_token = {**entra, "REPLICATOR_ACCESS_TOKEN": token}
    done = replicate(with_token, "--source", disk.id, "--target", url, "--json")
    assert done.code == 2 and done.doc["status"] == "bad input"
    assert "REPLICATOR_ACCESS_TOKEN" in done.err and "unset" in done.err
    assert "https://disk.azure.com/" in done.err
    assert token not in done.out + done.err
    assert not world.container(url).exists()
    world.assert_sas_free(s1)
    # --snapshot-now is refused before it takes a snapshot nobody could read with that token.
    before = {s.name for s in world.compute.snapshots.list_by_resource_group(world.rg)}
    now = replicate(with_token, "--source", disk.id, "--target", url, "--snapshot-now", "--json")
    assert now.code == 2 and "the disk d is protected by Entra ID" in now.err
    assert {s.name for s in world.compute.snapshots.list_by_resource_group(world.rg)} == before


async def test_a_snapshot_arm_does_not_report_protected_is_found_by_the_challenge(
    world: World, entra: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    """The fallback, on the emulator's real disk plane: the snapshot is protected, but the replicator is
    handed its ARM record without the property (as if ARM had omitted it), so only the service's 401
    and challenge can tell. Library calls, not the CLI: a run resolves the snapshot from ARM, which
    reports the property, and nothing in the emulator hides it."""
    caplog.set_level(logging.INFO, logger="replicator.events")
    _, s1 = _protected_disk(world)
    config = load(["--source", s1, "--target", world.target_url()], env=entra)
    # The CLI's own credential (a child process trusts SSL_CERT_FILE from its start); in this process
    # aiohttp built its default TLS context before the fixture exported the emulator's CA.
    credential = DefaultAzureCredential(connection_verify=entra["SSL_CERT_FILE"])
    async with ArmSource(config, credential) as source:
        reported = await source.get_snapshot(s1)
        assert reported is not None and reported.protected
        hidden = replace(reported, data_access_auth_mode=None)
        async with read_grant(source, hidden) as grant:
            size = await snapshot_blob_size(grant)
            changes = list_changes(grant, None, start=0, end=size, window=size, page_size=None)
            listed = [c.range async for c in changes]
        assert source.disk_auth.needs_bearer(hidden)
    assert size == GiB + 512  # the VHD footer follows the last MiB written
    assert listed == [Range(0, 2 * MiB), Range(1023 * MiB, GiB + 512)]
    assert [r for r in caplog.records if "disk_auth_detected" in r.getMessage()]
    world.assert_sas_free(s1)
