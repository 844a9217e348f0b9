"""Azure's "N creations per subject per period" limits: a sliding window over creation times.

Both limits of this kind that the emulator models use it: 7 incremental snapshots per disk every 5
minutes (the disk's unique ID is the subject), and 3 restore points per VM per hour and consistency
mode (vmId/mode). A creation counts from its time for one window, whatever happens to what it
created (deleting a snapshot frees no slot); the wait is until the oldest creation that counts
leaves the window.
"""

from __future__ import annotations

import math
import sqlite3
from dataclasses import dataclass

SCHEMA = "CREATE TABLE IF NOT EXISTS creation_log(subject TEXT NOT NULL, created REAL NOT NULL);"


@dataclass(frozen=True)
class Full:
    """The window is full: how many creations count now, and the whole seconds until one more fits."""

    count: int
    retry_after: int


@dataclass
class CreationLog:
    db: sqlite3.Connection

    def __post_init__(self) -> None:
        self.db.executescript(SCHEMA)

    def full(self, subject: str, now: float, limit: int, window_seconds: float) -> Full | None:
        """None when `subject` may create now under "`limit` per `window_seconds`"."""
        start = now - window_seconds
        self.db.execute("DELETE FROM creation_log WHERE created <= ?", (start,))
        query = "SELECT created FROM creation_log WHERE subject=? ORDER BY created"
        recent = [row["created"] for row in self.db.execute(query, (subject,))]
        if len(recent) < limit:
            return None
        return Full(len(recent), math.ceil(recent[-limit] - start))

    def record(self, subject: str, now: float) -> None:
        self.db.execute("INSERT INTO creation_log VALUES (?,?)", (subject, now))
