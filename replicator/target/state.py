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
    last_drill_time, last_drill_restore_point, last_drill_snapshot_name, last_drill_result,
    last_drill_ready_seconds, last_drill_verified_seconds
                                      the last restore drill (core.drill_record; absent before the first)

A restore point is a blob snapshot whose metadata holds (RestorePointMeta, the one codec that writes
and reads it): source_disk_id, source_disk_unique_id, snapshot_id, snapshot_unique_id, snapshot_time,
snapshot_name, size_bytes, logical_sector_size, mode ("full" | "diff"), reason, base_snapshot_id,
data_access_auth_mode (the source snapshot's, which `restore` gives the new disk; absent in restore
points of older versions); the source disk's failover-grade properties (core.disk_profile.DiskProfile,
keys `disk_*`: disk_sku, disk_os_type, disk_hyper_v_generation, disk_architecture,
disk_accelerated_network ("true" | "false"), disk_controller_types, disk_security_type, disk_zone,
disk_tags (JSON object), disk_tags_dropped, disk_network_access_policy, disk_public_network_access;
absent in restore points of older versions and when the source did not say); stripe_snapshots, for a
source larger than one page blob (core.stripes): the blob snapshot times of stripes 1, 2, ... taken
for this restore point, comma-separated (the restore point's own blob snapshot is stripe 0; absent
when one blob holds it); and commit_id, the tag `commit` finds it by after a lost answer.

Azure allows 8 KiB of metadata per blob (names and values: "Setting and retrieving properties and
metadata for Blob service resources"), and a disk's tags alone may be larger (50 tags of 512 + 256
characters). So `RestorePointMeta.to_metadata` keeps the record within METADATA_LIMIT_BYTES: when the
whole does not fit, the tags are left out (disk_tags_dropped says how many, and restore says so),
then the free-text reason is clipped; everything else is bounded by Azure's own name limits.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from urllib.parse import quote

from replicator.core.disk_profile import DiskProfile
from replicator.core.drill_record import DrillRecord
from replicator.core.errors import UserError

SCHEMA = "1"
METADATA_LIMIT_BYTES = 8 * 1024
"""Azure's limit on one blob's metadata, names and values together."""
COMMIT_TAG_BYTES = len("commit_id") + 36
"""What page_blob.commit adds to a restore point's metadata: the commit_id tag, a UUID."""


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
    last_drill: DrillRecord | None = None  # written by `drill`, kept by every other writer

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
        if self.last_drill:
            d = self.last_drill
            meta |= {
                "last_drill_time": d.time,
                "last_drill_restore_point": d.restore_point,
                "last_drill_snapshot_name": d.snapshot_name,
                "last_drill_result": d.result,
            }
            for key, seconds in (("ready", d.ready_seconds), ("verified", d.verified_seconds)):
                if seconds is not None:
                    meta[f"last_drill_{key}_seconds"] = f"{seconds:.3f}"
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
            _meta_drill(meta),
        )


def _meta_drill(meta: Mapping[str, str]) -> DrillRecord | None:
    result = meta.get("last_drill_result")
    if result not in ("passed", "mismatch", "failed"):
        return None

    def seconds(key: str) -> float | None:
        try:
            return float(meta[f"last_drill_{key}_seconds"])
        except (KeyError, ValueError):
            return None

    return DrillRecord(
        meta.get("last_drill_time", ""),
        meta.get("last_drill_restore_point", ""),
        meta.get("last_drill_snapshot_name", ""),
        result,
        seconds("ready"),
        seconds("verified"),
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
    profile: DiskProfile = field(default_factory=DiskProfile)  # the source disk's, for a replacement
    stripe_snapshots: tuple[str, ...] = ()  # blob snapshot times of stripes 1.. (core.stripes); () one blob

    def to_metadata(self) -> dict[str, str]:
        """The metadata, within METADATA_LIMIT_BYTES with the commit tag (see the module docstring)."""
        meta = self._encoded()
        if _size(meta) > METADATA_LIMIT_BYTES - COMMIT_TAG_BYTES and self.profile.tags:
            dropped = replace(self.profile, tags={}, tags_dropped=len(self.profile.tags))
            meta = replace(self, profile=dropped)._encoded()
        excess = _size(meta) - (METADATA_LIMIT_BYTES - COMMIT_TAG_BYTES)
        if excess > 0:
            meta["reason"] = meta["reason"][: max(0, len(meta["reason"]) - excess - 3)] + "..."
        return meta

    def _encoded(self) -> dict[str, str]:
        plain = {f.name: str(getattr(self, f.name)) for f in fields(self) if f.name not in _STRUCTURED}
        if self.stripe_snapshots:  # absent when one blob holds the restore point (every older version)
            plain["stripe_snapshots"] = ",".join(self.stripe_snapshots)
        return {k: _ascii(v) for k, v in (plain | _profile_meta(self.profile)).items()}

    @classmethod
    def from_metadata(cls, meta: Mapping[str, str]) -> RestorePointMeta:
        """Decode listed metadata (keys in any case; other keys, such as commit_id, are ignored)."""
        meta = {k.lower(): v for k, v in meta.items()}
        text = {f.name: meta.get(f.name, "") for f in fields(cls) if f.name not in _STRUCTURED}
        return cls(
            **text
            | {
                "size_bytes": int(text["size_bytes"] or 0),
                "logical_sector_size": int(text["logical_sector_size"] or 512),
            },
            profile=_meta_profile(meta),
            stripe_snapshots=tuple(t for t in meta.get("stripe_snapshots", "").split(",") if t),
        )


_STRUCTURED = {"profile", "stripe_snapshots"}
"""RestorePointMeta fields not stored as one plain string each: the profile's keys, the stripes' list."""


_PROFILE_KEYS = {
    "sku": "disk_sku",
    "os_type": "disk_os_type",
    "hyper_v_generation": "disk_hyper_v_generation",
    "architecture": "disk_architecture",
    "disk_controller_types": "disk_controller_types",
    "security_type": "disk_security_type",
    "zone": "disk_zone",
    "network_access_policy": "disk_network_access_policy",
    "public_network_access": "disk_public_network_access",
}
"""The DiskProfile fields stored as they are, and their metadata keys."""


def _profile_meta(profile: DiskProfile) -> dict[str, str]:
    """Only what was recorded: an empty profile adds no key (a restore point of a disk without any)."""
    meta = {key: getattr(profile, name) for name, key in _PROFILE_KEYS.items() if getattr(profile, name)}
    if profile.accelerated_network is not None:
        meta["disk_accelerated_network"] = "true" if profile.accelerated_network else "false"
    if profile.tags:
        meta["disk_tags"] = json.dumps(profile.tags, separators=(",", ":"), sort_keys=True)
    if profile.tags_dropped:
        meta["disk_tags_dropped"] = str(profile.tags_dropped)
    return meta


def _meta_profile(meta: Mapping[str, str]) -> DiskProfile:
    """Decode lower-cased metadata; a value that does not parse reads as not recorded (a restore
    point's record must never stop a restore of its bytes)."""
    try:
        tags = json.loads(meta.get("disk_tags") or "{}")
    except ValueError:
        tags = {}
    if not isinstance(tags, dict):
        tags = {}
    flag = meta.get("disk_accelerated_network", "")
    dropped = meta.get("disk_tags_dropped", "")
    return DiskProfile(
        **{name: meta.get(key, "") for name, key in _PROFILE_KEYS.items()},
        accelerated_network={"true": True, "false": False}.get(flag),
        tags={str(k): str(v) for k, v in tags.items()},
        tags_dropped=int(dropped) if dropped.isdigit() else 0,
    )


def _size(meta: Mapping[str, str]) -> int:
    return sum(len(k) + len(v) for k, v in meta.items())


@dataclass(frozen=True)
class RestorePoint:
    """One blob snapshot of the target and the source snapshot it holds."""

    id: str  # the blob snapshot timestamp
    metadata: dict[str, str]  # as listed: RestorePointMeta's keys and the commit_id tag

    @property
    def meta(self) -> RestorePointMeta:
        return RestorePointMeta.from_metadata(self.metadata)

    @property
    def taken_by_replicator(self) -> bool:
        """A restore point records its source snapshot; a blob snapshot taken otherwise (by hand, by
        another tool) copies the base blob's metadata, which names none. Such snapshots still count
        toward a premium blob's 100, and prune never deletes them."""
        return bool(self.meta.snapshot_id)
