"""The lease state machine (leases.py) on its own: stored lease in, outcome out, time given."""

from __future__ import annotations

import pytest

from replicator.emulator.blob import leases
from replicator.emulator.blob.leases import INFINITE, Lease
from replicator.emulator.errors.blob import BlobError

NOW = 1_000_000.0


def act(lease: Lease, action: str, now: float = NOW, **kw: object) -> leases.Outcome:
    args: dict[str, object] = {"lease_id": None, "proposed_id": None, "duration": None, "break_period": None}
    return leases.act(lease, action, now=now, **{**args, **kw})  # type: ignore[arg-type]


def refused(code: str, lease: Lease, action: str, **kw: object) -> None:
    with pytest.raises(BlobError) as exc:
        act(lease, action, **kw)
    assert exc.value.code == code


def test_a_fixed_lease_expires_when_looked_at_after_its_duration() -> None:
    lease = act(Lease(), "acquire", duration=15, proposed_id="a").lease
    assert lease == Lease("a", "leased", 15, NOW + 15, None)
    assert lease.info(NOW + 14) == leases.LeaseInfo("leased", "locked", "fixed")
    assert lease.info(NOW + 15) == leases.LeaseInfo("expired", "unlocked", None)
    renewed = act(lease, "renew", NOW + 20, lease_id="a").lease  # an expired lease can be renewed
    assert renewed.state_at(NOW + 20) == "leased" and renewed.expiry == NOW + 35


def test_break_waits_the_shorter_of_period_and_time_left() -> None:
    fixed = Lease("a", "leased", 15, NOW + 10, None)
    outcome = act(fixed, "break", break_period=30)
    assert (outcome.lease.state, outcome.lease.break_at, outcome.lease_time) == ("breaking", NOW + 10, 10)
    infinite = Lease("a", "leased", INFINITE, None, None)
    at_once = act(infinite, "break")
    assert at_once.lease_time == 0 and at_once.lease.state_at(NOW) == "broken"
    assert act(infinite, "break", break_period=7).lease_time == 7
    refused("LeaseIsBrokenAndCannotBeRenewed", outcome.lease, "renew", lease_id="a")
    refused("LeaseIsBreakingAndCannotBeChanged", outcome.lease, "change", lease_id="a", proposed_id="b")
    refused("LeaseIsBreakingAndCannotBeAcquired", outcome.lease, "acquire", duration=-1, proposed_id="a")


def test_change_release_and_their_refusals() -> None:
    held = Lease("a", "leased", INFINITE, None, None)
    assert act(held, "change", lease_id="a", proposed_id="b").lease.id == "b"
    retried = act(Lease("b", "leased", INFINITE), "change", lease_id="a", proposed_id="b")  # answer was lost
    assert retried.lease_id == "b"
    refused("LeaseIdMismatchWithLeaseOperation", held, "change", lease_id="x", proposed_id="y")
    refused("LeaseAlreadyPresent", held, "acquire", duration=-1, proposed_id="x")
    refused("MissingRequiredHeader", held, "release")
    refused("LeaseNotPresentWithLeaseOperation", Lease(), "release", lease_id="a")
    refused("InvalidHeaderValue", Lease(), "acquire", duration=61)
    released = act(held, "release", lease_id="a")
    assert released.lease == Lease(None, "available", None, None, None) and released.lease_id is None


def test_blob_operations_under_a_lease() -> None:
    held = Lease("a", "leased", INFINITE, None, None)
    leases.check(held, None, write=False, now=NOW)  # a read needs no lease ID
    leases.check(held, "a", write=True, now=NOW)
    for lease, lease_id, write, code in [
        (held, None, True, "LeaseIdMissing"),
        (held, "b", False, "LeaseIdMismatchWithBlobOperation"),
        (Lease(), "a", False, "LeaseNotPresentWithBlobOperation"),
    ]:
        with pytest.raises(BlobError) as exc:
            leases.check(lease, lease_id, write=write, now=NOW)
        assert exc.value.code == code
