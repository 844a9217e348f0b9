"""The group manifests under a VM's target prefix: list them, read one, create one, record a commit.

The format is replicator.target.manifest; this module is its storage: JSON block blobs under
`<prefix>/.groups/`, each marked as the replicator's by the blob metadata `manifest.MARKER_KEY`.

Why conditional writes: each disk of a VM runs on its own (concurrently, each under its own
base blob's lease), and two runs of one VM may record commits of different disks at once; a
manifest is the shared record of them all. Every change is a read, a change of one disk's entry and
a write conditioned on the ETag read (`If-Match`), repeated on a precondition failure, so no
change is lost; a new manifest is written only if none exists (`If-None-Match: *`). A blob at a
manifest's name that the replicator did not write (no marker) is never overwritten: UserError,
exit 2, found before anything is granted or written.

Who retries what: the SDK's storage retry policy (recovery.storage_retry) for every call; this
module repeats only a write that lost the ETag race.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Self

from azure.core import MatchConditions
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.storage.blob import ContentSettings
from azure.storage.blob.aio import ContainerClient

from replicator.core import messages, permissions
from replicator.core.errors import ReplicationError, UserError
from replicator.plumbing.credentials import async_credential, client_kwargs
from replicator.plumbing.urlcheck import TargetPrefix
from replicator.settings.config import Config
from replicator.target import account, manifest
from replicator.target.manifest import GroupManifest

log = logging.getLogger(__name__)

RECORD_ATTEMPTS = 20
"""Writes of one change that may lose the ETag race before giving up: one per disk writing at the
same moment (a VM has at most 64 data disks, but --disk-concurrency of them commit at once)."""


@dataclass(frozen=True)
class Stored:
    """A manifest as read: its content, its blob's URL (no SAS) and its ETag (for the next write)."""

    manifest: GroupManifest
    url: str
    etag: str

    def to_json(self) -> dict[str, Any]:
        """The manifest as `list --json` shows it: its document, where it is, and whether complete."""
        return {
            **self.manifest.to_json(),
            "manifest": self.url,
            "complete": self.manifest.complete,
            "missing": self.manifest.missing,
        }


class GroupStore:
    """The manifests of one prefix; `command` (a key of permissions.COMMANDS) words a 403."""

    def __init__(self, config: Config, prefix: TargetPrefix, *, command: str) -> None:
        self.prefix = prefix
        self._command = command
        self._sas = permissions.parse_sas(config.target)
        self._token = None if prefix.sas else async_credential(config)
        self._container = ContainerClient(
            prefix.account_url, prefix.container, credential=prefix.sas or self._token, **client_kwargs()
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._container.close()
        if self._token is not None:
            await self._token.close()

    async def check_account(self) -> None:
        """UserError (exit 2) when the prefix is in a premium page-blob account: the manifests are block
        blobs, which such an account refuses (400 BlobTypeNotSupported; "A premium GPv2 account stores only
        page blobs": learn.microsoft.com/rest/api/storageservices/using-blob-service-operations-with-azure-
        premium-storage); found before anything is
        granted or written, instead of after every disk is copied. A kind that cannot be read passes: a
        refused manifest write then stops the run with Azure's answer."""
        kind, _ = await account.read_kind(self._container, self.prefix.display)
        if kind.premium:
            raise UserError(
                f"--target {self.prefix.display} is in a premium page-blob storage account ({kind.sku}), "
                "which holds only page blobs, but a virtual machine's group manifests are block blobs; put "
                "the VM's replicas in a standard (general-purpose v2) account, or replicate each disk on "
                "its own (--source <disk ID> --target <page blob URL>) into the premium account."
            )

    def url(self, group_id: str) -> str:
        """The manifest blob's URL, without any SAS."""
        return f"{self.prefix.display}/{manifest.manifest_name(group_id)}"

    @contextlib.contextmanager
    def _authorized(self, operation: str) -> Iterator[None]:
        try:
            yield
        except HttpResponseError as exc:
            if messages.is_missing_credential(exc):
                raise UserError(messages.missing_credential(self.prefix.account_url)) from None
            if exc.status_code == 403:
                code = messages.error_code(exc) or None
                raise permissions.refused(
                    self._command, operation, code, self._sas, self.prefix.display
                ) from None
            raise

    async def list(self) -> list[Stored]:
        """Every manifest under the prefix, newest group first; a blob there that the replicator did
        not write is left out (and logged)."""
        folder = self.prefix.blob_name(manifest.FOLDER) + "/"
        names = []
        with self._authorized("list"):
            try:
                async for item in self._container.list_blobs(name_starts_with=folder, include=["metadata"]):
                    if not item.name.endswith(".json") or "/" in item.name[len(folder) :]:
                        continue
                    if not _ours(item.metadata):
                        log.warning(
                            "%s/%s is not a group manifest of the replicator; ignored",
                            self.prefix.account_url,
                            item.name,
                        )
                        continue
                    names.append(item.name[len(folder) : -len(".json")])
            except ResourceNotFoundError:  # no container yet: nothing was replicated here
                return []
        found = [stored for name in sorted(names, reverse=True) if (stored := await self.read(name))]
        return sorted(found, key=lambda s: (s.manifest.restore_point_time, s.manifest.group_id), reverse=True)

    async def read(self, group_id: str) -> Stored | None:
        """The manifest of `group_id`; None when there is none; UserError when a blob there is not one
        the replicator wrote (it must never be overwritten)."""
        blob = self._container.get_blob_client(self.prefix.blob_name(manifest.manifest_name(group_id)))
        url = self.url(group_id)
        with self._authorized("read"):
            try:
                download = await blob.download_blob()
            except ResourceNotFoundError:
                return None
            data = await download.readall()
        properties = download.properties
        if not _ours(properties.metadata):
            raise UserError(
                f"{url} exists but was not written by the replicator (no {manifest.MARKER_KEY} metadata); "
                "it is never overwritten: move it away, or replicate into another --target prefix."
            )
        return Stored(manifest.decode(data, url), url, properties.etag)

    async def create(self, group: GroupManifest) -> Stored:
        """Write a new group's manifest, unless one exists (then that one, as read). The container is
        created when missing, as the first disk run would (best-effort: a SAS may not create one, and
        the write then says what is missing)."""
        blob = self._container.get_blob_client(self.prefix.blob_name(manifest.manifest_name(group.group_id)))
        with contextlib.suppress(HttpResponseError):  # exists, or not ours to create: the write decides
            await self._container.create_container()
        with self._authorized("create"):
            try:
                result = await blob.upload_blob(
                    manifest.encode(group),
                    metadata={manifest.MARKER_KEY: str(manifest.VERSION)},
                    content_settings=ContentSettings(content_type="application/json"),
                )  # overwrite=False: If-None-Match: *, a blob there is ResourceExistsError
            except ResourceExistsError:
                existing = await self.read(group.group_id)
                if existing is None:  # deleted between the two calls
                    raise ReplicationError(
                        f"{self.url(group.group_id)} was deleted while the run wrote it; "
                        "a rerun writes it again."
                    ) from None
                return existing
        return Stored(group, self.url(group.group_id), result["etag"])

    async def change(self, group_id: str, edit: Callable[[GroupManifest], GroupManifest]) -> GroupManifest:
        """Apply `edit` to the stored manifest and write it back if the blob did not change meanwhile
        (If-Match), again until it did not; returns what was written."""
        blob = self._container.get_blob_client(self.prefix.blob_name(manifest.manifest_name(group_id)))
        for _ in range(RECORD_ATTEMPTS):
            stored = await self.read(group_id)
            if stored is None:
                raise ReplicationError(
                    f"the group manifest {self.url(group_id)} disappeared during the run; "
                    "a rerun writes it again."
                )
            changed = edit(stored.manifest)
            if changed == stored.manifest:
                return changed
            with self._authorized("write"):
                try:
                    await blob.upload_blob(
                        manifest.encode(changed),
                        overwrite=True,
                        metadata={manifest.MARKER_KEY: str(manifest.VERSION)},
                        content_settings=ContentSettings(content_type="application/json"),
                        etag=stored.etag,
                        match_condition=MatchConditions.IfNotModified,
                    )
                except HttpResponseError as exc:
                    if exc.status_code == 412:
                        continue  # another disk recorded its commit in between: read it again
                    raise
            return changed
        raise ReplicationError(
            f"the group manifest {self.url(group_id)} changed {RECORD_ATTEMPTS} times while it was written; "
            "a rerun records the commits again."
        )


def _ours(metadata: Any) -> bool:
    """The replicator wrote this blob (of whichever format version: manifest.decode checks that)."""
    return bool({k.lower(): v for k, v in (metadata or {}).items()}.get(manifest.MARKER_KEY))
