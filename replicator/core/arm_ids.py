"""Parsing of the ARM resource IDs the replicator uses: the sources it accepts (a managed disk, a
snapshot, a virtual machine) and the VM restore points it reads (a restore point collection, and
nested under it a restore point and a disk restore point).

Pure (no I/O). ARM treats the fixed segments (`subscriptions`, `resourceGroups`, `providers`,
`Microsoft.Compute`, the resource types) and the resource group and resource names
case-insensitively, so parsing does too, and `same_resource` compares IDs the way ARM would: a
snapshot's `creationData.sourceResourceId` may differ in case from the disk's `id`.

Anything else is a `UserError` whose one sentence names the problem and shows the expected form,
because a source ID usually comes straight from a command line or an app setting (`parse_source`
accepts only what `--source` may name).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from replicator.core.errors import UserError

ResourceKind = Literal[
    "disk",
    "snapshot",
    "vm",
    "restore_point_collection",
    "restore_point",
    "disk_restore_point",
    "disk_encryption_set",
]
SourceKind = Literal["disk", "snapshot", "vm"]

# The resource types of each kind, outermost first: a nested kind names its parents' types.
_PATHS: dict[ResourceKind, tuple[str, ...]] = {
    "disk": ("disks",),
    "snapshot": ("snapshots",),
    "vm": ("virtualMachines",),
    "restore_point_collection": ("restorePointCollections",),
    "restore_point": ("restorePointCollections", "restorePoints"),
    "disk_restore_point": ("restorePointCollections", "restorePoints", "diskRestorePoints"),
    "disk_encryption_set": ("diskEncryptionSets",),  # restore --disk-encryption-set
}
_BY_PATH: dict[tuple[str, ...], ResourceKind] = {
    tuple(t.lower() for t in path): kind for kind, path in _PATHS.items()
}
SOURCE_KINDS: tuple[SourceKind, ...] = ("disk", "snapshot", "vm")

EXPECTED_FORM = (
    "/subscriptions/<subscription-guid>/resourceGroups/<group>/providers/Microsoft.Compute/"
    "disks/<name> (or .../snapshots/<name>, or .../virtualMachines/<name>)"
)

_GUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
# Resource group names: 1-90 letters, digits, underscores, hyphens, periods, parentheses; no trailing period.
_GROUP = re.compile(r"[\w\-.()]{0,89}[\w\-()]", re.UNICODE)
# Disk, snapshot, VM and restore point names: 1-80 letters, digits, underscores, hyphens and periods.
_NAME = re.compile(r"[A-Za-z0-9_\-.]{1,80}")
_KIND_NAMES: dict[ResourceKind, str] = {
    "disk": "disk",
    "snapshot": "snapshot",
    "vm": "virtual machine",
    "restore_point_collection": "restore point collection",
    "restore_point": "restore point",
    "disk_restore_point": "disk restore point",
    "disk_encryption_set": "disk encryption set",
}


@dataclass(frozen=True)
class ResourceId:
    """A parsed ID; the values keep the caller's spelling, comparisons ignore case.

    `parents`: the names of the enclosing resources of a nested kind (a disk restore point's
    restore point collection and restore point), outermost first; empty for the others.
    """

    subscription_id: str
    resource_group: str
    kind: ResourceKind
    name: str
    parents: tuple[str, ...] = ()

    def __str__(self) -> str:
        names = (*self.parents, self.name)
        path = "/".join(f"{rtype}/{name}" for rtype, name in zip(_PATHS[self.kind], names, strict=True))
        return (
            f"/subscriptions/{self.subscription_id}/resourceGroups/{self.resource_group}"
            f"/providers/Microsoft.Compute/{path}"
        )

    @property
    def key(self) -> str:
        """The ID folded the way ARM compares IDs (case-insensitively)."""
        return str(self).casefold()


def parse(text: str) -> ResourceId:
    """The resource named by `text` (any ResourceKind); UserError if it is anything else."""
    if not isinstance(text, str):
        raise UserError(f"A resource ID must be text; expected the form {EXPECTED_FORM}.")
    shown = text.strip()
    parts = shown.strip("/").split("/")
    if not shown.startswith("/") or len(parts) < 8 or len(parts) % 2:
        raise UserError(
            f"{shown!r} is not a managed disk, snapshot or virtual machine resource ID; "
            f"expected {EXPECTED_FORM}."
        )
    subs, sub, groups, group, providers, namespace, *rest = parts
    fixed = (subs.lower(), groups.lower(), providers.lower(), namespace.lower())
    if fixed != ("subscriptions", "resourcegroups", "providers", "microsoft.compute"):
        raise UserError(f"{shown!r} is not a Microsoft.Compute resource ID; expected {EXPECTED_FORM}.")
    types, names = rest[0::2], rest[1::2]
    kind = _BY_PATH.get(tuple(t.lower() for t in types))
    if kind is None:
        raise UserError(
            f"{shown!r} names a Microsoft.Compute/{'/'.join(types)} resource, but the source must be a "
            f"managed disk, an incremental snapshot or a virtual machine; expected {EXPECTED_FORM}."
        )
    if not _GUID.fullmatch(sub):
        raise UserError(f"The subscription {sub!r} in {shown!r} is not a GUID; expected {EXPECTED_FORM}.")
    if not _GROUP.fullmatch(group):
        raise UserError(
            f"The resource group name {group!r} in {shown!r} is not a valid Azure resource group name."
        )
    for name in names:
        if not _NAME.fullmatch(name):
            raise UserError(
                f"The {_KIND_NAMES[kind]} name {name!r} in {shown!r} is not valid: use 1-80 letters, "
                "digits, '_', '-' or '.'."
            )
    return ResourceId(sub, group, kind, names[-1], tuple(names[:-1]))


def parse_source(text: str) -> ResourceId:
    """What `--source` may name: a managed disk, an incremental snapshot or a virtual machine."""
    rid = parse(text)
    if rid.kind not in SOURCE_KINDS:
        raise UserError(
            f"{text.strip()!r} is a {_KIND_NAMES[rid.kind]}; --source must be a managed disk, an "
            f"incremental snapshot or a virtual machine (the tool reads its restore points); expected "
            f"{EXPECTED_FORM}."
        )
    return rid


def same_resource(a: str | None, b: str | None) -> bool:
    """True when both IDs name the same resource as ARM sees it (case and a trailing '/' ignored)."""
    if not a or not b:
        return False
    return a.strip().rstrip("/").casefold() == b.strip().rstrip("/").casefold()
