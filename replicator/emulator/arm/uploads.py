"""Direct upload: a disk made with `createOption: Upload`, its states and what Azure refuses of it.

Azure's flow ("Upload a VHD to Azure or copy a managed disk to another region - Azure CLI", and the
REST "Disks - Create Or Update" / "Disks - Grant Access"): create the disk with `createOption:
Upload` and `creationData.uploadSizeBytes` (the bytes to upload, VHD footer included; between
20 MiB + 512 and 32,767 GiB + 512, diskRPCommon.json), and it is `ReadyToUpload`; a grant with `access:
Write` gives a write SAS on its blob and makes it `ActiveUpload`; Put Page / Put Page From URL
write the VHD (Add-AzVhd: "size N * MiB + 512 bytes"); `endGetAccess` ends the upload and the disk
is `Unattached`, readable and attachable as any disk, its data what was uploaded.

The rows here say which disks were created for upload and whether their upload ended; a disk that
is not in this table never was one. What Azure does not document and the emulator assumes is in
docs/emulator.md ("Direct upload").
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from replicator.emulator.arm.disk_data import tail
from replicator.emulator.errors import arm as arm_errors

MIB = 1 << 20
MIN_UPLOAD_BYTES = 20 * MIB + 512
"""uploadSizeBytes' documented lower bound: 20 MiB + a 512-byte VHD footer (20972032)."""
MAX_UPLOAD_BYTES = 32767 * (1 << 30) + 512
"""uploadSizeBytes' documented upper bound, "32 TiB + 512 bytes" (35183298347520: 32,767 GiB, the largest
disk, + a 512-byte VHD footer), for every SKU (the REST reference names none larger for v2 or Ultra)."""
READY, ACTIVE = "ReadyToUpload", "ActiveUpload"

SCHEMA = """
CREATE TABLE IF NOT EXISTS uploads(
    unique_id TEXT PRIMARY KEY, upload_size_bytes INTEGER NOT NULL, done INTEGER NOT NULL);
"""


def disk_size(upload_size_bytes: int | None, source_uri: str | None, sector: int) -> int:
    """The disk's size of an Upload create: the upload size less the VHD footer (refused out of bounds)."""
    if source_uri:
        raise arm_errors.upload_with_source()
    if upload_size_bytes is None:
        raise arm_errors.invalid_parameter(
            target="creationData.uploadSizeBytes",
            detail="Required parameter 'uploadSizeBytes' is missing (null) for createOption Upload.",
        )
    if not MIN_UPLOAD_BYTES <= upload_size_bytes <= MAX_UPLOAD_BYTES:
        raise arm_errors.upload_size_out_of_bounds(size=upload_size_bytes)
    data = upload_size_bytes - tail(sector)
    if data % MIB:
        raise arm_errors.upload_size_unaligned(size=upload_size_bytes)
    return data


@dataclass
class Uploads:
    """The uploads table of arm.sqlite: disks created for upload, and whether their upload ended."""

    db: sqlite3.Connection

    def __post_init__(self) -> None:
        self.db.executescript(SCHEMA)

    def begin(self, unique_id: str, upload_size_bytes: int) -> None:
        self.db.execute("INSERT INTO uploads VALUES (?,?,0)", (unique_id, upload_size_bytes))

    def size(self, unique_id: str) -> int | None:
        """The disk's uploadSizeBytes, None when it was not created for upload."""
        row = self.db.execute(
            "SELECT upload_size_bytes FROM uploads WHERE unique_id=?", (unique_id,)
        ).fetchone()
        return None if row is None else row[0]

    def state(self, unique_id: str, granted: bool) -> str | None:
        """ReadyToUpload or ActiveUpload (a Write SAS out) while the upload is open; None after it."""
        row = self.db.execute("SELECT done FROM uploads WHERE unique_id=?", (unique_id,)).fetchone()
        if row is None or row[0]:
            return None
        return ACTIVE if granted else READY

    def check_grant(self, resource: str, unique_id: str, access: str, granted: bool) -> None:
        """While the upload is open only Write is granted (a Read grant has nothing to read yet)."""
        state = self.state(unique_id, granted)
        if state is not None and access != "Write":
            raise arm_errors.upload_read_access(resource=resource, state=state)

    def check_usable(self, resource: str, unique_id: str, granted: bool, operation: str) -> None:
        """Attach, snapshot or resize wait for the upload to end (`endGetAccess`)."""
        state = self.state(unique_id, granted)
        if state is not None:
            raise arm_errors.upload_not_finished(resource=resource, state=state, operation=operation)

    def end(self, unique_id: str, granted: bool) -> None:
        """endGetAccess: an ActiveUpload disk becomes an ordinary disk; a ReadyToUpload one stays so."""
        if self.state(unique_id, granted) == ACTIVE:
            self.db.execute("UPDATE uploads SET done=1 WHERE unique_id=?", (unique_id,))

    def forget(self, unique_id: str) -> None:
        self.db.execute("DELETE FROM uploads WHERE unique_id=?", (unique_id,))
