"""Ranged reads of a source snapshot through its SAS URL (stream mode)."""

from __future__ import annotations

from azure.storage.blob.aio import BlobClient

from replicator.core.ranges import Range
from replicator.plumbing.blobio import read_range_md5
from replicator.plumbing.credentials import client_kwargs
from replicator.source.disk_auth import DiskAuth, Protectable


class SasBlobReader:
    """Ranged reads of a snapshot through its SAS URL (stream mode).

    One client per URL, replaced when the grant hands out a fresh URL, so reads share a connection pool;
    built through the source's DiskAuth, so a protected snapshot's reads carry the disk token.
    The SDK does not retry `read` (the caller's retry loop does, and re-grants on 403).
    """

    def __init__(self, disk_auth: DiskAuth) -> None:
        self._disk_auth = disk_auth
        self._url: str | None = None
        self._clients: list[BlobClient] = []  # older ones may still serve reads in flight; closed at the end

    def _client_for(self, url: str, snapshot: Protectable) -> BlobClient:
        if not self._clients or url != self._url:
            self._url = url
            self._clients.append(self._disk_auth.client(url, snapshot, **client_kwargs()))
        return self._clients[-1]

    async def read(self, url: str, snapshot: Protectable, r: Range) -> tuple[bytes, bytes]:
        """The bytes of `r` of `snapshot` (at its SAS `url`) and their MD5 digest, checked against the
        service's Content-MD5."""
        return await read_range_md5(self._client_for(url, snapshot), r, retry_total=0)

    async def aclose(self) -> None:
        for client in self._clients:
            await client.close()
        self._clients.clear()
