"""How consistent across disks a VM restore point is: what the run and the group manifest say.

Pure: one function over what ARM says of the restore point (its `consistencyMode`, the VM size and
each captured disk's SKU, host caching and write accelerator). Why it matters: a VM replicated from
one restore point is only as consistent as that restore point, and Azure does not guarantee crash
consistency everywhere. Where it does not, the run and the manifest say `best-effort` and why,
instead of promising what Azure does not.

Azure's rules, from "Overview of Virtual Machine restore points" (consistency modes, limitations)
and "Support matrix for VM restore points":

- Ultra Disks, Premium SSD v2 disks, write-accelerated disks and shared disks are not supported for
  crash consistency ("Exclude these disks and create a VM restore point when using crash
  consistency"). `--snapshot-now` does exactly that (`left_out`) and takes an incremental snapshot
  of each such disk right after the restore point, so the group still holds every disk: best-effort,
  since that snapshot is a later instant.
- Crash consistency cannot be guaranteed for disks with read/write host caching (writes during the
  snapshot may not be acknowledged by Azure Storage).
- Crash-consistent restore points of Intel v6+ (Dsv6, Edsv6, Esv6, ...) and AMD v7+ (Dasv7,
  Dadsv7, Easv7, Faldsv7, ...) sizes with more than one data disk might not be consistent across
  disks (Azure Boost offloads storage to hardware).
- Application-consistent restore points (VSS writers, or pre- and post-scripts on Linux) are
  supported for all of these; such a restore point (and a file-system-consistent one) is reported as
  what Azure made it, not judged by the crash-consistency rules.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

CRASH_CONSISTENT = "crash-consistent"
BEST_EFFORT = "best-effort"
APPLICATION_CONSISTENT = "application-consistent"
FILE_SYSTEM_CONSISTENT = "file-system-consistent"
LEVELS = (APPLICATION_CONSISTENT, FILE_SYSTEM_CONSISTENT, CRASH_CONSISTENT, BEST_EFFORT)
"""What `consistency` may say, strongest first."""

NO_CRASH_CONSISTENCY_SKUS = {"UltraSSD_LRS": "an Ultra Disk", "PremiumV2_LRS": "a Premium SSD v2 disk"}
"""Disk SKUs Azure does not support in crash-consistent restore points."""

_MODES = {
    "applicationconsistent": APPLICATION_CONSISTENT,
    "filesystemconsistent": FILE_SYSTEM_CONSISTENT,
}

# Standard_<family><vCPUs>[-<constrained vCPUs>]<feature letters>[_<more>]_v<N>: Standard_D4ds_v6,
# Standard_E8-4as_v7. Feature letter `a` is an AMD processor, `p` an Arm one; neither is Intel.
_SIZE = re.compile(
    r"(?:standard_|basic_)?(?P<family>[a-z]+)(?P<cpus>\d+)(?:-\d+)?(?P<features>[a-z]*)(?:_[a-z0-9]+)*?_v(?P<version>\d+)",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class DiskFacts:
    """What decides a captured disk's part in the restore point's consistency."""

    name: str
    role: str  # "os" | "data"
    sku: str | None  # the disk's SKU name (Premium_LRS, PremiumV2_LRS, ...); None when unknown
    caching: str | None  # the VM's host caching of the disk: None, ReadOnly, ReadWrite
    write_accelerator: bool = False
    shared: bool = False  # maxShares > 1
    separate: bool = False  # left out of the restore point: copied from its own incremental snapshot


@dataclass(frozen=True)
class Consistency:
    """One of LEVELS, and for `best-effort` every reason, in disk order."""

    level: str
    reasons: tuple[str, ...] = ()


def left_out(disk: DiskFacts) -> str | None:
    """Why Azure leaves `disk` out of a crash-consistent restore point ("Exclude these disks"), as
    "is <what>", or None when it takes part."""
    if disk.sku in NO_CRASH_CONSISTENCY_SKUS:
        return f"is {NO_CRASH_CONSISTENCY_SKUS[disk.sku]}"
    if disk.write_accelerator:
        return "has the write accelerator on"
    if disk.shared:
        return "is a shared disk"
    return None


def azure_boost_size(vm_size: str | None) -> bool:
    """Whether `vm_size` is an Intel v6+ or AMD v7+ size (those Azure names for multi-disk crash
    consistency); Arm (`p`) sizes are not named and are not counted."""
    match = _SIZE.fullmatch(vm_size or "")
    if not match:
        return False
    features, version = match["features"].lower(), int(match["version"])
    if "p" in features:
        return False
    return version >= 7 if "a" in features else version >= 6


def judge(consistency_mode: str | None, vm_size: str | None, disks: Sequence[DiskFacts]) -> Consistency:
    """The consistency of a restore point taken in `consistency_mode` (Azure's value) of a VM of size
    `vm_size` capturing `disks` (those it holds, and those copied from their own snapshot beside it:
    `separate`; OS disk first). A `separate` disk makes even an application-consistent one best-effort."""
    mode = (consistency_mode or "").replace("_", "").casefold()
    application = mode in _MODES  # the crash-consistency rules do not apply to it
    reasons: list[str] = []
    if not application and mode != "crashconsistent":
        reasons.append(
            f"the restore point's consistency mode is {consistency_mode or 'not stated'}, not CrashConsistent"
        )
    for disk in disks:
        if disk.separate:
            reasons.append(
                f"{disk.name} {left_out(disk) or 'is not in the restore point'}, which Azure leaves out of "
                "crash-consistent restore points: it is copied from an incremental snapshot taken right after"
            )
        elif application:
            continue
        elif why := left_out(disk):
            reasons.append(
                f"{disk.name} {why}, which Azure does not support in crash-consistent restore points"
            )
        if not application and (disk.caching or "").casefold() == "readwrite":
            reasons.append(
                f"{disk.name} has read/write host caching, under which Azure cannot guarantee crash "
                "consistency"
            )
    data_disks = sum(1 for d in disks if d.role == "data" and not d.separate)
    if not application and data_disks > 1 and azure_boost_size(vm_size):
        reasons.append(
            f"the VM size {vm_size} is an Intel v6+ or AMD v7+ size (Azure Boost) and the restore point "
            f"holds {data_disks} data disks, which Azure says might not be consistent across disks"
        )
    if reasons:
        return Consistency(BEST_EFFORT, tuple(reasons))
    return Consistency(_MODES[mode] if application else CRASH_CONSISTENT)
