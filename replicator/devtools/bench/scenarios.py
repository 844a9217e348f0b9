"""The benchmark's scenarios as pure data: disk geometry and the writes made before each snapshot.

Why pure: the same extents drive the world setup, the "changed bytes" column and the smoke test,
and a seed makes every run identical. Sizes are chosen so the whole benchmark fits in 15 minutes on
two cores; `scale` shrinks them for the smoke test.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from replicator.devtools.disk_builder import (
    Extent,
    aligned,
    footprint,
    merged,
    scattered_writes,
)

KiB, MiB, GiB, TiB = 1024, 1024**2, 1024**3, 1024**4


@dataclass(frozen=True)
class DiskSpec:
    """One disk: size, SKU and sector size; `base` is written before the base snapshot, `change`
    between the base and the current snapshot."""

    size: int
    base: list[Extent]
    change: list[Extent]
    sku: str = "Premium_LRS"
    sector: int = 512

    @property
    def changed_bytes(self) -> int:
        """Bytes the diff reports as written, overlaps counted once (writes never touch a clear)."""
        return footprint([e for e in self.change if not e.clear])


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    disks: list[DiskSpec] = field(default_factory=list)
    premium_target: bool = False  # the target account is a premium page-blob one (its blobs' tiers)
    # The copy source (the disk's snapshot export) left unlimited: Azure publishes no request rate for
    # reading one (docs/emulator.md), and held to a standard blob's 500 requests/s, as the other
    # scenarios hold it, it would cap a target faster than one standard blob (a premium tier, several
    # stripes read from the one source) at that rate, so the run would measure the model, not the target.
    unlimited_source: bool = False
    account: AccountLimits | None = None  # the target account's limits, told to the emulator and the tool


@dataclass(frozen=True)
class AccountLimits:
    """A target storage account's limits: the emulator's (link model) and the replicator's budget; an
    ingress of None is left at a standard account's (the emulator's default, the tool's default)."""

    iops: float
    ingress_mibps: float | None = None

    @property
    def link(self) -> dict[str, object]:
        """The emulator's link options that enforce them."""
        ingress = {} if self.ingress_mibps is None else {"account_ingress_mibps": self.ingress_mibps}
        return {"account_limits": True, "account_iops": self.iops, **ingress}

    @property
    def flags(self) -> list[str]:
        """The replicator's knobs that budget them."""
        ingress = [] if self.ingress_mibps is None else ["--account-ingress", f"{self.ingress_mibps:g}MiB"]
        return ["--account-requests", f"{self.iops:.0f}", *ingress]

    def bound_seconds(self, requests: int, nbytes: int) -> float:
        """The fewest seconds the account lets `requests` writes of `nbytes` in all take."""
        by_bytes = nbytes / (self.ingress_mibps * MiB) if self.ingress_mibps else 0.0
        return max(requests / self.iops, by_bytes)


def scattered(rng: random.Random, scale: float) -> Scenario:
    size = 64 * GiB
    writes = max(50, int(20_000 * scale))
    base = [Extent(0, 1 * MiB), *scattered_writes(rng, size, max(10, int(1000 * scale)), 4 * KiB, 128 * KiB)]
    change = scattered_writes(rng, size, writes, 4 * KiB, 64 * KiB)
    # clears go where nothing was written in this interval, so "changed" and "cleared" stay disjoint
    change += [Extent(aligned(size - (i + 1) * 64 * MiB, MiB), 256 * KiB, clear=True) for i in range(20)]
    return Scenario(
        "scattered",
        f"64 GiB disk, {writes} writes of 4-64 KiB and 20 clears since the base",
        [DiskSpec(size, base, _without_clear_overlap(change))],
    )


def _without_clear_overlap(change: list[Extent]) -> list[Extent]:
    """Drop writes that touch a clear, so a write's bytes are either changed or cleared, never both."""
    clears = [e for e in change if e.clear]
    return [
        e
        for e in change
        if e.clear
        or not any(c.offset < e.offset + e.length and e.offset < c.offset + c.length for c in clears)
    ]


def contiguous(rng: random.Random, scale: float) -> Scenario:
    size = 64 * GiB
    total = max(8 * MiB, int(1 * GiB * scale) // (4 * MiB) * (4 * MiB))
    parts = 4
    extents = [Extent(8 * GiB * (i + 1), total // parts) for i in range(parts)]
    return Scenario(
        "contiguous",
        f"64 GiB disk, {total // MiB} MiB in {parts} sequential extents since the base",
        [DiskSpec(size, [Extent(0, 1 * MiB)], extents)],
    )


def idle(rng: random.Random, scale: float) -> Scenario:
    # A 512-sector 8 TiB disk exports 8 TiB + 512 (VHD footer), over the page-blob limit: PremiumV2
    # with 4096-byte sectors exports exactly 8 TiB.
    size = 8 * TiB if scale >= 1 else 64 * GiB
    return Scenario(
        "idle",
        f"{size // GiB:,} GiB PremiumV2 disk (4096-byte sectors), nothing changed since the base",
        [DiskSpec(size, [Extent(0, 1 * MiB), Extent(size // 2, 1 * MiB)], [], "PremiumV2_LRS", 4096)],
    )


def fleet(rng: random.Random, scale: float, disks: int = 8) -> Scenario:
    size = 64 * GiB
    per_disk = max(4 * MiB, int(128 * MiB * scale) // (4 * MiB) * (4 * MiB))
    specs = [
        DiskSpec(
            size,
            [Extent(0, 1 * MiB)],
            [
                Extent(GiB, per_disk),
                *scattered_writes(rng, size, max(10, int(500 * scale)), 4 * KiB, 64 * KiB),
            ],
        )
        for _ in range(disks)
    ]
    return Scenario(
        "fleet",
        f"{disks} disks of 64 GiB at once, each {per_disk // MiB} MiB sequential + 500 small writes",
        specs,
    )


# ---------------------------------------------------------------- stripes (issue 15: sources over 8 TiB)

STRIPED_SIZE = 16 * TiB
"""A 16 TiB disk of 512-byte sectors: it exports 16 TiB + 512, three stripes (core.stripes)."""


def striped_idle(rng: random.Random, scale: float) -> Scenario:
    base = [Extent(0, MiB), Extent(8 * TiB - MiB, 2 * MiB), Extent(STRIPED_SIZE - MiB, MiB)]
    return Scenario(
        "striped-idle",
        "16 TiB disk (three stripes), nothing changed since the base",
        [DiskSpec(STRIPED_SIZE, base, [], "Premium_LRS", 512)],
        unlimited_source=True,
    )


def striped_scattered(rng: random.Random, scale: float) -> Scenario:
    """As many writes as `scattered`, over both 8 TiB stripes: their bound (about 20 s, half the writes
    in each) then outweighs a run's fixed costs (process start, grants, lease, one snapshot per
    stripe: about 1.6 s, the striped-idle row), which were 40 % of the bound of 4,000 writes."""
    writes = max(50, int(20_000 * scale))
    change = scattered_writes(rng, STRIPED_SIZE, writes, 4 * KiB, 64 * KiB)
    return Scenario(
        "striped-scattered",
        f"16 TiB disk (three stripes), {writes} writes of 4-64 KiB over the whole disk since the base",
        [DiskSpec(STRIPED_SIZE, [Extent(0, MiB)], change, "Premium_LRS", 512)],
        unlimited_source=True,
    )


def per_stripe(spec: DiskSpec, width: int = 8 * TiB) -> list[DiskSpec]:
    """The change of `spec` as one DiskSpec per stripe blob (each extent cut at the stripe
    boundaries, in the stripe's offsets): each stripe is a page blob with its own limits, so the
    bound of a striped disk is its slowest stripe's. A disk of one blob comes back as itself."""
    exported = spec.size + (512 if spec.sector == 512 else 0)
    if exported <= width:
        return [spec]
    parts: list[list[Extent]] = [[] for _ in range(-(-exported // width))]
    for e in spec.change:
        pos = e.offset
        while pos < e.offset + e.length:
            k, end = pos // width, min(e.offset + e.length, (pos // width + 1) * width)
            parts[k].append(Extent(pos - k * width, end - pos, clear=e.clear))
            pos = end
    return [DiskSpec(width, [], change, spec.sku, spec.sector) for change in parts]


def striped_restore(rng: random.Random, scale: float) -> Scenario:
    """A 16 TiB disk's restore point in stripes (core.stripes: 8 TiB, 8 TiB and the 512-byte footer),
    written scattered and on both sides of the stripe boundary: restored by upload
    (devtools.bench.striped). `change` is the data the restore copies."""
    size = 16 * TiB
    writes = max(50, int(20_000 * scale))
    boundary = [Extent(8 * TiB - MiB, MiB), Extent(8 * TiB, 2 * MiB)]
    change = [*scattered_writes(rng, size, writes, 4 * KiB, 64 * KiB), *boundary]
    return Scenario(
        "striped-restore",
        f"restore of a 16 TiB restore point in 3 stripes, {writes} writes of 4-64 KiB and 3 MiB across "
        "the 8 TiB boundary",
        [DiskSpec(size, [], change, "Standard_LRS")],
    )


def premium(rng: random.Random, scale: float) -> Scenario:
    """The scattered diff into a premium P30 target (issue 15): 1000 GiB exports 1000 GiB + 512 bytes,
    a P30 blob (more than 512 GiB, at most 1 TiB: 5,000 requests/s, 200 MB/s); the harness adds the
    same diff into a standard blob beside it."""
    size = 1000 * GiB
    writes = max(50, int(20_000 * scale))
    base = [Extent(0, 1 * MiB), *scattered_writes(rng, size, max(10, int(1000 * scale)), 4 * KiB, 128 * KiB)]
    change = scattered_writes(rng, size, writes, 4 * KiB, 64 * KiB)
    return Scenario(
        "premium",
        f"1000 GiB disk into a premium P30 target, {writes} writes of 4-64 KiB since the base",
        [DiskSpec(size, base, change)],
        premium_target=True,
        unlimited_source=True,
    )


FLEET_ACCOUNT = AccountLimits(iops=150.0)
"""`fleet-account`'s target account: 150 requests/s, a twenty-seventh of the sum of its eight blobs'
limits (8 x 500 requests/s) and a quarter of what a fleet reaches here alone (about 650 requests/s
at 20 ms: docs/benchmarks.md), so that the account, not the blobs or this machine's two cores (shared
with other work while it is measured), is the limit: a standard account's 20,000 scaled down. Only
requests: its small writes (34 KiB on average, 5 MiB/s at 150/s) stay far below the ingress a standard
account takes; the ingress budget is pinned by tests/e2e/test_account_budget.py instead."""


def fleet_account(rng: random.Random, scale: float, disks: int = 8) -> Scenario:
    """Eight disks of small scattered writes into one account whose request rate binds (FLEET_ACCOUNT),
    the replicator told the same budget. Only small writes: a run copies in offset order, so runs that
    start together would spend their large chunks (ingress) and their small writes (requests) in the
    same phases, and the account's request limit would bind only half the time."""
    size = 64 * GiB
    writes = max(10, int(250 * scale))
    specs = [
        DiskSpec(size, [Extent(0, 1 * MiB)], scattered_writes(rng, size, writes, 4 * KiB, 64 * KiB))
        for _ in range(disks)
    ]
    limits = FLEET_ACCOUNT
    return Scenario(
        "fleet-account",
        f"{disks} disks of 64 GiB at once, each {writes} writes of 4-64 KiB, into one account of "
        f"{limits.iops:.0f} requests/s (the tool's budget the same)",
        specs,
        account=limits,
    )


BUILDERS = {
    "scattered": scattered,
    "contiguous": contiguous,
    "idle": idle,
    "fleet": fleet,
    "striped-idle": striped_idle,
    "striped-scattered": striped_scattered,
    "striped-restore": striped_restore,
    "premium": premium,
    "fleet-account": fleet_account,
}


def build(names: list[str], seed: int, scale: float) -> list[Scenario]:
    rng = random.Random(seed)
    return [BUILDERS[name](rng, scale) for name in names]


def _merged(extents: list[Extent]) -> list[tuple[int, int]]:
    return merged((e.offset, e.offset + e.length) for e in extents)


def minimal_requests(spec: DiskSpec, max_write: int = 4 * MiB) -> int:
    """Fewest writes that apply the change without copying an unchanged byte: one per ≤ 4 MiB piece
    of each maximal changed range, one per maximal cleared range."""
    writes = _merged([e for e in spec.change if not e.clear])
    clears = _merged([e for e in spec.change if e.clear])
    return sum(-(-(end - start) // max_write) for start, end in writes) + len(clears)
