"""The target adapter turns a 403 of each control call into replicator.core.permissions' sentence (exit 2),
naming the operation's letter; the optional needs of `replicate` (listing, deleting a duplicate) only
warn. Fakes stand in for the SDK clients: each call raises Azure's 403."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from types import SimpleNamespace
from typing import Any

import pytest
from azure.core.exceptions import ClientAuthenticationError, HttpResponseError

from replicator.cli.replicate_cmd import load
from replicator.core import premium
from replicator.core.errors import EXIT_USAGE, UserError
from replicator.core.ranges import Range
from replicator.target import page_blob
from replicator.target.page_blob import PageBlobTarget
from replicator.target.state import RestorePoint, RestorePointMeta, State

GROUP = "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg"
DISK = f"{GROUP}/providers/Microsoft.Compute/disks/d"
POLICY_SAS = "https://a.blob.core.windows.net/ccc/b?sv=2026-10-06&sr=c&si=nightly&sig=c2ln"


def forbidden(code: str, cls: type[HttpResponseError] = HttpResponseError) -> HttpResponseError:
    exc = cls(message=code)
    exc.status_code = 403
    exc.error_code = code  # type: ignore[attr-defined]
    exc.response = SimpleNamespace()  # type: ignore[assignment]  # an answer came: not a missing credential
    return exc


def raising(exc: BaseException) -> Callable[..., Any]:
    async def call(*args: object, **kwargs: object) -> None:
        raise exc

    return call


def target(command: str, url: str = POLICY_SAS) -> PageBlobTarget:
    return PageBlobTarget(load(["--source", DISK, "--target", url], env={}), command=command)


class DeniedLease:
    def __init__(self, blob: object) -> None:
        pass

    acquire = staticmethod(raising(forbidden("AuthorizationPermissionMismatch")))


async def _inspect(t: PageBlobTarget) -> object:
    t._blob.get_blob_properties = raising(forbidden("AuthorizationPermissionMismatch"))  # type: ignore[method-assign]
    return await t.inspect()


async def _create(t: PageBlobTarget) -> object:
    t._container.create_container = raising(forbidden("AuthorizationPermissionMismatch"))  # type: ignore[method-assign]
    t._blob.create_page_blob = raising(forbidden("AuthorizationPermissionMismatch"))  # type: ignore[method-assign]
    return await t.create(512)


async def _lease(t: PageBlobTarget) -> object:
    async with t.leased(0):
        raise AssertionError("the lease was denied")


async def _resize(t: PageBlobTarget) -> object:
    t._blob.resize_blob = raising(forbidden("AuthorizationPermissionMismatch"))  # type: ignore[method-assign]
    return await t.resize(1024)


async def _write_state(t: PageBlobTarget) -> object:
    t._blob.set_blob_metadata = raising(forbidden("AuthorizationPermissionMismatch"))  # type: ignore[method-assign]
    return await t.write_state(State())


async def _commit(t: PageBlobTarget) -> object:
    t._blob.create_snapshot = raising(forbidden("AuthorizationPermissionMismatch"))  # type: ignore[method-assign]
    return await t.commit(RestorePointMeta())


async def _list(t: PageBlobTarget) -> object:
    t._container.list_blobs = lambda **kw: _denied_pages()  # type: ignore[method-assign]
    return await t.restore_points()


async def _delete(t: PageBlobTarget) -> object:
    denied = SimpleNamespace(delete_blob=raising(forbidden("AuthorizationPermissionMismatch")))
    t._container.get_blob_client = lambda *a, **kw: denied  # type: ignore[method-assign]
    return await t.delete_restore_point("2026-01-01T00:00:00.0000000Z")


async def _read(t: PageBlobTarget) -> object:
    return await t.read(Range(0, 512), snapshot="2026-01-01T00:00:00.0000000Z")  # read_range is denied


async def _denied_pages() -> Any:
    raise forbidden("AuthorizationPermissionMismatch")
    yield  # an async generator, as the SDK's pager


CALLS: list[tuple[str, Callable[[PageBlobTarget], Awaitable[object]], str]] = [
    ("replicate", _inspect, "read (r) to read the target's state"),
    ("replicate", _create, "write (w) to create the base blob"),
    ("replicate", _lease, "write (w) to hold the target's lease"),
    ("replicate", _resize, "write (w) to write the replica"),
    ("replicate", _write_state, "write (w) to write the replica"),
    ("replicate", _commit, "write (w) to take restore points"),
    ("list", _list, "list (l) to list the restore points"),
    ("prune", _delete, "delete (d) to delete restore points"),
    ("restore", _read, "read (r) to read the target's state and the restore point's VHD footer"),
]


@pytest.mark.parametrize(("command", "call", "phrase"), CALLS, ids=[c[1].__name__ for c in CALLS])
async def test_a_403_of_each_control_call_names_what_is_missing(
    command: str, call: Callable[[PageBlobTarget], Awaitable[object]], phrase: str, monkeypatch
) -> None:
    monkeypatch.setattr(page_blob, "BlobLeaseClient", DeniedLease)
    monkeypatch.setattr(page_blob, "read_range", raising(forbidden("AuthorizationPermissionMismatch")))
    async with target(command) as t:
        with pytest.raises(UserError) as err:
            await call(t)
    assert err.value.exit_code == EXIT_USAGE
    text = str(err.value)
    assert phrase in text and "stored access policy nightly" in text
    assert "403 AuthorizationPermissionMismatch" in text and "c2ln" not in text


async def test_an_expired_sas_on_the_first_read_says_so() -> None:
    async with target("status") as t:
        t._blob.get_blob_properties = raising(forbidden("AuthenticationFailed", ClientAuthenticationError))  # type: ignore[method-assign]
        with pytest.raises(UserError, match=r"could not read the target's state .*403 AuthenticationFailed"):
            await t.inspect()


async def test_the_optional_needs_of_replicate_only_warn(caplog: pytest.LogCaptureFixture) -> None:
    """Without list, restore points are not checked for duplicates; without delete, a duplicate stays."""
    caplog.set_level(logging.WARNING)
    async with target("replicate") as t:
        t._container.list_blobs = lambda **kw: _denied_pages()  # type: ignore[method-assign]
        assert await t.restore_points(required=False) == []
    assert "not checked for duplicates" in caplog.text


async def test_a_duplicate_restore_point_the_sas_cannot_delete_stays(monkeypatch, caplog) -> None:
    caplog.set_level(logging.WARNING)
    monkeypatch.setattr(page_blob.recovery, "new_commit_id", lambda: "cid")
    async with target("replicate") as t:
        t._blob.create_snapshot = lambda **kw: _answer({"snapshot": "t1"})  # type: ignore[method-assign]

        async def points(*, required: bool = True) -> list[RestorePoint]:
            return [RestorePoint(p, {"commit_id": "cid"}) for p in ("t1", "t2")]

        t.restore_points = points  # type: ignore[method-assign]
        denied = SimpleNamespace(delete_blob=raising(forbidden("AuthorizationPermissionMismatch")))
        t._container.get_blob_client = lambda *a, **kw: denied  # type: ignore[method-assign]
        assert await t.commit(RestorePointMeta()) == "t1"
    assert "cannot delete restore point t2, a duplicate of t1" in caplog.text


async def _answer(value: object) -> object:
    return value


def test_an_account_kind_the_credential_cannot_read_is_standard_and_said(monkeypatch) -> None:
    """Get Account Information refused (a SAS Azure will not answer it for): the run goes on as on a
    standard blob, and the note the run document carries says why; a premium answer is read as such."""
    t = target("replicate")
    monkeypatch.setattr(t._blob, "get_account_information", raising(forbidden("AuthorizationFailure")))
    kind, why = asyncio.run(t.account_kind())
    assert kind == premium.UNKNOWN and not kind.premium
    assert why is not None and "AuthorizationFailure" in why and "treated as a standard blob" in why
    assert "sig=" not in why

    async def answer(**_: object) -> dict[str, str]:
        return {"sku_name": "Premium_LRS", "account_kind": "StorageV2"}

    monkeypatch.setattr(t._blob, "get_account_information", answer)
    assert asyncio.run(t.account_kind()) == (premium.TargetKind("Premium_LRS", "StorageV2"), None)
