"""The error tree. Every error the replicator raises on purpose is a ReplicatorError; its class
decides the exit code, so the CLI never has to guess from a message.

- UserError (exit 2): bad input or usage, found before anything is granted or written.
- LockedError, LimitError, IncompleteError (exit 3): another run holds the target, a service limit
  that a later run will clear (SAS budget of a snapshot family, snapshot rate limits), or the time
  budget ran out with the checkpoint saved. All mean "nothing is wrong; run again later"; the
  `--json` status (`locked`, `limited`, `incomplete`) tells them apart.
- ReplicationError (exit 1): the run failed; earlier restore points are untouched.
- UnprotectedError (exit 4): the run found nothing it can ever replicate (no incremental snapshot
  of the disk where it looked): nothing failed, but the source is not protected, and a scheduler
  must not see that as success. Never 0.
- EXIT_STALE (5): `replicate status` found a target older than `--max-age`, or a run that stopped
  part-way and was not resumed; not an error class (status reports, it does not raise).
- EXIT_MISMATCH (6): `replicate drill` read back a restored disk that differs from its restore
  point (status `mismatch`): the replica does not give back its source. Not an error class (the
  drill reports what it found, it does not raise).
- Interrupted (exit 128 + signal: 130 for SIGINT, 143 for SIGTERM): a signal stopped the run after
  every cleanup ran (grants revoked, checkpoint saved, lease released); a rerun resumes.

`status_of` names the `--json` status of each class; anything else is `failed`.

Messages are one sentence naming the problem and, where there is one, the fix. They must never
carry a SAS token, an account key or a bearer token (see replicator.core.redact).
"""

from __future__ import annotations

import signal

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_RETRY_LATER = 3
EXIT_UNPROTECTED = 4
EXIT_STALE = 5
EXIT_MISMATCH = 6


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
    """A service limit refused us and waiting within our time limit did not clear it.

    `retry_after_seconds`: when the limit is known to clear (a snapshot rate window), else None; the
    `--json` envelope carries it so a scheduler can wait exactly that long.
    """

    exit_code = EXIT_RETRY_LATER

    def __init__(self, message: str, *, retry_after_seconds: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_seconds = retry_after_seconds


class ReplicationError(ReplicatorError):
    """The run failed after it started; the target keeps its checkpoint and earlier restore points."""

    exit_code = EXIT_FAILED


class UnprotectedError(ReplicatorError):
    """Nothing the run can replicate exists (the disk has no incremental snapshot where it looked):
    the source is not protected, which a scheduled run must never report as success."""

    exit_code = EXIT_UNPROTECTED


class IncompleteError(ReplicatorError):
    """The run stopped cleanly before its time budget ran out; the next run continues from the checkpoint."""

    exit_code = EXIT_RETRY_LATER


class Interrupted(ReplicatorError):
    """SIGINT or SIGTERM stopped the run; raised once the run's cleanups have finished (cli.interrupt).

    The exit code is the shell's convention for a signal's death, 128 + its number, so `timeout`,
    systemd and container runtimes see the same code a killed process would give them.
    """

    def __init__(self, signum: int) -> None:
        self.signal_name = signal.Signals(signum).name
        self.exit_code = 128 + signum
        super().__init__(f"stopped by {self.signal_name}.")


_STATUSES: tuple[tuple[type[ReplicatorError], str], ...] = (
    (IncompleteError, "incomplete"),
    (LockedError, "locked"),
    (LimitError, "limited"),
    (UserError, "bad input"),
    (Interrupted, "interrupted"),
    (UnprotectedError, "unprotected"),
)


def status_of(err: BaseException) -> str:
    """The `--json` status of a run that ended with `err`: what a scheduler acts on (docs/functions.md)."""
    return next((status for cls, status in _STATUSES if isinstance(err, cls)), "failed")
