"""A managed disk made by direct upload: create it, grant Write, write its pages, end the upload, read it
back, and delete it after a failure. The ARM and data-plane calls only; engine.striped_restore runs them.

Azure's flow ("Upload a VHD to Azure or copy a managed disk to another region - Azure CLI"): a disk
created with `createOption: Upload` and `uploadSizeBytes` is `ReadyToUpload`; a grant with `access:
Write` gives a SAS on its blob and makes it `ActiveUpload`; Put Page From URL writes into that SAS
(AzCopy's `azcopy copy <source> <disk SAS> --blob-type PageBlob` does the same); `endGetAccess` ends
the upload and leaves an `Unattached` disk holding what was written. The body of the create is
target.restore_disk's (`disk_body` with `upload_creation`).

Who retries what: ARM calls go through the compute client's retry (source.arm_retry); the page writes
are plain requests (plumbing.page_writes, as the replication's are: no SDK pipeline, no retry of their
own) because engine.striped_restore's loop (plumbing.retry) owns their retries, as engine.copier's owns
a replication's.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from azure.core.exceptions import AzureError, HttpResponseError, ResourceNotFoundError
from azure.mgmt.compute.models import Disk, GrantAccessData
from azure.storage.blob.aio import BlobClient

from replicator.core.errors import ReplicationError
from replicator.core.messages import describe
from replicator.core.ranges import Range
from replicator.observe.jsonlog import event
from replicator.plumbing.credentials import client_kwargs, ssl_context
from replicator.plumbing.page_writes import PageWrite, PageWriter, copy_source_refused
from replicator.source.arm import ArmSource
from replicator.source.disk_auth import ENTRA_MODE, refused_sas
from replicator.source.grants import renew_at, shielded

log = logging.getLogger(__name__)

ARM_TIMEOUT_SECONDS = 600.0
"""Bound on each ARM operation of the upload (create, grant, revoke, delete)."""


@dataclass(frozen=True)
class DiskRef:
    """A disk as source.disk_auth sees a resource it reads or writes (a protected one needs the token)."""

    id: str
    name: str
    data_access_auth_mode: str | None

    @property
    def protected(self) -> bool:
        return (self.data_access_auth_mode or "").casefold() == ENTRA_MODE.casefold()


class DiskSasRefused(Exception):
    """The disk plane refused the disk's SAS (expired, or revoked): re-granted, and the write retried."""


class Grant:
    """A SAS grant of the disk: a client on it (the checks right after the grant: blank, footer) and its
    page writes. The writes' SAS is re-granted before it expires (source.grants.renew_at) and after the
    disk plane refused it, so an upload may outlast `--sas-duration`: Azure's Grant Access reference
    says a SAS that expired is replaced by calling the operation again (for a Write grant during an
    upload this is assumed: docs/emulator.md, "Direct upload"). One revoke ends every grant of the disk."""

    def __init__(
        self,
        disk: UploadDisk,
        access: str,
        url: str,
        client: BlobClient,
        writer: PageWriter,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client, self.writer = client, writer
        self._disk, self._access, self._clock = disk, access, clock
        self._url: str | None = url
        self._renew_at = renew_at(clock(), disk.duration)
        self._lock = asyncio.Lock()

    def __repr__(self) -> str:  # never show the SAS
        return f"Grant({self._disk.name!r}, {self._access})"

    async def url(self) -> str:
        """The writes' SAS URL, re-granted when it is close to expiry or was refused."""
        async with self._lock:
            if self._url is None or self._clock() >= self._renew_at:
                started = self._clock()
                self._url = await self._disk.grant(self._access)
                self._renew_at = renew_at(started, self._disk.duration)
                event(
                    "sas_granted",
                    logging.DEBUG,
                    message=f"re-granted {self._access} access to disk {self._disk.name} "
                    f"for {self._disk.duration} s",
                    disk=self._disk.name,
                    regrant=True,
                    duration_seconds=self._disk.duration,
                )
            return self._url

    async def copy_pages(
        self, dest: Range, source_url: str, source: Range, authorization: str | None
    ) -> None:
        """Put Page From URL: the service copies `source` of `source_url` into `dest` of the disk (at
        most 4 MiB, both 512-aligned); `authorization` travels as `x-ms-copy-source-authorization`.
        DiskSasRefused when the disk's SAS was refused (the next attempt re-grants it)."""
        url = await self.url()
        try:
            await self.writer.send(url, PageWrite(dest, None, source_url, source, authorization))
        except HttpResponseError as exc:
            if not copy_source_refused(exc) and refused_sas(exc):  # the disk's SAS, not the copy source's
                if url == self._url:  # many writes refused with one SAS: one re-grant
                    self._url = None
                raise DiskSasRefused(f"disk {self._disk.name}: {describe(exc)}") from exc
            raise


class UploadDisk:
    """One disk of a restore made by upload, named `name` in `resource_group` of `subscription`."""

    def __init__(self, source: ArmSource, subscription: str, resource_group: str, name: str) -> None:
        self.source, self.resource_group, self.name = source, resource_group, name
        self.disks = source.compute(subscription).disks
        self.duration = source.config.sas_duration_seconds

    async def create(self, body: Disk) -> Disk:
        """Create the disk (`ReadyToUpload`); returns ARM's answer."""
        with self.source.arm_errors(f"create disk {self.name} for upload"):
            async with asyncio.timeout(ARM_TIMEOUT_SECONDS):
                return await (
                    await self.disks.begin_create_or_update(self.resource_group, self.name, body)
                ).result()

    @contextlib.asynccontextmanager
    async def granted(self, access: str, ref: DiskRef) -> AsyncIterator[Grant]:
        """A client on a SAS of `access` (Write: the upload; Read: the finished disk) and its page writes,
        the grant revoked on every way out (Ctrl-C included: shielded, bounded). Revoking a Write grant
        ends the upload."""
        try:
            url = await self.grant(access)
            async with self.source.disk_auth.client(url, ref, **client_kwargs()) as client:
                # the disk token when the disk is protected (or its challenge showed it), as the client's
                writer = PageWriter(lambda: self.source.disk_auth.authorization(ref), ssl_context())
                try:
                    yield Grant(self, access, url, client, writer)
                finally:
                    await writer.close()
        finally:
            await shielded(self._revoke())

    async def grant(self, access: str) -> str:
        """A SAS URL of `access` on the disk for `--sas-duration` seconds (beginGetAccess)."""
        request = GrantAccessData(access=access, duration_in_seconds=self.duration)
        with self.source.arm_errors(f"grant {access} access to disk {self.name}"):
            async with asyncio.timeout(ARM_TIMEOUT_SECONDS):
                poller = await self.disks.begin_grant_access(self.resource_group, self.name, request)
                url = (await poller.result()).access_sas
        if not url:
            raise ReplicationError(f"ARM granted access to disk {self.name} but returned no SAS URL.")
        return url

    async def _revoke(self) -> None:
        with self.source.arm_errors(f"revoke access to disk {self.name}"):
            async with asyncio.timeout(ARM_TIMEOUT_SECONDS):
                await (await self.disks.begin_revoke_access(self.resource_group, self.name)).result()

    async def get(self) -> Disk:
        """The disk as ARM reports it now."""
        with self.source.arm_errors(f"read disk {self.name}"):
            return await self.disks.get(self.resource_group, self.name)

    async def delete(self) -> None:
        """Delete the disk after a failed restore (its grant already revoked); one that cannot be deleted
        is logged for the operator to delete."""
        try:
            async with asyncio.timeout(ARM_TIMEOUT_SECONDS):
                await (await self.disks.begin_delete(self.resource_group, self.name)).result()
        except ResourceNotFoundError:
            return
        except (AzureError, TimeoutError) as err:
            log.warning(
                "could not delete the disk %s of the failed restore (%s); delete it by hand",
                self.name,
                describe(err),
            )
            return
        log.info("deleted the disk %s of the failed restore", self.name)


async def has_data(disk: BlobClient) -> bool:
    """Whether the disk's blob has any valid page (a fresh Upload disk has none: it reads as zeros)."""
    async for page in disk.list_page_ranges(results_per_page=1):
        if not page.cleared:
            return True
    return False
