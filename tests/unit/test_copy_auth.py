"""Run-path fixes of the copier with fakes: which 403 is the source's in stream mode, and the disk token
of an Entra-ID-protected source (its reads, and Put Page From URL's copy source authorization)."""

from __future__ import annotations

import hashlib
import time
from dataclasses import replace
from types import SimpleNamespace

import pytest
from azure.core.credentials import AccessTokenInfo
from azure.core.exceptions import HttpResponseError

from replicator.cli.replicate_cmd import load
from replicator.core import ranges
from replicator.core.errors import UserError
from replicator.core.progress import Progress
from replicator.engine import copier as copier_mod
from replicator.engine.pacer import Pacer
from replicator.plumbing.credentials import AsyncStaticTokenCredential
from replicator.source.disk_auth import DiskAuth
from tests.helpers.source_fakes import DISK, snapshot

OP = ranges.Op("copy", ranges.Range(0, 4096))


def forbidden(code: str) -> HttpResponseError:
    exc = HttpResponseError(message=code)
    exc.status_code = 403
    exc.error_code = code
    return exc


class FakeGrant:
    def __init__(self) -> None:
        self.grants, self.stale = 1, False
        self.invalidated: list[str | None] = []
        self.snapshot = snapshot("s")
        self.disk_auth = DiskAuth(AsyncStaticTokenCredential("token"))

    async def url(self) -> str:
        if self.stale:
            self.grants, self.stale = self.grants + 1, False
        return f"https://src.invalid/s?sig=v{self.grants}"

    def invalidate(self, stale_url: str | None = None) -> None:
        self.invalidated.append(stale_url)
        self.stale = True


class FakeReader:
    def __init__(self, *failures: HttpResponseError) -> None:
        self.failures = list(failures)
        self.reads = 0

    async def read(self, url: str, snapshot: object, r: ranges.Range) -> tuple[bytes, bytes]:
        self.reads += 1
        if self.failures:
            raise self.failures.pop(0)
        data = b"\1" * r.length
        return data, hashlib.md5(data).digest()


class FakeTarget:
    def __init__(self, *failures: HttpResponseError) -> None:
        self.failures = list(failures)
        self.writes = 0

    async def put_pages(self, op: ranges.Op, data: bytes, md5: bytes) -> None:
        self.writes += 1
        if self.failures:
            raise self.failures.pop(0)


def copier(target: FakeTarget, grant: FakeGrant, reader: FakeReader) -> copier_mod.Copier:
    config = load(
        ["--source", DISK, "--target", "https://a.blob.core.windows.net/ccc/b", "--mode", "stream"], env={}
    )
    return copier_mod.Copier(config, target, grant, reader, Progress(), Pacer(64, "b"))  # type: ignore[arg-type]


async def test_stream_source_403_regrants_and_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(copier_mod, "CHUNK_BACKOFF_SECONDS", 0.0)
    grant, reader, target = FakeGrant(), FakeReader(forbidden("AuthenticationFailed")), FakeTarget()
    await copier(target, grant, reader).execute(OP)
    assert grant.invalidated == ["https://src.invalid/s?sig=v1"] and grant.grants == 2
    assert reader.reads == 2 and target.writes == 1


async def test_stream_target_403_is_not_the_source(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(copier_mod, "CHUNK_BACKOFF_SECONDS", 0.0)
    grant, reader = FakeGrant(), FakeReader()
    target = FakeTarget(forbidden("AuthorizationPermissionMismatch"))
    with pytest.raises(HttpResponseError, match="AuthorizationPermissionMismatch"):
        await copier(target, grant, reader).execute(OP)
    assert grant.invalidated == [] and grant.grants == 1 and target.writes == 1  # no re-grant, no retry


class Protected(FakeGrant):
    """A grant on an Entra-ID-protected snapshot, whose disk token the credential hands out."""

    def __init__(self) -> None:
        super().__init__()
        self.snapshot = replace(self.snapshot, data_access_auth_mode="AzureActiveDirectory")
        self.disk_auth = DiskAuth(TokenCredential())  # type: ignore[arg-type]


class TokenCredential:
    async def get_token_info(self, *scopes: str, options: object = None) -> AccessTokenInfo:
        assert scopes == ("https://disk.azure.com//.default",)
        return AccessTokenInfo("disk-token", int(time.time()) + 3600)


def with_token(exc: HttpResponseError) -> HttpResponseError:
    """`exc` as the answer to a request that carried the disk token."""
    request = SimpleNamespace(headers={"Authorization": "Bearer disk-token"})
    exc.response = SimpleNamespace(request=request, headers={})  # type: ignore[assignment]
    return exc


async def test_stream_read_refused_to_the_disk_token_names_the_role_at_once(monkeypatch) -> None:
    monkeypatch.setattr(copier_mod, "CHUNK_BACKOFF_SECONDS", 0.0)
    grant, target = Protected(), FakeTarget()
    reader = FakeReader(with_token(forbidden("AuthorizationPermissionMismatch")))
    with pytest.raises(UserError, match="Data Operator for Managed Disks"):
        await copier(target, grant, reader).execute(OP)  # type: ignore[arg-type]
    assert reader.reads == 1 and grant.invalidated == [] and target.writes == 0  # no retry, no re-grant


async def test_stream_read_sas_refusal_with_the_disk_token_still_regrants(monkeypatch) -> None:
    monkeypatch.setattr(copier_mod, "CHUNK_BACKOFF_SECONDS", 0.0)
    grant, target = Protected(), FakeTarget()
    reader = FakeReader(with_token(forbidden("AuthenticationFailed")))
    await copier(target, grant, reader).execute(OP)  # type: ignore[arg-type]
    assert reader.reads == 2 and grant.grants == 2 and target.writes == 1


class CopyTarget:
    def __init__(self) -> None:
        self.authorizations: list[str | None] = []

    async def copy_from_url(self, op: ranges.Op, url: str, source_authorization: str | None) -> None:
        self.authorizations.append(source_authorization)


@pytest.mark.parametrize(("grant", "expected"), [(FakeGrant, None), (Protected, "Bearer disk-token")])
async def test_put_page_from_url_carries_the_disk_token_of_a_protected_source_only(grant, expected) -> None:
    config = load(["--source", DISK, "--target", "https://a.blob.core.windows.net/ccc/b"], env={})
    target = CopyTarget()
    copy = copier_mod.Copier(config, target, grant(), FakeReader(), Progress(), Pacer(64, "b"))  # type: ignore[arg-type]
    await copy.execute(OP)
    assert target.authorizations == [expected]
