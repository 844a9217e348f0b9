"""The blob plane's state: containers, page/block blobs, snapshots, leases, stored access policies,
and which managed-disk containers need an Entra ID token.

No HTTP here: routes/blob.py parses requests into calls on `BlobBackend` and serializes what it returns
(model.py); every failure is a coded `BlobError` from errors/blob.py. Each group of operations
is a module named for it, over the shared rows and transactions of rows.py; this class is their
union, the one object the routes, the ARM backend and auth hold. The pure rules live beside them:
leases.py (the lease state machine), conditions.py (conditional headers), signing.py (SAS URLs).
"""

from __future__ import annotations

from replicator.emulator.blob.access_policies import AccessPolicies
from replicator.emulator.blob.blobs import Blobs
from replicator.emulator.blob.containers import Containers
from replicator.emulator.blob.page_blobs import PageBlobs
from replicator.emulator.blob.page_ranges import PageRanges
from replicator.emulator.blob.protection import Protection
from replicator.emulator.blob.snapshots import Snapshots


class BlobBackend(Containers, Blobs, PageBlobs, Snapshots, PageRanges, AccessPolicies, Protection):
    """The blob plane's state in `DIR/blob.sqlite` and `DIR/pages.dat`, one method per operation."""
