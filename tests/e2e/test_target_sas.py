"""Targets authorized by a SAS in their URL: blob-scoped (sr=b), container-scoped (sr=c), and one
naming a stored access policy (si=).

Neither kind may create a container (Azure wants an account SAS or a role for that), so the run
must treat creating the container as best-effort and let the blob operations decide. A SAS that
lacks a permission the command needs is bad input (exit 2, the missing letter named, nothing
written): from its `sp` before any request, or from Azure's 403 when a stored policy hides it.
"""

from __future__ import annotations

from urllib.parse import parse_qs

from azure.storage.blob import AccessPolicy, generate_container_sas

from tests.e2e.world import MiB, World, pattern
from tests.helpers.cli_runs import Run
from tests.helpers.replication import replicated_then_changed
from tests.helpers.target_sas import blob_sas, container_sas, expiry


def _policy_sas(world: World, url: str, policy: str, permission: str) -> str:
    """A container SAS naming stored access policy `policy` (set on the container with `permission`):
    the URL carries no `sp`, so only the service knows what it grants. (Azure applies a new policy
    within 30 seconds; the emulator at once.)"""
    with world.container(url) as container:
        container.set_container_access_policy({policy: AccessPolicy(permission=permission, expiry=expiry())})
    return generate_container_sas(
        world.account,
        url.rsplit("/", 2)[1],
        account_key=world.env["REPLICATOR_ACCOUNT_KEY"],
        policy_id=policy,
    )


def _two_points(world: World, replicate) -> tuple[str, list[str], str]:
    """A target (replicated with the test's role) holding two restore points; (url, their IDs, etag)."""
    disk, _, _, url = replicated_then_changed(world, replicate)
    assert replicate("--source", disk.id, "--target", url).code == 0
    return url, [p.snapshot for p in world.restore_points(url)], world.target(url).get_blob_properties().etag


def _assert_refused(run: Run, sas: str, *phrases: str) -> None:
    """Exit 2 with one sentence holding `phrases`, never the SAS, never a raw 403 or a "rerun"."""
    _assert_sas_not_printed(run, sas)
    assert run.code == 2, run.err
    errors = [line for line in run.err.splitlines() if ": error: " in line]
    assert len(errors) == 1 and run.err.strip().endswith(errors[0]) and "Traceback" not in run.err, run.err
    for phrase in phrases:
        assert phrase in errors[0], errors[0]
    assert "rerun" not in errors[0] and "failed" not in errors[0]


def _assert_sas_not_printed(run: Run, sas: str) -> None:
    signature = parse_qs(sas)["sig"][0]
    assert signature not in run.out + run.err
    assert sas not in run.out + run.err


def _replicate_twice(world: World, replicate, url: str, sas: str) -> None:
    """A full copy then a diff through the SAS URL; each restore point byte-equal to its snapshot."""
    disk = world.create_disk("data", 1)
    world.write(disk, (3 * MiB, pattern(1, 2 * MiB)))
    s1 = world.snapshot(disk)
    first = replicate("--source", disk.id, "--target", f"{url}?{sas}", "--json")
    _assert_sas_not_printed(first, sas)
    assert first.code == 0, first.err
    world.write(disk, (512 * MiB, pattern(2, 8192)))
    s2 = world.snapshot(disk)
    second = replicate("--source", disk.id, "--target", f"{url}?{sas}", "--json")
    _assert_sas_not_printed(second, sas)
    assert second.code == 0, second.err
    done = first.doc["snapshots"] + second.doc["snapshots"]
    assert [(d["snapshot_id"], d["mode"]) for d in done] == [(s1, "full"), (s2, "diff")]
    for entry in done:
        world.assert_restore_point_equals(url, entry["restore_point"], entry["snapshot_id"])
    assert [p.metadata["snapshot_id"] for p in world.restore_points(url)] == [s1, s2]
    world.assert_sas_free(s1, s2)


def test_blob_scoped_sas_target(world: World, replicate) -> None:
    url = world.target_url()
    with world.container(url) as container:
        container.create_container()
    _replicate_twice(world, replicate, url, blob_sas(world, url))


def test_container_scoped_sas_target(world: World, replicate) -> None:
    url = world.target_url()
    with world.container(url) as container:
        container.create_container()
    _replicate_twice(world, replicate, url, container_sas(world, url))


def test_sas_target_in_a_missing_container_is_one_clear_sentence(world: World, replicate) -> None:
    disk = world.create_disk("data", 1)
    snapshot = world.snapshot(disk)
    url = world.target_url()
    container = url.rsplit("/", 2)[1]
    for sas in (blob_sas(world, url), container_sas(world, url)):
        run = replicate("--source", disk.id, "--target", f"{url}?{sas}", "--json")
        _assert_sas_not_printed(run, sas)
        assert run.code == 2, run.err
        assert f"the container {container} does not exist and the target's SAS cannot create it" in run.err
        assert "Traceback" not in run.err
    world.assert_sas_free(snapshot)


def test_prune_with_a_read_list_sas_names_delete(world: World, replicate) -> None:
    url, points, etag = _two_points(world, replicate)
    sas = container_sas(world, url, "rl")
    run = replicate("prune", "--target", f"{url}?{sas}", "--keep", "1")
    _assert_refused(
        run, sas, "`replicate prune` needs", "delete (d) to delete restore points", "sp=rl", "rwdl"
    )
    assert [p.snapshot for p in world.restore_points(url)] == points
    assert world.target(url).get_blob_properties().etag == etag


def test_list_with_a_container_sas_without_list_names_l(world: World, replicate) -> None:
    url, _, _ = _two_points(world, replicate)
    sas = container_sas(world, url, "r")
    run = replicate("list", "--target", f"{url}?{sas}", "--json")
    _assert_refused(
        run, sas, "`replicate list` needs", "list (l) to list the restore points", "a container SAS"
    )
    assert "blob-scoped" not in run.err


def test_replicate_with_a_sas_without_write_touches_nothing(world: World, replicate) -> None:
    """Refused from the SAS's `sp` before any grant or request: a new target is not created, an
    existing one keeps its etag (no lease, no metadata, no restore point)."""
    url, points, etag = _two_points(world, replicate)
    disk_id = world.target(url).get_blob_properties().metadata["source_disk_id"]
    fresh = world.target_url(container=url.rsplit("/", 2)[1], blob="fresh.vhd")
    for target in (url, fresh):
        sas = container_sas(world, target, "rcl")
        run = replicate("--source", disk_id, "--target", f"{target}?{sas}", "--json")
        _assert_refused(run, sas, "`replicate` needs", "write (w) to write the replica", "sp=rcl")
    assert world.target(url).get_blob_properties().etag == etag
    assert [p.snapshot for p in world.restore_points(url)] == points
    with world.container(url) as container:
        assert [b.name for b in container.list_blobs()] == ["replica.vhd"]


def test_a_sas_cut_short_is_named_incomplete_before_any_request(world: World, replicate) -> None:
    """A SAS token that lost its sr (or ss/srt) when it was copied: one sentence saying so, up front,
    for every command, rather than the service's 403 read as a scope problem."""
    url, _, etag = _two_points(world, replicate)
    whole = container_sas(world, url, "rwdl")
    cut = "&".join(part for part in whole.split("&") if not part.startswith("sr="))
    for args in (("list",), ("status", "--max-age", "1d"), ("prune", "--keep", "1", "--yes")):
        run = replicate(*args, "--target", f"{url}?{cut}", "--json")
        if args[0] == "status":  # a probe judges every target: an unreadable one is `unknown`, exit 1
            [target] = run.doc["targets"]
            assert run.code == 1 and "the SAS of --target is incomplete" in target["error"], run.out
            continue
        _assert_refused(run, cut, "the SAS of --target is incomplete", "neither sr", f"`replicate {args[0]}`")
    assert world.target(url).get_blob_properties().etag == etag


def test_prune_with_a_stored_policy_without_delete_is_named_from_the_403(world: World, replicate) -> None:
    """The URL shows no letters (si=, no sp), so Azure's 403 AuthorizationPermissionMismatch on the
    first Delete Blob names `d`: exit 2, nothing deleted, the lease released."""
    url, points, _ = _two_points(world, replicate)
    sas = _policy_sas(world, url, "nightly", "rwl")
    run = replicate("prune", "--target", f"{url}?{sas}", "--keep", "1", "--yes")
    _assert_refused(
        run, sas, "the stored access policy nightly", "delete (d) to delete restore points",
        "403 AuthorizationPermissionMismatch", "add d to the stored access policy nightly",
    )  # fmt: skip
    assert [p.snapshot for p in world.restore_points(url)] == points
    assert world.target(url).get_blob_properties().lease.state == "available"
