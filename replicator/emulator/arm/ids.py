"""ARM resource IDs of the emulated Microsoft.Compute resources: parsed from request bodies (a
snapshot's source disk, a VM's managed disks, a collection's source VM, a disk encryption set)."""

from __future__ import annotations

import re
from dataclasses import dataclass

_RESOURCE_ID = re.compile(
    r"^/subscriptions/(?P<subscription>[^/]+)/resourceGroups/(?P<resource_group>[^/]+)"
    r"/providers/Microsoft\.Compute/(?P<kind>[^/]+)/(?P<name>[^/]+)$",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class ResourceId:
    subscription: str
    resource_group: str
    kind: str  # the ARM type segment as sent: disks, snapshots, virtualMachines, ...
    name: str

    def is_a(self, kind: str, subscription: str) -> bool:
        """Of type `kind` (case-insensitive, as ARM compares) in `subscription`."""
        return self.kind.lower() == kind.lower() and self.subscription.lower() == subscription.lower()


def parse(resource_id: str | None) -> ResourceId | None:
    """The parts of a top-level Microsoft.Compute resource ID, or None for anything else."""
    match = _RESOURCE_ID.match(resource_id or "")
    return None if match is None else ResourceId(**match.groupdict())
