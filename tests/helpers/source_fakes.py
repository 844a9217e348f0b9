"""A source disk's snapshots without Azure, for the unit tests: a chain of snapshots (`snap`) with
target states (`done`) and the base choice over them (`jobs`), and a fake ARM snapshots API that
models Azure's five-SAS limit per snapshot family (`FakeSnapshots`)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

from azure.core.exceptions import HttpResponseError, ODataV4Format

from replicator.cli.replicate_cmd import load
from replicator.engine import base_choice as base
from replicator.settings.knobs import GiB
from replicator.source.arm import SnapshotInfo
from replicator.target.state import SnapshotRef, State

SUB = "00000000-0000-0000-0000-000000000001"
SECRET = "sig=SECRETSIGNATURE"


@dataclass(frozen=True)
class FakeConfig:
    arm_endpoint: str = "https://arm.invalid"
    subscription_id: str | None = None
    allow_http: bool = False
    access_token: str | None = "token"
    sas_duration_seconds: int = 3600
    sas_wait_seconds: float = 5.0


def arm_error(status: int, code: str, message: str) -> HttpResponseError:
    err = HttpResponseError(message=message)
    err.status_code = status
    err.error = ODataV4Format({"error": {"code": code, "message": message}})
    return err


def family_limit_error() -> HttpResponseError:
    return arm_error(
        409,
        "OperationNotAllowed",
        "Cannot grant access: snapshots of incremental snapshot family f already have 5 active SAS URIs, "
        "the maximum of 5 SAS per snapshot family at a time.",
    )


class Poller:
    def __init__(self, result: Any, delay: float = 0.0) -> None:
        self._result, self._delay = result, delay

    async def result(self) -> Any:
        await asyncio.sleep(self._delay)
        return self._result


@dataclass
class FakeSnapshots:
    """Models Azure's per-family limit across *all* processes: `active` is the set of snapshots with a SAS."""

    refusals: int = 0  # refuse this many grants first, as if other processes held the family's slots
    refuse_always: bool = False
    revoke_delay: float = 0.0
    active: set[str] = field(default_factory=set)
    max_active: int = 0
    grants: list[tuple[str, Any]] = field(default_factory=list)
    revokes: list[str] = field(default_factory=list)

    async def begin_grant_access(self, group: str, name: str, data: Any) -> Poller:
        self.grants.append((name, data))
        if self.refuse_always or self.refusals > 0:
            self.refusals -= 1
            raise family_limit_error()
        self.active.add(name)
        self.max_active = max(self.max_active, len(self.active))
        return Poller(
            SimpleNamespace(
                access_sas=f"https://md.invalid/c/{name}/abcd?sv=1&sr=b&{SECRET}{len(self.grants)}"
            )
        )

    async def begin_revoke_access(self, group: str, name: str) -> Poller:
        self.revokes.append(name)
        await asyncio.sleep(self.revoke_delay)
        self.active.discard(name)
        return Poller(None)


def snapshot(name: str, family: str = "family-1") -> SnapshotInfo:
    return SnapshotInfo(
        id=f"/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.Compute/snapshots/{name}",
        name=name,
        unique_id=f"uid-{name}",
        family_id=family,
        time_created=datetime(2026, 1, 1, tzinfo=UTC),
        size_bytes=1 << 30,
        logical_sector_size=512,
        incremental=True,
        completion_percent=100.0,
        source_resource_id=None,
        source_unique_id=None,
    )


# ---------------------------------------------------------------- a chain of snapshots

DISK = f"/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.Compute/disks/d"
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def snap(n: int, size: int = GiB) -> SnapshotInfo:
    return SnapshotInfo(
        id=f"/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.Compute/snapshots/s{n}",
        name=f"s{n}", unique_id=f"u{n}", family_id="f", time_created=T0 + timedelta(hours=n),
        size_bytes=size, logical_sector_size=512, incremental=True, completion_percent=None,
        source_resource_id=DISK, source_unique_id="disk-u",
    )  # fmt: skip


def ref(s: SnapshotInfo) -> SnapshotRef:
    return SnapshotRef(s.id, s.unique_id, s.time_created.isoformat(), s.name)


class FakeSource:
    def __init__(self, *alive: SnapshotInfo) -> None:
        self.alive = {s.id: s for s in alive}

    async def get_snapshot(self, snapshot_id: str) -> SnapshotInfo | None:
        return self.alive.get(snapshot_id)


IDENTITY = base.DiskIdentity(DISK, "disk-u")


def config(*extra: str):
    return load(["--source", DISK, "--target", "https://a.blob.core.windows.net/ccc/b", *extra], env={})


async def jobs(
    state: State,
    snaps: list[SnapshotInfo],
    *extra: str,
    alive=None,
    held: frozenset[str] | set[str] = frozenset(),
) -> list[tuple]:
    source = FakeSource(*(snaps if alive is None else alive))
    chosen = await base.choose_jobs(source, config(*extra), state, IDENTITY, snaps, held)  # type: ignore[arg-type]
    return [(j.snapshot.name, j.base.name if j.base else None, j.reason, j.checkpoint) for j in chosen]


def done(last: SnapshotInfo, **kw) -> State:
    return State(DISK, "disk-u", ref(last), "rp", **kw)
