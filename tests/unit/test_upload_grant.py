"""The Write grant of a restore's upload disk (target.upload_disk): its SAS granted again before it expires
and after the disk refused it (plumbing.renewed_sas), one grant for many refused writes, and never for
a refusal no grant changes (the copy source's, a network rule's, an identity's)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest
from azure.core.exceptions import HttpResponseError

from replicator.core.ranges import Range
from replicator.plumbing.page_writes import PageWrite
from replicator.target.upload_disk import DiskSas, DiskSasRefused, Grant

FIRST = "https://md.example/big?sp=w&sig=1"


class Disk:
    """UploadDisk's part a grant uses: its name, its source's config, and `grant` (counted)."""

    name = "big"

    def __init__(self) -> None:
        self.source = SimpleNamespace(config=SimpleNamespace(sas_duration_seconds=100, allow_http=False))
        self.grants = 0

    async def grant(self, access: str) -> str:
        self.grants += 1
        return f"https://md.example/big?sp=w&sig={self.grants}"


class Writer:
    """Answers a write sent with a SAS in `refused` with 403 `code`; records the URLs used."""

    def __init__(self, code: str = "AuthenticationFailed") -> None:
        self.refused: set[str] = set()
        self.code = code
        self.urls: list[str] = []

    async def send(self, blob_url: str, write: PageWrite, data: bytes | None = None) -> None:
        self.urls.append(blob_url)
        await asyncio.sleep(0)  # writes overlap at the service
        if blob_url in self.refused:
            exc = HttpResponseError(f"{self.code}: refused")
            exc.status_code, exc.error_code = 403, self.code
            raise exc


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def grant(disk: Disk, writer: Writer, clock: Clock) -> Grant:
    return Grant(DiskSas(disk, "Write", clock), None, writer)  # type: ignore[arg-type]


async def copy(g: Grant) -> None:
    url = await g.sas.url()
    await g.copy_pages(url, Range(0, 512), "https://src.example/s?sig=x", Range(0, 512), None)


async def test_the_sas_is_granted_again_before_it_expires() -> None:
    disk, writer, clock = Disk(), Writer(), Clock()
    g = grant(disk, writer, clock)
    await copy(g)
    clock.now += 74  # a quarter of 100 s before expiry: still the first SAS
    await copy(g)
    assert disk.grants == 1 and writer.urls == [FIRST, FIRST]
    clock.now += 1
    await copy(g)
    assert disk.grants == 2 and writer.urls[-1].endswith("sig=2")
    assert "sig=" not in repr(g.sas)


async def test_a_refused_sas_is_granted_again_once_for_all_the_writes_it_failed() -> None:
    disk, writer, clock = Disk(), Writer(), Clock()
    g = grant(disk, writer, clock)
    writer.refused.add(FIRST)
    results = await asyncio.gather(*(copy(g) for _ in range(5)), return_exceptions=True)
    assert all(isinstance(r, DiskSasRefused) for r in results), results
    for _ in range(5):  # each write's next attempt
        await copy(g)
    assert disk.grants == 2 and writer.urls[-1].endswith("sig=2")
    # a write refused late with the first SAS, after the new grant, does not forget the new one
    with pytest.raises(DiskSasRefused):
        await g.copy_pages(FIRST, Range(0, 512), "https://src.example/s?sig=x", Range(0, 512), None)
    await copy(g)
    assert disk.grants == 2 and writer.urls[-1].endswith("sig=2")


@pytest.mark.parametrize(
    "code", ["CannotVerifyCopySource", "AuthorizationPermissionMismatch", "AuthorizationFailure"]
)
async def test_a_refusal_no_grant_changes_is_not_retried_as_the_sas(code: str) -> None:
    disk, writer, clock = Disk(), Writer(code), Clock()
    g = grant(disk, writer, clock)
    writer.refused.add(FIRST)
    with pytest.raises(HttpResponseError) as refused:
        await copy(g)
    assert not isinstance(refused.value, DiskSasRefused)
    writer.refused.clear()
    await copy(g)  # the same SAS: no new grant
    assert disk.grants == 1 and writer.urls[-1] == FIRST
