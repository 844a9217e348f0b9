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
from replicator.core.messages import describe, error_code
from replicator.core.ranges import Range
from replicator.plumbing.credentials import client_kwargs, ssl_context
from replicator.plumbing.page_writes import PageWrite, PageWriter
from replicator.plumbing.renewed_sas import RenewedSas
from replicator.source.arm import ArmSource
from replicator.source.disk_auth import ENTRA_MODE, SAS_REFUSAL_CODE
from replicator.source.grants import shielded

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
    """The disk plane refused the disk's SAS (expired, or revoked): granted again, and the write retried."""


class DiskSas(RenewedSas):
    """The SAS of a grant of `access` on the disk (plumbing.renewed_sas): a Write grant's is granted
    again before it expires and after the disk refused it, so an upload may outlast `--sas-duration`
    (for a Write grant during an upload this is assumed: docs/emulator.md, "Direct upload"). One revoke
    ends every grant of the disk."""

    def __init__(self, disk: UploadDisk, access: str, clock: Callable[[], float] = time.monotonic) -> None:
        config = disk.source.config
        super().__init__(
            f"disk {disk.name}",
            access,
            config.sas_duration_seconds,
            allow_http=config.allow_http,
            fields={"disk": disk.name},
            clock=clock,
        )
        self._disk = disk

    async def _grant(self) -> str:
        return await self._disk.grant(self.access)


def disk_sas_refused(exc: HttpResponseError) -> bool:
    """A write's 403 that a new grant may fix: AuthenticationFailed (the SAS expired or was revoked),
    not the copy source's refusal, nor a network rule's or an identity's (AuthorizationFailure,
    AuthorizationPermissionMismatch, ...), which no grant changes."""
    return exc.status_code == 403 and error_code(exc) == SAS_REFUSAL_CODE


@dataclass(frozen=True)
class Grant:
    """A grant of the disk: its SAS, a client on the first URL (the checks right after the grant: blank,
    footer) and the sender of its page writes."""

    sas: DiskSas
    client: BlobClient
    writer: PageWriter

    async def copy_pages(
        self, url: str, dest: Range, source_url: str, source: Range, authorization: str | None
    ) -> None:
        """Put Page From URL into the disk at `url` (`sas.url()`, taken before the write's pacer slot:
        a grant is an ARM call, not a request at the disk): the service copies `source` of `source_url`
        into `dest` (at most 4 MiB, both 512-aligned); `authorization` travels as
        `x-ms-copy-source-authorization`. DiskSasRefused when the disk refused its SAS (forgotten: the
        next `sas.url()` grants again)."""
        try:
            await self.writer.send(url, PageWrite(dest, None, source_url, source, authorization))
        except HttpResponseError as exc:
            if disk_sas_refused(exc):
                self.sas.invalidate(url)
                raise DiskSasRefused(f"{self.sas.what}: {describe(exc)}") from exc
            raise


class UploadDisk:
    """One disk of a restore made by upload, named `name` in `resource_group` of `subscription`."""

    def __init__(self, source: ArmSource, subscription: str, resource_group: str, name: str) -> None:
        self.source, self.resource_group, self.name = source, resource_group, name
        self.disks = source.compute(subscription).disks

    async def create(self, body: Disk) -> Disk:
        """Create the disk (`ReadyToUpload`); returns ARM's answer."""
        with self.source.arm_errors(f"create disk {self.name} for upload"):
            async with asyncio.timeout(ARM_TIMEOUT_SECONDS):
                return await (
                    await self.disks.begin_create_or_update(self.resource_group, self.name, body)
                ).result()

    @contextlib.asynccontextmanager
    async def granted(self, access: str, ref: DiskRef) -> AsyncIterator[Grant]:
        """A grant of `access` (Write: the upload; Read: the finished disk): its SAS, a client on it and
        its page writes, the grant revoked on every way out (Ctrl-C included: shielded, bounded).
        Revoking a Write grant ends the upload."""
        sas = DiskSas(self, access)
        try:
            url = await sas.url()
            async with self.source.disk_auth.client(url, ref, **client_kwargs()) as client:
                # the disk token when the disk is protected (or its challenge showed it), as the client's
                writer = PageWriter(lambda: self.source.disk_auth.authorization(ref), ssl_context())
                try:
                    yield Grant(sas, client, writer)
                finally:
                    await writer.close()
        finally:
            await shielded(self._revoke())

    async def grant(self, access: str) -> str:
        """A SAS URL of `access` on the disk for `--sas-duration` seconds (beginGetAccess)."""
        request = GrantAccessData(access=access, duration_in_seconds=self.source.config.sas_duration_seconds)
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
