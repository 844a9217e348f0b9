"""The error tree. Every error the replicator raises on purpose is a ReplicatorError; its class
decides the exit code, so the CLI never has to guess from a message.

- UserError (exit 2): bad input or usage, found before anything is granted or written.
- LockedError, LimitError, IncompleteError (exit 3): another run holds the target, a service limit
  that a later run will clear (SAS budget of a snapshot family, snapshot rate limits), or the time
  budget ran out with the checkpoint saved. All mean "nothing is wrong; run again later"; the
  `--json` status (`locked`, `failed`, `incomplete`) tells them apart.
- ReplicationError (exit 1): the run failed; earlier restore points are untouched.

Messages are one sentence naming the problem and, where there is one, the fix. They must never
carry a SAS token, an account key or a bearer token (see replicator.redact).
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_RETRY_LATER = 3


class ReplicatorError(Exception):
    """Base of every deliberate error; `exit_code` is what the CLI returns."""

    exit_code = EXIT_FAILED


class UserError(ReplicatorError):
    """Bad input: a malformed ID or URL, a resource that does not exist, a wrong kind of source."""

    exit_code = EXIT_USAGE


class LockedError(ReplicatorError):
    """Another replication holds the target's lease."""

    exit_code = EXIT_RETRY_LATER


class LimitError(ReplicatorError):
    """A service limit refused us and waiting within our time limit did not clear it."""

    exit_code = EXIT_RETRY_LATER


class ReplicationError(ReplicatorError):
    """The run failed after it started; the target keeps its checkpoint and earlier restore points."""

    exit_code = EXIT_FAILED


class IncompleteError(ReplicatorError):
    """The run stopped cleanly before its time budget ran out; the next run continues from the checkpoint."""

    exit_code = EXIT_RETRY_LATER
