"""The Write grant of a restore's upload disk (target.upload_disk.Grant): renewed before its SAS expires
and after the disk refused it, one re-grant for many refused writes, never for the copy source's refusal."""

from __future__ import annotations

import asyncio

import pytest
from azure.core.exceptions import HttpResponseError

from replicator.core.ranges import Range
from replicator.plumbing.page_writes import PageWrite
from replicator.target.upload_disk import DiskSasRefused, Grant


class Disk:
    """UploadDisk's part a grant uses: its name, the grants' lifetime, and `grant` (counted)."""

    name = "big"
    duration = 100

    def __init__(self) -> None:
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
    return Grant(disk, "Write", "https://md.example/big?sp=w&sig=0", None, writer, clock)  # type: ignore[arg-type]


async def copy(g: Grant) -> None:
    await g.copy_pages(Range(0, 512), "https://src.example/s?sig=x", Range(0, 512), None)


async def test_the_sas_is_renewed_before_it_expires() -> None:
    disk, writer, clock = Disk(), Writer(), Clock()
    g = grant(disk, writer, clock)
    await copy(g)
    clock.now += 74  # a quarter of 100 s before expiry: still the first SAS
    await copy(g)
    assert disk.grants == 0
    clock.now += 1
    await copy(g)
    assert disk.grants == 1 and writer.urls[-1].endswith("sig=1")


async def test_a_refused_sas_is_regranted_once_for_all_the_writes_it_failed() -> None:
    disk, writer, clock = Disk(), Writer(), Clock()
    g = grant(disk, writer, clock)
    writer.refused.add("https://md.example/big?sp=w&sig=0")
    results = await asyncio.gather(*(copy(g) for _ in range(5)), return_exceptions=True)
    assert all(isinstance(r, DiskSasRefused) for r in results)
    assert "sig=" not in " ".join(str(r) for r in results)  # never the SAS in a message
    for _ in range(5):  # each write's next attempt
        await copy(g)
    assert disk.grants == 1 and writer.urls[-1].endswith("sig=1")


async def test_the_copy_sources_refusal_is_not_the_disks() -> None:
    disk, writer, clock = Disk(), Writer("CannotVerifyCopySource"), Clock()
    g = grant(disk, writer, clock)
    writer.refused.add("https://md.example/big?sp=w&sig=0")
    with pytest.raises(HttpResponseError):
        await copy(g)
    writer.refused.clear()
    await copy(g)  # the same SAS: no re-grant for the source's refusal
    assert disk.grants == 0 and writer.urls[-1].endswith("sig=0")
