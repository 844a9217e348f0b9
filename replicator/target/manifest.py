"""The group manifest: which restore point of each disk of a VM holds one VM restore point (a *group*).

Why a manifest: a VM is replicated disk by disk, each into its own base blob with its own restore
points (`<prefix>/<disk name>.vhd`), and nothing in one blob says which restore points of the other
disks were taken from the same instant. The manifest says it, beside the blobs, so that `list`,
`restore --group` and restore drills can bring back every disk of the VM from one instant.

Where: one JSON block blob per group, `<prefix>/.groups/<group id>.json` (`manifest_name`), written
by the replicator only: the blob carries the metadata `MARKER_KEY` (the format version), and a blob
there without it is never overwritten (the run stops with exit 2). The group ID
(`group_id`) is the restore point's UTC creation time and a digest of its ARM ID, so the names sort
by time: `20250101T120000Z-1a2b3c4d`.

A group is complete when every disk's restore point is committed (`committed`: its blob snapshot
time is recorded). A run writes the manifest with every disk uncommitted before its first write and
records each disk as it commits; a run that stops leaves the group incomplete, and the next run
completes that same group first.

Format (version 1; `decode` refuses other versions, `encode` writes this one):

    {
      "format": "replicator-vm-group", "version": 1,
      "group_id": "20250101T120000Z-1a2b3c4d",
      "created": "<ISO 8601 UTC: when the run wrote the manifest first>",
      "vm": {"id": "<ARM ID>", "name": "<VM name>", "vm_id": "<the VM's vmId GUID>"},
      "restore_point": {"id": "<ARM ID of the VM restore point>", "time": "<its timeCreated, ISO 8601>",
                        "consistency_mode": "<Azure's consistencyMode>"},
      "consistency": "crash-consistent" | "best-effort" | "application-consistent" | "file-system-consistent",
      "consistency_reasons": ["<why best-effort>", ...],
      "disks": [                                   (OS disk first, then data disks by LUN)
        {"name": "<disk name>", "role": "os" | "data", "lun": null | <int>, "disk_id": "<ARM ID>",
         "blob_url": "<base blob URL, no SAS>",
         "disk_restore_point_id": "<ARM ID>" | null, "snapshot_id": null | "<ARM ID>",
         "committed": true | false, "restore_point": "<blob snapshot time>" | null}
      ],
      "not_captured": [{"name": "<disk name>", "disk_id": "<ARM ID>"}]   (VM disks the restore point lacks)
    }

`consistency` is replicator.core.consistency's judgment of the restore point. Each disk's data
comes from its disk restore point, or (exactly one of the two) from an incremental snapshot of the
disk taken right after the restore point, for a disk Azure leaves out of crash-consistent restore
points (`snapshot_id`; the group is then best-effort and says why).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from replicator.core.consistency import LEVELS
from replicator.core.errors import UserError

FORMAT = "replicator-vm-group"
VERSION = 1
FOLDER = ".groups"
"""The manifests' folder under the prefix."""
MARKER_KEY = "replicator_group_manifest"
"""Blob metadata the replicator puts on every manifest it writes (value: the format VERSION)."""


def group_id(restore_point_id: str, time_created: datetime) -> str:
    """The group of one VM restore point: its UTC creation time, then 8 hex digits of its ARM ID
    (case-folded, as ARM compares IDs), so names sort by time and two restore points never share one."""
    digest = hashlib.sha256(restore_point_id.strip().rstrip("/").casefold().encode()).hexdigest()[:8]
    return f"{time_created.astimezone(UTC):%Y%m%dT%H%M%SZ}-{digest}"


def manifest_name(group: str) -> str:
    """The manifest blob of the group `group` (its ID), relative to the prefix: `.groups/<group id>.json`."""
    return f"{FOLDER}/{group}.json"


@dataclass(frozen=True)
class DiskEntry:
    """One disk of the group: where it goes and which restore point holds it (None: not committed)."""

    name: str
    role: str  # "os" | "data"
    lun: int | None
    disk_id: str
    blob_url: str
    disk_restore_point_id: str | None
    snapshot_id: str | None = None  # instead of a disk restore point (see the module docstring)
    restore_point: str | None = None

    @property
    def committed(self) -> bool:
        return self.restore_point is not None

    @property
    def source_point_id(self) -> str:
        """Where the disk's data comes from: its disk restore point, or its snapshot."""
        return self.disk_restore_point_id or self.snapshot_id or ""

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "role": self.role,
            "lun": self.lun,
            "disk_id": self.disk_id,
            "blob_url": self.blob_url,
            "disk_restore_point_id": self.disk_restore_point_id,
            "snapshot_id": self.snapshot_id,
            "committed": self.committed,
            "restore_point": self.restore_point,
        }

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> DiskEntry:
        entry = cls(
            _text(doc, "name"),
            _text(doc, "role"),
            _lun(doc.get("lun")),
            _text(doc, "disk_id"),
            _text(doc, "blob_url"),
            _optional_text(doc, "disk_restore_point_id"),
            _optional_text(doc, "snapshot_id"),
            _optional_text(doc, "restore_point"),
        )
        if entry.role not in ("os", "data") or doc.get("committed") is not entry.committed:
            raise ValueError(f"disk {entry.name!r}: role {entry.role!r}, committed {doc.get('committed')!r}")
        if (entry.disk_restore_point_id is None) == (entry.snapshot_id is None):
            raise ValueError(f"disk {entry.name!r}: not exactly one of disk_restore_point_id and snapshot_id")
        return entry


@dataclass(frozen=True)
class GroupManifest:
    """One group: the VM, its restore point, the consistency, and each captured disk."""

    group_id: str
    vm_id: str
    vm_name: str
    vm_unique_id: str  # the VM's vmId
    restore_point_id: str
    restore_point_time: str  # ISO 8601
    consistency_mode: str
    consistency: str
    consistency_reasons: tuple[str, ...]
    disks: tuple[DiskEntry, ...]
    not_captured: tuple[tuple[str, str], ...] = ()  # (name, disk ID) of VM disks the restore point lacks
    created: str = field(default_factory=lambda: datetime.now(UTC).isoformat())

    @property
    def complete(self) -> bool:
        """Every disk of the group has its restore point."""
        return all(d.committed for d in self.disks)

    @property
    def missing(self) -> list[str]:
        """The disks whose restore point is not committed yet, in disk order."""
        return [d.name for d in self.disks if not d.committed]

    @property
    def restore_point_name(self) -> str:
        return self.restore_point_id.rstrip("/").rsplit("/", 1)[-1]

    def committed(self, disk_name: str, restore_point: str) -> GroupManifest:
        """This manifest with `disk_name`'s restore point recorded."""
        if disk_name not in {d.name for d in self.disks}:
            raise KeyError(disk_name)
        disks = tuple(
            replace(d, restore_point=restore_point) if d.name == disk_name else d for d in self.disks
        )
        return replace(self, disks=disks)

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "version": VERSION,
            "group_id": self.group_id,
            "created": self.created,
            "vm": {"id": self.vm_id, "name": self.vm_name, "vm_id": self.vm_unique_id},
            "restore_point": {
                "id": self.restore_point_id,
                "time": self.restore_point_time,
                "consistency_mode": self.consistency_mode,
            },
            "consistency": self.consistency,
            "consistency_reasons": list(self.consistency_reasons),
            "disks": [d.to_json() for d in self.disks],
            "not_captured": [{"name": name, "disk_id": disk_id} for name, disk_id in self.not_captured],
        }

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> GroupManifest:
        vm, point = _object(doc, "vm"), _object(doc, "restore_point")
        consistency = _text(doc, "consistency")
        if consistency not in LEVELS:
            raise ValueError(f"consistency {consistency!r}")
        return cls(
            group_id=_text(doc, "group_id"),
            vm_id=_text(vm, "id"),
            vm_name=_text(vm, "name"),
            vm_unique_id=_text(vm, "vm_id"),
            restore_point_id=_text(point, "id"),
            restore_point_time=_text(point, "time"),
            consistency_mode=_text(point, "consistency_mode"),
            consistency=consistency,
            consistency_reasons=tuple(_texts(doc, "consistency_reasons")),
            disks=tuple(DiskEntry.from_json(d) for d in _list(doc, "disks")),
            not_captured=tuple((_text(d, "name"), _text(d, "disk_id")) for d in _list(doc, "not_captured")),
            created=_text(doc, "created"),
        )


def encode(manifest: GroupManifest) -> bytes:
    """The manifest blob's content: UTF-8 JSON, keys in a stable order, indented for people."""
    return json.dumps(manifest.to_json(), indent=2, ensure_ascii=False).encode()


def decode(data: bytes, where: str) -> GroupManifest:
    """A manifest blob's content; UserError naming `where` (the blob, no SAS) when it is not one this
    version reads."""
    try:
        doc = json.loads(data)
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise ValueError("not a replicator group manifest")
        if doc.get("version") != VERSION:
            raise UserError(
                f"the group manifest {where} has format version {doc.get('version')!r}; this replicator "
                f"reads version {VERSION}: use the version that wrote it."
            )
        return GroupManifest.from_json(doc)
    except (ValueError, TypeError, KeyError) as exc:
        raise UserError(
            f"the group manifest {where} cannot be read ({exc}); it was not written by the replicator."
        ) from None


def _object(doc: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = doc[key]
    if not isinstance(value, dict):
        raise ValueError(f"{key} is not an object")
    return value


def _list(doc: Mapping[str, Any], key: str) -> Sequence[Any]:
    value = doc.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, dict | str) for v in value):
        raise ValueError(f"{key} is not a list")
    return value


def _text(doc: Mapping[str, Any], key: str) -> str:
    value = doc[key]
    if not isinstance(value, str):
        raise ValueError(f"{key} is not text")
    return value


def _optional_text(doc: Mapping[str, Any], key: str) -> str | None:
    value = doc.get(key)
    return None if value is None else _text(doc, key)


def _texts(doc: Mapping[str, Any], key: str) -> list[str]:
    values = list(_list(doc, key))
    if not all(isinstance(v, str) for v in values):
        raise ValueError(f"{key} is not a list of text")
    return values


def _lun(value: Any) -> int | None:
    if value is None or (isinstance(value, int) and not isinstance(value, bool) and value >= 0):
        return value
    raise ValueError(f"lun {value!r}")
