"""Azure's blob lease state machine, as pure functions of the stored lease and the time.

The backend (rows.py) reads a blob row's lease columns into a `Lease`, asks here what an
operation may do, and stores what `act` returns; nothing here touches the database or the clock,
so every rule can be read (and tested) with a `now` of the caller's choosing.

States as Azure names them: available, leased, expired, breaking, broken. Only available, leased,
breaking and broken are stored: a fixed lease past its expiry *is* expired, and a breaking lease
past its break time *is* broken, whenever anyone looks (`Lease.state_at`), as in Azure, where leases
are checked on access rather than timed.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass, replace

from replicator.emulator.errors import blob as blob_errors

INFINITE = -1  # x-ms-lease-duration of a lease that never expires
MIN_SECONDS, MAX_SECONDS = 15, 60  # a fixed lease's duration, as in Azure
MAX_BREAK_SECONDS = 60  # the longest x-ms-lease-break-period


@dataclass(frozen=True)
class LeaseInfo:
    """What Get Blob Properties reports (x-ms-lease-state, -status, -duration)."""

    state: str  # available, leased, expired, breaking, broken
    status: str  # locked, unlocked
    duration: str | None  # infinite, fixed (only while leased)


@dataclass(frozen=True)
class Lease:
    """A blob's lease as stored (the blob row's lease columns)."""

    id: str | None = None
    state: str = "available"
    duration: int | None = None  # seconds, or INFINITE
    expiry: float | None = None  # when a fixed lease expires
    break_at: float | None = None  # when a breaking lease is broken

    def state_at(self, now: float) -> str:
        if self.state == "leased" and self.expiry is not None and self.expiry <= now:
            return "expired"
        if self.state == "breaking" and self.break_at is not None and self.break_at <= now:
            return "broken"
        return self.state

    def info(self, now: float) -> LeaseInfo:
        state = self.state_at(now)
        duration = None
        if state == "leased":
            duration = "infinite" if self.duration == INFINITE else "fixed"
        return LeaseInfo(state, "locked" if state in ("leased", "breaking") else "unlocked", duration)


@dataclass(frozen=True)
class Outcome:
    """What a Lease Blob request did: the lease to store and the answer's x-ms-lease-id / -time."""

    lease: Lease
    lease_id: str | None
    lease_time: int | None = None  # seconds until a breaking lease is broken


def check(lease: Lease, lease_id: str | None, *, write: bool, now: float) -> None:
    """A blob operation's x-ms-lease-id against the lease: a locked blob takes writes only with its
    lease ID; a read need not send one, but one it sends must match; no lease, no lease ID."""
    state = lease.state_at(now)
    if state in ("leased", "breaking"):
        if lease_id is None:
            if write:
                raise blob_errors.lease_id_missing()
            return
        if lease_id != lease.id:
            raise blob_errors.lease_id_mismatch_with_blob_operation()
    elif lease_id is not None:
        raise blob_errors.lease_not_present_with_blob_operation()


def act(
    lease: Lease,
    action: str,
    *,
    lease_id: str | None,
    proposed_id: str | None,
    duration: int | None,
    break_period: int | None,
    now: float,
) -> Outcome:
    """Lease Blob: acquire, break, change, renew or release, with Azure's refusals in Azure's order."""
    state = lease.state_at(now)
    if action == "acquire":
        return _acquire(lease, state, proposed_id, duration, now)
    if action == "break":
        return _break(lease, state, break_period, now)
    if lease_id is None:
        raise blob_errors.missing_required_header("x-ms-lease-id is required for this lease action.")
    if lease.id is None or state == "available":
        raise blob_errors.lease_not_present_with_lease_operation()
    if action == "change":
        if proposed_id is None:
            raise blob_errors.missing_required_header("x-ms-proposed-lease-id is required to change a lease.")
        if state == "breaking":
            raise blob_errors.lease_is_breaking_and_cannot_be_changed()
        if state != "leased":
            raise blob_errors.lease_not_present_with_lease_operation()
        if lease.id not in (lease_id, proposed_id):  # proposed == current: a retried change
            raise blob_errors.lease_id_mismatch_with_lease_operation()
        return Outcome(replace(lease, id=proposed_id), proposed_id)
    if lease_id != lease.id:
        raise blob_errors.lease_id_mismatch_with_lease_operation()
    if action == "renew":
        if state in ("breaking", "broken"):
            raise blob_errors.lease_is_broken_and_cannot_be_renewed()
        assert lease.duration is not None  # every acquire sets it, only release clears it
        expiry = None if lease.duration == INFINITE else now + lease.duration
        return Outcome(replace(lease, state="leased", expiry=expiry), lease.id)
    if action == "release":
        return Outcome(replace(lease, id=None, state="available", duration=None, expiry=None), None)
    raise blob_errors.invalid_header_value(f"Unknown x-ms-lease-action {action!r}.")


def _acquire(lease: Lease, state: str, proposed_id: str | None, duration: int | None, now: float) -> Outcome:
    """Acquiring again with the current ID renews with the new duration, as in Azure."""
    if duration is None or not (duration == INFINITE or MIN_SECONDS <= duration <= MAX_SECONDS):
        raise blob_errors.invalid_header_value("x-ms-lease-duration must be -1 or between 15 and 60.")
    if state == "breaking":
        if proposed_id == lease.id:
            raise blob_errors.lease_is_breaking_and_cannot_be_acquired()
        raise blob_errors.lease_already_present()
    if state == "leased" and proposed_id != lease.id:
        raise blob_errors.lease_already_present()
    new_id = proposed_id or str(uuid.uuid4())
    expiry = None if duration == INFINITE else now + duration
    return Outcome(Lease(new_id, "leased", duration, expiry, None), new_id)


def _break(lease: Lease, state: str, break_period: int | None, now: float) -> Outcome:
    """Break: at once for an infinite lease without a period, else after min(period, time left).

    The answer's x-ms-lease-time is the seconds until the lease is broken.
    """
    if break_period is not None and not 0 <= break_period <= MAX_BREAK_SECONDS:
        raise blob_errors.invalid_header_value("x-ms-lease-break-period must be between 0 and 60.")
    if state == "available":
        raise blob_errors.lease_not_present_with_lease_operation()
    if state in ("expired", "broken"):
        return Outcome(replace(lease, state="broken", break_at=now), None, 0)
    left: float | None = None  # an infinite lease has no time left to cut the period
    if state == "breaking":
        assert lease.break_at is not None  # set by the break that started it
        left = lease.break_at - now
    elif lease.duration != INFINITE:
        assert lease.expiry is not None  # a fixed lease has one
        left = lease.expiry - now
    period = float(break_period if break_period is not None else left or 0)
    if left is not None:
        period = min(period, max(left, 0.0))
    return Outcome(replace(lease, state="breaking", break_at=now + period), None, math.ceil(period))
