"""source.disk_auth against a small HTTP server that answers as the disk plane of a protected snapshot
does: the disk token on protected snapshots only, exactly the scope `https://disk.azure.com//.default`,
the challenge fallback (one repeat, never a loop), the refusals' sentences, the token's cache."""

from __future__ import annotations

import base64
import json
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from azure.core.credentials import AccessTokenInfo
from azure.core.exceptions import ClientAuthenticationError
from azure.mgmt.compute.models import Snapshot

from replicator.core.errors import ReplicationError, UserError
from replicator.plumbing import credentials
from replicator.plumbing.credentials import AsyncStaticTokenCredential
from replicator.source import disk_auth
from replicator.source.arm import SnapshotInfo, snapshot_info
from replicator.source.disk_auth import DISK_SCOPE, DiskAuth, DiskToken, names_disk_plane
from replicator.source.listing import DiffNotPossible, list_changes, snapshot_blob_size
from tests.helpers.source_fakes import snapshot

CHALLENGE = (
    "Bearer authorization_uri=https://login.microsoftonline.com/tenant/oauth2/authorize "
    "resource_id=https://disk.azure.com/"
)
OID = "11111111-2222-3333-4444-555555555555"


def jwt(**claims: Any) -> str:
    """An unsigned token shaped like Entra ID's (header.payload.signature): only its claims matter here."""

    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")

    return f"{part({'alg': 'none'})}.{part(claims)}.sig"


GOOD = jwt(aud="https://disk.azure.com/", oid=OID)


class Credential:
    """An async credential that hands out GOOD (or `token`) and records the scopes asked for."""

    def __init__(self, token: str = GOOD, lifetime: float = 3600, fail: bool = False) -> None:
        self.token, self.lifetime, self.fail = token, lifetime, fail
        self.scopes: list[tuple[str, ...]] = []

    async def get_token_info(self, *scopes: str, options: Any = None) -> AccessTokenInfo:
        self.scopes.append(scopes)
        if self.fail:
            raise ClientAuthenticationError("DefaultAzureCredential failed to retrieve a token.\nlong text")
        return AccessTokenInfo(self.token, int(time.time() + self.lifetime))

    async def get_token(self, *scopes: str, **kwargs: Any) -> Any:
        raise AssertionError("get_token_info is preferred")

    async def close(self) -> None:
        pass


@dataclass
class DiskPlane:
    """One snapshot's data plane: protected or not, the identity holding the role or not."""

    protected: bool = True
    role: bool = True
    seen: list[str | None] = field(default_factory=list)  # the Authorization header of every request

    async def handle(self, request: web.Request) -> web.Response:
        auth = request.headers.get("Authorization")
        self.seen.append(auth)
        if self.protected and auth != f"Bearer {GOOD}":
            code = "NoAuthenticationInformation" if auth is None else "InvalidAuthenticationInfo"
            return _error(401, code, {"WWW-Authenticate": CHALLENGE})
        if self.protected and not self.role:
            return _error(403, "AuthorizationPermissionMismatch")
        if request.query.get("comp") == "pagelist":
            ranges = "<PageRange><Start>0</Start><End>511</End></PageRange>"
            body = f"<?xml version='1.0' encoding='utf-8'?><PageList>{ranges}</PageList>"
            return web.Response(
                body=body, content_type="application/xml", headers={"x-ms-blob-content-length": "1024"}
            )
        return web.Response(headers={"Content-Length": "1024", "x-ms-blob-type": "PageBlob"})


def _error(status: int, code: str, headers: dict[str, str] | None = None) -> web.Response:
    body = f"<?xml version='1.0'?><Error><Code>{code}</Code><Message>refused</Message></Error>"
    return web.Response(status=status, body=body, headers={"x-ms-error-code": code, **(headers or {})})


@dataclass
class Grant:
    """What the source's clients need of a grant: its snapshot, SAS URL and DiskAuth."""

    snapshot: SnapshotInfo
    base_url: str
    disk_auth: DiskAuth
    invalidations: int = 0

    async def url(self) -> str:
        return f"{self.base_url}/md/c/{self.snapshot.name}?sv=1&sig=SECRET{self.invalidations}"

    def invalidate(self, stale_url: str | None = None) -> None:
        self.invalidations += 1


@pytest.fixture
async def plane() -> AsyncIterator[tuple[DiskPlane, str]]:
    state = DiskPlane()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", state.handle)
    async with TestServer(app) as server:
        yield state, str(server.make_url("")).rstrip("/")


def protected(name: str = "s1") -> SnapshotInfo:
    return replace(snapshot(name), data_access_auth_mode="AzureActiveDirectory")


async def test_a_protected_snapshot_carries_the_disk_token_asked_for_with_the_double_slash(plane) -> None:
    state, base = plane
    credential = Credential()
    auth = DiskAuth(credential)  # type: ignore[arg-type]
    assert await snapshot_blob_size(Grant(protected(), base, auth)) == 1024  # type: ignore[arg-type]
    assert state.seen == [f"Bearer {GOOD}"]
    assert credential.scopes == [("https://disk.azure.com//.default",)] and DISK_SCOPE.count("//") == 2


async def test_an_unprotected_snapshot_carries_no_token(plane) -> None:
    state, base = plane
    state.protected = False
    credential = Credential()
    assert await snapshot_blob_size(Grant(snapshot("s1"), base, DiskAuth(credential))) == 1024  # type: ignore[arg-type]
    assert state.seen == [None] and credential.scopes == []


async def test_the_challenge_switches_the_snapshot_to_bearer_mode_once(plane, caplog) -> None:
    """ARM did not say (the property hidden or absent): the service's 401 and its challenge do."""
    caplog.set_level(logging.INFO, logger="replicator.events")
    state, base = plane
    auth = DiskAuth(Credential())  # type: ignore[arg-type]
    snap = snapshot("s1")
    assert not snap.protected
    assert await snapshot_blob_size(Grant(snap, base, auth)) == 1024  # type: ignore[arg-type]
    assert state.seen == [None, f"Bearer {GOOD}"]  # refused, then repeated once with the token
    assert auth.needs_bearer(snap) and auth.auth_mode(snap) == "AzureActiveDirectory"
    # every later client of the snapshot sends the token from its first request on
    changes = [
        c
        async for c in list_changes(
            Grant(snap, base, auth), None, start=0, end=1024, window=1024, page_size=None
        )
    ]  # type: ignore[arg-type]
    assert changes and state.seen[2:] == [f"Bearer {GOOD}"]
    assert any("disk_auth_detected" in r.getMessage() for r in caplog.records)


async def test_a_refused_token_is_not_repeated_for_its_challenge(plane) -> None:
    state, base = plane
    auth = DiskAuth(Credential(token=jwt(aud="https://disk.azure.com")))  # type: ignore[arg-type]
    with pytest.raises(UserError) as caught:
        await snapshot_blob_size(Grant(protected(), base, auth))  # type: ignore[arg-type]
    assert len(state.seen) == 1  # no loop: a token that was refused is not sent again
    assert "refused the Entra ID token" in str(caught.value) and "https://disk.azure.com/" in str(
        caught.value
    )


async def test_a_storage_challenge_is_not_the_disk_plane() -> None:
    storage = CHALLENGE.replace("https://disk.azure.com/", "https://storage.azure.com")
    assert not names_disk_plane({"WWW-Authenticate": storage})
    assert names_disk_plane({"WWW-Authenticate": CHALLENGE})
    quoted = 'Bearer authorization_uri="https://login.microsoftonline.com/t", resource_id="https://disk.azure.com/"'
    assert names_disk_plane({"WWW-Authenticate": quoted})  # the form of the Go SDK's tests
    assert not names_disk_plane({"WWW-Authenticate": "Basic realm=x resource_id=https://disk.azure.com/"})
    assert not names_disk_plane({})


async def test_without_the_role_the_refusal_names_it_and_is_not_regranted(plane, monkeypatch) -> None:
    state, base = plane
    state.role = False
    monkeypatch.setenv("AZURE_CLIENT_ID", "client-without-roles")

    class ManagedIdentityCredential:  # the name DefaultAzureCredential's chosen credential has
        pass

    credential = Credential()
    credential._successful_credential = ManagedIdentityCredential()  # type: ignore[attr-defined]
    grant = Grant(protected(), base, DiskAuth(credential))  # type: ignore[arg-type]
    with pytest.raises(UserError) as caught:
        await snapshot_blob_size(grant)  # type: ignore[arg-type]
    message = str(caught.value)
    assert "Data Operator for Managed Disks" in message and "959f8984-c045-4866-89c7-12bf9737be2e" in message
    assert "Microsoft.Compute/snapshots/download/action" in message and "s1" in message
    assert f"user-assigned managed identity client-without-roles (object ID {OID})" in message
    assert "403 AuthorizationPermissionMismatch" in message
    assert grant.invalidations == 0 and len(state.seen) == 1  # a fresh SAS would not help
    assert GOOD not in message and "SECRET" not in message


async def test_a_refused_diff_is_a_full_copy_not_a_failure(plane) -> None:
    """The diff of a protected snapshot refused to the token (Azure documents nothing for it)."""
    state, base = plane
    state.role = False  # the emulator's refuse_protected_previous answers alike: 403, a code of its own
    auth = DiskAuth(Credential())  # type: ignore[arg-type]
    current, previous = Grant(protected("s2"), base, auth), Grant(protected("s1"), base, auth)
    with pytest.raises(DiffNotPossible) as caught:
        _ = [c async for c in list_changes(current, previous, start=0, end=1024, window=1024, page_size=None)]  # type: ignore[arg-type]
    assert caught.value.why == "AuthorizationPermissionMismatch to the Entra ID token"
    assert current.invalidations == previous.invalidations == 0


async def test_a_sas_refusal_with_the_token_is_still_regranted() -> None:
    err = ClientAuthenticationError(message="refused")
    err.status_code = 403
    err.error_code = "AuthenticationFailed"
    err.response = type("R", (), {"request": type("Q", (), {"headers": {"Authorization": "Bearer x"}})()})()  # type: ignore[assignment]
    assert disk_auth.refused_sas(err) and disk_auth.refused_identity(err)
    err.error_code = "AuthorizationPermissionMismatch"
    assert not disk_auth.refused_sas(err) and disk_auth.refused_identity(err)
    err.response = None  # type: ignore[assignment]
    assert disk_auth.refused_sas(err) and not disk_auth.refused_identity(err)  # no token: the SAS


async def test_replicator_access_token_cannot_serve_a_protected_source(plane) -> None:
    state, base = plane
    auth = DiskAuth(AsyncStaticTokenCredential("root-token"))
    with pytest.raises(UserError) as caught:
        auth.check_credential(protected())
    assert "REPLICATOR_ACCESS_TOKEN" in str(caught.value) and "unset" in str(caught.value)
    assert "root-token" not in str(caught.value)
    # found by the challenge instead of ARM: the same sentence, and nothing sent with the static token
    with pytest.raises(UserError, match="REPLICATOR_ACCESS_TOKEN"):
        await snapshot_blob_size(Grant(snapshot("s1"), base, auth))  # type: ignore[arg-type]
    assert state.seen == [None]


async def test_no_credential_for_the_disk_plane_is_one_sentence() -> None:
    auth = DiskAuth(Credential(fail=True))  # type: ignore[arg-type]
    with pytest.raises(UserError) as caught:
        await auth.authorization(protected())
    message = str(caught.value)
    assert "https://disk.azure.com/" in message and "long text" not in message and "\n" not in message


async def test_the_token_is_cached_and_refreshed_before_it_expires() -> None:
    credential = Credential()
    token = DiskToken(credential)  # type: ignore[arg-type]
    assert await token.get() == await token.get() == GOOD
    assert len(credential.scopes) == 1
    credential.lifetime = credentials.REFRESH_WINDOW_SECONDS - 1  # a token about to expire is replaced
    token._token = None
    await token.get()
    await token.get()
    assert len(credential.scopes) == 3
    assert GOOD not in repr(token) and GOOD not in repr(DiskAuth(credential))  # type: ignore[arg-type]


async def test_other_errors_keep_their_sentence() -> None:
    async def gone(request: web.Request) -> web.Response:
        return _error(404, "BlobNotFound")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", gone)
    async with TestServer(app) as server:
        grant = Grant(snapshot("s1"), str(server.make_url("")).rstrip("/"), DiskAuth(Credential()))  # type: ignore[arg-type]
        with pytest.raises(ReplicationError, match="BlobNotFound"):
            await snapshot_blob_size(grant)  # type: ignore[arg-type]


def test_the_detection_event_names_the_snapshot_once(caplog) -> None:
    caplog.set_level(logging.INFO, logger="replicator.events")
    auth = DiskAuth(Credential())  # type: ignore[arg-type]
    auth.detected([snapshot("s9")], 401)
    auth.detected([snapshot("s9")], 401)  # once per snapshot
    found = [json.loads(r.getMessage()) for r in caplog.records if "disk_auth_detected" in r.getMessage()]
    assert len(found) == 1 and found[0]["snapshot"].endswith("/s9") and found[0]["status"] == 401
    assert "challenge for https://disk.azure.com/" in found[0]["message"]


@pytest.mark.parametrize(
    ("mode", "protects"),
    [("AzureActiveDirectory", True), ("azureactivedirectory", True), ("None", False), (None, False)],
)
def test_arm_reports_the_mode_and_its_case_does_not_matter(mode: str | None, protects: bool) -> None:
    properties: dict[str, Any] = {"incremental": True}
    if mode is not None:
        properties["dataAccessAuthMode"] = mode
    info = snapshot_info(Snapshot({"id": "/x/snapshots/s", "name": "s", "properties": properties}))
    assert info.data_access_auth_mode == mode and info.protected is protects
