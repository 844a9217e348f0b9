"""Run-path fixes of the copier with fakes: which 403 is the source's in stream mode."""

from __future__ import annotations

import hashlib

import pytest
from azure.core.exceptions import HttpResponseError

from replicator.cli.replicate_cmd import load
from replicator.core import ranges
from replicator.core.progress import Progress
from replicator.engine import copier as copier_mod
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
    return copier_mod.Copier(config, target, grant, reader, Progress())  # type: ignore[arg-type]


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
