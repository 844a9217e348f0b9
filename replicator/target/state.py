"""The replication state and the restore-point record: typed codecs of the target's blob metadata.

These are the only code that spells the metadata keys: `State` for the base blob, `RestorePointMeta`
for a restore point (`to_metadata()` / `from_metadata()`); the engine writes them, `list`,
`restore`, `status` and the next run read them back.

Target state schema (metadata of the base blob; values are ASCII strings):

    replicator_schema                 "1"
    source_disk_id, source_disk_unique_id
    last_snapshot_id, last_snapshot_unique_id, last_snapshot_time, last_snapshot_name
    last_restore_point                blob snapshot timestamp holding last_snapshot
    inprogress_snapshot_id, inprogress_snapshot_unique_id, inprogress_snapshot_time,
    inprogress_snapshot_name          the source snapshot being written (absent when idle)
    inprogress_base_id                the source snapshot of the diff base ("" for a full copy)
    inprogress_base_unique_id         its uniqueId: a base re-created under the same name is not the base
    inprogress_mode, inprogress_reason
    inprogress_checkpoint             every op of the plan below this offset is written
    inprogress_total_bytes            the size being written: the checkpoint is an offset of this many
                                      bytes (`replicate status` shows checkpoint of total)

A restore point is a blob snapshot whose metadata holds (RestorePointMeta, the one codec that writes
and reads it): source_disk_id, source_disk_unique_id, snapshot_id, snapshot_unique_id, snapshot_time,
snapshot_name, size_bytes, logical_sector_size, mode ("full" | "diff"), reason, base_snapshot_id,
data_access_auth_mode (the source snapshot's, which `restore` gives the new disk; absent in restore
points of older versions); and commit_id, the tag `commit` finds it by after a lost answer.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from urllib.parse import quote

from replicator.core.errors import UserError

SCHEMA = "1"


@dataclass(frozen=True)
class SnapshotRef:
    """The identity of a source snapshot as recorded on the target."""

    id: str
    unique_id: str
    time: str  # ISO 8601 creation time
    name: str


@dataclass(frozen=True)
class InProgress:
    """A replication that started and has not committed: what the next run resumes."""

    snapshot: SnapshotRef
    base_id: str | None  # None: full copy
    mode: str
    reason: str
    checkpoint: int
    base_unique_id: str | None = None  # the base's uniqueId; None for a full copy (or an older writer)
    total_bytes: int | None = None  # the size being written (checkpoint of total); None: an older writer


@dataclass(frozen=True)
class State:
    """The replication state kept in the base blob's metadata."""

    disk_id: str | None = None
    disk_unique_id: str | None = None
    last: SnapshotRef | None = None
    last_restore_point: str | None = None
    in_progress: InProgress | None = None

    def to_metadata(self) -> dict[str, str]:
        meta = {"replicator_schema": SCHEMA}
        if self.disk_id:
            meta |= {"source_disk_id": self.disk_id, "source_disk_unique_id": self.disk_unique_id or ""}
        if self.last:
            meta |= _ref_meta("last_snapshot", self.last)
            meta["last_restore_point"] = self.last_restore_point or ""
        if self.in_progress:
            p = self.in_progress
            meta |= _ref_meta("inprogress_snapshot", p.snapshot)
            meta |= {
                "inprogress_base_id": p.base_id or "",
                "inprogress_base_unique_id": p.base_unique_id or "",
                "inprogress_mode": p.mode,
                "inprogress_reason": p.reason,
                "inprogress_checkpoint": str(p.checkpoint),
            }
            if p.total_bytes is not None:
                meta["inprogress_total_bytes"] = str(p.total_bytes)
        return {k: _ascii(v) for k, v in meta.items()}

    @classmethod
    def from_metadata(cls, meta: Mapping[str, str]) -> State:
        meta = {k.lower(): v for k, v in meta.items()}
        if "replicator_schema" not in meta:
            return cls()
        if meta["replicator_schema"] != SCHEMA:
            raise UserError(
                f"the target was written by an unknown replicator schema {meta['replicator_schema']!r}."
            )
        progress = None
        if ref := _meta_ref("inprogress_snapshot", meta):
            progress = InProgress(
                ref,
                meta.get("inprogress_base_id") or None,
                meta.get("inprogress_mode", "full"),
                meta.get("inprogress_reason", ""),
                int(meta.get("inprogress_checkpoint") or 0),
                meta.get("inprogress_base_unique_id") or None,
                int(meta["inprogress_total_bytes"]) if meta.get("inprogress_total_bytes") else None,
            )
        return cls(
            meta.get("source_disk_id") or None,
            meta.get("source_disk_unique_id") or None,
            _meta_ref("last_snapshot", meta),
            meta.get("last_restore_point") or None,
            progress,
        )


def _ascii(value: str) -> str:
    """Metadata travels in HTTP headers: keep it ASCII (percent-encode anything else)."""
    return value if value.isascii() else quote(value, safe="/:-_.~ ")


def _ref_meta(prefix: str, ref: SnapshotRef) -> dict[str, str]:
    return {f"{prefix}_{f.name}": getattr(ref, f.name) for f in fields(SnapshotRef)}


def _meta_ref(prefix: str, meta: Mapping[str, str]) -> SnapshotRef | None:
    if not meta.get(f"{prefix}_id"):
        return None
    return SnapshotRef(**{f.name: meta.get(f"{prefix}_{f.name}", "") for f in fields(SnapshotRef)})


@dataclass(frozen=True)
class RestorePointMeta:
    """What a restore point records about the source snapshot it holds: its blob snapshot's metadata.

    The restore point's counterpart of `State`, and like it the only code that spells its keys: the
    pipeline writes it at commit; `list`, `restore`, `status` and the next run read it back. The keys
    are the field names and every value is an ASCII string (the wire format since the first release,
    so restore points written by any version read the same). A key that is absent (a blob snapshot
    taken by hand copies the base blob's metadata instead) reads as the field's default.
    """

    source_disk_id: str = ""
    source_disk_unique_id: str = ""
    snapshot_id: str = ""
    snapshot_unique_id: str = ""
    snapshot_time: str = ""  # the source snapshot's ISO 8601 creation time
    snapshot_name: str = ""
    size_bytes: int = 0
    logical_sector_size: int = 512
    mode: str = ""  # "full" | "diff"
    reason: str = ""
    base_snapshot_id: str = ""  # "" for a full copy
    data_access_auth_mode: str = ""  # the source snapshot's (AzureActiveDirectory, None); "" not known

    def to_metadata(self) -> dict[str, str]:
        return {f.name: _ascii(str(getattr(self, f.name))) for f in fields(self)}

    @classmethod
    def from_metadata(cls, meta: Mapping[str, str]) -> RestorePointMeta:
        """Decode listed metadata (keys in any case; other keys, such as commit_id, are ignored)."""
        meta = {k.lower(): v for k, v in meta.items()}
        text = {f.name: meta.get(f.name, "") for f in fields(cls)}
        return cls(
            **text
            | {
                "size_bytes": int(text["size_bytes"] or 0),
                "logical_sector_size": int(text["logical_sector_size"] or 512),
            }
        )


@dataclass(frozen=True)
class RestorePoint:
    """One blob snapshot of the target and the source snapshot it holds."""

    id: str  # the blob snapshot timestamp
    metadata: dict[str, str]  # as listed: RestorePointMeta's keys and the commit_id tag

    @property
    def meta(self) -> RestorePointMeta:
        return RestorePointMeta.from_metadata(self.metadata)
