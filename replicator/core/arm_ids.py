"""Parsing of the two ARM resource IDs the replicator accepts: a managed disk and a snapshot.

Pure (no I/O). ARM treats the fixed segments (`subscriptions`, `resourceGroups`, `providers`,
`Microsoft.Compute`, `disks`/`snapshots`) and the resource group and resource names
case-insensitively, so parsing does too, and `same_resource` compares IDs the way ARM would: a
snapshot's `creationData.sourceResourceId` may differ in case from the disk's `id`.

Anything else is a `UserError` whose one sentence names the problem and shows the expected form,
because the ID usually comes straight from a command line or an app setting.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from replicator.core.errors import UserError

ResourceKind = Literal["disk", "snapshot"]

_TYPES: dict[str, ResourceKind] = {"disks": "disk", "snapshots": "snapshot"}
_PLURAL: dict[ResourceKind, str] = {kind: plural for plural, kind in _TYPES.items()}

EXPECTED_FORM = (
    "/subscriptions/<subscription-guid>/resourceGroups/<group>/providers/Microsoft.Compute/"
    "disks/<name> (or .../snapshots/<name>)"
)

_GUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
# Resource group names: 1-90 letters, digits, underscores, hyphens, periods, parentheses; no trailing period.
_GROUP = re.compile(r"[\w\-.()]{0,89}[\w\-()]", re.UNICODE)
# Disk and snapshot names: 1-80 characters, letters, digits, underscores, hyphens and periods.
_NAME = re.compile(r"[A-Za-z0-9_\-.]{1,80}")


@dataclass(frozen=True)
class ResourceId:
    """A parsed disk or snapshot ID; the values keep the caller's spelling, comparisons ignore case."""

    subscription_id: str
    resource_group: str
    kind: ResourceKind
    name: str

    def __str__(self) -> str:
        return (
            f"/subscriptions/{self.subscription_id}/resourceGroups/{self.resource_group}"
            f"/providers/Microsoft.Compute/{_PLURAL[self.kind]}/{self.name}"
        )

    @property
    def key(self) -> str:
        """The ID folded the way ARM compares IDs (case-insensitively)."""
        return str(self).casefold()


def parse(text: str) -> ResourceId:
    """The disk or snapshot named by `text`; UserError if it is anything else."""
    if not isinstance(text, str):
        raise UserError(f"A resource ID must be text; expected the form {EXPECTED_FORM}.")
    shown = text.strip()
    parts = shown.strip("/").split("/")
    if not shown.startswith("/") or len(parts) != 8:
        raise UserError(f"{shown!r} is not a managed disk or snapshot resource ID; expected {EXPECTED_FORM}.")
    subs, sub, groups, group, providers, namespace, rtype, name = parts
    fixed = (subs.lower(), groups.lower(), providers.lower(), namespace.lower())
    if fixed != ("subscriptions", "resourcegroups", "providers", "microsoft.compute"):
        raise UserError(f"{shown!r} is not a Microsoft.Compute resource ID; expected {EXPECTED_FORM}.")
    kind = _TYPES.get(rtype.lower())
    if kind is None:
        raise UserError(
            f"{shown!r} names a Microsoft.Compute/{rtype} resource, but the source must be a managed disk "
            f"or an incremental snapshot; expected {EXPECTED_FORM}."
        )
    if not _GUID.fullmatch(sub):
        raise UserError(f"The subscription {sub!r} in {shown!r} is not a GUID; expected {EXPECTED_FORM}.")
    if not _GROUP.fullmatch(group):
        raise UserError(
            f"The resource group name {group!r} in {shown!r} is not a valid Azure resource group name."
        )
    if not _NAME.fullmatch(name):
        raise UserError(
            f"The {kind} name {name!r} in {shown!r} is not valid: use 1-80 letters, digits, '_', '-' or '.'."
        )
    return ResourceId(sub, group, kind, name)


def same_resource(a: str | None, b: str | None) -> bool:
    """True when both IDs name the same resource as ARM sees it (case and a trailing '/' ignored)."""
    if not a or not b:
        return False
    return a.strip().rstrip("/").casefold() == b.strip().rstrip("/").casefold()
