"""Restore a VM's group: every disk of one VM restore point, created in parallel into one resource
group, so the VM comes back from one instant (`replicate restore --target <prefix> --group ID|latest`).

Why a module of its own: a group is many restores that stand or fall together. Every disk is checked
first (target.restore_disk.prepare: its restore point, the import or upload rules, the overrides, a
name already taken), so a refusal creates nothing; then all are created at once, each as `restore`
makes one (`make`: by Import, a striped restore point by upload). The result lists the
disks in VM order (the manifest's: the OS disk first, then the data disks by LUN) and says how to
attach them: `az vm create --attach-os-disk <OS disk> --attach-data-disks <data disks, by LUN>
--os-type <type>` (Azure CLI assigns LUNs 0, 1, ... in that order; the source's LUNs are in
`disks`).

The group comes from the prefix's manifests (target.groups, target.manifest): `latest` is the
newest complete group; a named group must be complete (an incomplete one has disks without a
restore point of that instant).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any

from replicator.core.errors import ReplicationError, UserError
from replicator.plumbing.urlcheck import parse_target_prefix
from replicator.settings.config import Config
from replicator.target.groups import GroupStore
from replicator.target.manifest import DiskEntry, GroupManifest
from replicator.target.restore_disk import PreparedRestore, RestoreRequest, RestoreResult, prepare

Make = Callable[[Config, PreparedRestore, Callable[[str], None]], Awaitable[RestoreResult]]
"""How one checked disk is made: engine.striped_restore.make (by Import, or by upload for a striped
restore point). The engine's, so this layer takes it from its caller."""


@dataclass(frozen=True)
class GroupRestore:
    """The group restored and each disk's result, in VM order."""

    group: GroupManifest
    disks: list[tuple[DiskEntry, RestoreResult]]

    def attach_command(self) -> dict[str, Any]:
        """What `az vm create` attaches: the OS disk, the data disks in LUN order, and the OS type."""
        os_disks = [result for entry, result in self.disks if entry.role == "os"]
        return {
            "attach_os_disk": os_disks[0].disk_id if os_disks else None,
            "attach_data_disks": [result.disk_id for entry, result in self.disks if entry.role == "data"],
            "os_type": (os_disks[0].profile.os_type.lower() or None) if os_disks else None,
        }

    def to_json(self) -> dict[str, Any]:
        g = self.group
        return {
            "group": {
                "group_id": g.group_id,
                "vm": {"id": g.vm_id, "name": g.vm_name},
                "restore_point": {"id": g.restore_point_id, "time": g.restore_point_time},
                "consistency": g.consistency,
                "consistency_reasons": list(g.consistency_reasons),
            },
            "disks": [disk_json(entry, result) for entry, result in self.disks],
            "az_vm_create": self.attach_command(),
        }


def disk_json(entry: DiskEntry, result: RestoreResult) -> dict[str, Any]:
    """One disk restored, as `--json` shows it: the restore's document plus its source disk's name,
    role and LUN."""
    return {"name": entry.name, "role": entry.role, "lun": entry.lun, **result.to_json()}


def vm_order(disks: tuple[DiskEntry, ...]) -> list[DiskEntry]:
    """The OS disk first, then the data disks by LUN."""
    return sorted(disks, key=lambda d: (d.role != "os", d.lun if d.lun is not None else -1))


async def choose(store: GroupStore, wanted: str) -> GroupManifest:
    """`latest` (the newest complete group) or a group ID; UserError when there is none, or it is
    incomplete."""
    if wanted == "latest":
        stored = await store.list()
        complete = [s.manifest for s in stored if s.manifest.complete]
        if not complete:
            raise UserError(
                f"{store.prefix.display} holds no complete group"
                + (f" ({len(stored)} incomplete: a rerun completes them)" if stored else "")
                + "; see `replicate list`."
            )
        return complete[0]
    found = await store.read(wanted)
    if found is None:
        raise UserError(f"there is no group {wanted!r} under {store.prefix.display}; see `replicate list`.")
    if not found.manifest.complete:
        raise UserError(
            f"group {wanted} is incomplete (not committed: {', '.join(found.manifest.missing)}): its disks "
            "are not all from one instant; restore a complete group (`replicate list` flags them)."
        )
    return found.manifest


async def restore_group(
    config: Config,
    wanted: str,
    template: RestoreRequest,
    name_suffix: str,
    on_message: Callable[[str], None] = lambda _: None,
    on_restored: Callable[[DiskEntry, RestoreResult], None] = lambda *_: None,
    *,
    make: Make,
) -> GroupRestore:
    """Every disk of the group `wanted` as `template` says (resource group, location, overrides),
    each named `<source disk name><name_suffix>`; checked in full before any is created.
    `on_restored` hears of each disk as it is created: when another fails, the error says which
    exist, and so can the caller (the `--json` envelope of a failure lists them)."""
    prefix = parse_target_prefix(config.target, allow_http=config.allow_http)
    async with GroupStore(config, prefix, command="restore") as store:
        group = await choose(store, wanted)
    entries = vm_order(group.disks)
    configs = [replace(config, target=e.blob_url + (f"?{prefix.sas}" if prefix.sas else "")) for e in entries]
    requests = [
        replace(template, point=e.restore_point or "", disk_name=f"{e.name}{name_suffix}") for e in entries
    ]
    prepared = [await prepare(c, r) for c, r in zip(configs, requests, strict=True)]
    on_message(f"restoring group {group.group_id} of {group.vm_name}: {len(entries)} disks in parallel")

    async def one(entry: DiskEntry, config: Config, ready: PreparedRestore) -> RestoreResult:
        result = await make(config, ready, on_message)
        on_restored(entry, result)
        return result

    done = await asyncio.gather(
        *(one(e, c, p) for e, c, p in zip(entries, configs, prepared, strict=True)), return_exceptions=True
    )
    failed = [(e, r) for e, r in zip(entries, done, strict=True) if isinstance(r, BaseException)]
    if failed:
        made = [r.disk_id for r in done if isinstance(r, RestoreResult)]
        raise ReplicationError(
            f"{len(failed)} of {len(entries)} disks of group {group.group_id} were not created "
            f"({'; '.join(f'{e.name}: {r}' for e, r in failed)}); created: {', '.join(made) or 'none'}."
        )
    return GroupRestore(
        group, [(e, r) for e, r in zip(entries, done, strict=True) if isinstance(r, RestoreResult)]
    )
