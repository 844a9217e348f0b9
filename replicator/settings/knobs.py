"""Every setting of a run: its flag, environment variable, default's reason and memory cost.

Every knob has a command-line flag and an environment variable (for Azure Functions app settings);
a flag wins over its variable, a variable over the default (replicator.settings.config.read). `KNOBS`
is the single table the argument parser (replicator.cli.parser.add_knobs) and the knob table of
docs/architecture.md (replicator.settings.knob_table, written into the doc by scripts/knob_table.py)
are built from. The value parsers here raise `UserError` with one sentence naming where the value
came from (exit 2), before anything touches Azure.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from replicator.core.errors import UserError
from replicator.core.freshness import parse_duration
from replicator.core.messages import clip
from replicator.core.output import human_size
from replicator.core.ranges import LIST_PREFETCH
from replicator.observe.jsonlog import LEVELS

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB

LOG_LEVELS = tuple(LEVELS)
"""wire, debug, info, warning, error: what each shows is replicator.observe.jsonlog.LEVELS."""
MODES = ("server", "stream")
SNAPSHOT_SEARCHES = ("resource-group", "subscription")


@dataclass(frozen=True)
class Knob:
    """One row of the knob table: how a `Config` field is set, its default, reason and memory cost."""

    name: str
    flag: str | None  # None: environment only (a secret must not sit in argv, where `ps` shows it)
    env: str
    help: str
    reason: str
    memory: str
    parse: Callable[[str], Any] | None = None  # None: a boolean switch
    choices: Sequence[str] | None = None

    def value(self, raw: str, *, origin: str | None = None) -> Any:
        """The typed value of `raw`; UserError naming `origin` (where it came from), else the flag."""
        name = origin or self.flag or self.env
        if self.parse is None:
            return _bool(name, raw)
        if self.choices and raw.lower() not in self.choices:
            raise UserError(f"{name} must be one of {', '.join(self.choices)}; got {clip(raw)!r}.")
        try:
            return self.parse(raw.lower() if self.choices else raw)
        except ValueError as exc:
            raise UserError(f"{name}: {exc}.") from None

    def from_env(self, env: Mapping[str, str]) -> Any | None:
        """The typed value of this knob's variable in `env`; None when it is unset (or empty, for a
        knob that takes a value); UserError naming the variable when it is bad."""
        raw = env.get(self.env)
        if raw is None or (raw == "" and self.parse is not None):
            return None
        return self.value(raw, origin=f"{self.env} (environment variable)")


_SIZE = re.compile(r"\s*(-?\d+(?:\.\d+)?)\s*([a-zA-Z]*)(?:/s)?\s*")
_SIZE_UNITS = {"": 1, "b": 1, "k": KiB, "kib": KiB, "kb": 1000, "m": MiB, "mib": MiB, "mb": 1000**2}
_SIZE_UNITS |= {"g": GiB, "gib": GiB, "gb": 1000**3, "t": 1024 * GiB, "tib": 1024 * GiB, "tb": 1000**4}


def parse_size(text: str) -> int:
    """'50MiB' → 52428800. Binary suffixes (KiB, MiB, GiB, TiB, and K, M, G, T as rsync, dd and curl
    read them) and decimal ones (KB, MB, GB, TB); `SizeReading` says how a suffix was read."""
    match = _SIZE.fullmatch(text)
    if not match or match.group(2).lower() not in _SIZE_UNITS:
        raise ValueError(f"expected a size like 50MiB or 1048576; got {clip(text)!r}")
    return int(float(match.group(1)) * _SIZE_UNITS[match.group(2).lower()])


PER_SECOND = (
    "--max-bandwidth",
    "REPLICATOR_MAX_BANDWIDTH",
    "--account-ingress",
    "REPLICATOR_ACCOUNT_INGRESS",
)
"""The size knobs that are rates: their readings say `/s`."""


@dataclass(frozen=True)
class SizeReading:
    """How a size knob given with a suffix that is not an explicit binary one (KiB, MiB...) was read.

    Why say it rather than refuse: `50MB` (decimal) and `50M` (binary) are both established forms (rsync,
    dd and curl read them so), so refusing them would break scripts written for those tools; but `MB`
    also means MiB to many readers, and a bandwidth cap 5 % off is not what they asked for. A run
    therefore says in one line, before it starts, which of the two it read.
    """

    flag: str
    given: str
    value: int

    @classmethod
    def of(cls, flag: str, given: str) -> SizeReading | None:
        """The reading of `given` for `flag`, or None when the form is unambiguous (bytes, KiB, MiB...)."""
        match = _SIZE.fullmatch(given)
        unit = match.group(2).lower() if match else ""
        if unit in ("", "b") or unit.endswith("ib") or unit not in _SIZE_UNITS:
            return None
        return cls(flag, given.strip(), parse_size(given))

    @property
    def text(self) -> str:
        """'--max-bandwidth 50MB = 47.7 MiB/s (MB is decimal, 10^6 bytes; 50MiB would be 50.0 MiB/s).'"""
        match = _SIZE.fullmatch(self.given)
        assert match is not None
        number, unit = match.group(1), match.group(2)
        per = "/s" if self.flag in PER_SECOND else ""
        if unit.lower().endswith("b"):
            power = 3 * "kmgt".index(unit[0].lower()) + 3
            other, why = f"{number}{unit[0].upper()}iB", f"{unit} is decimal, 10^{power} bytes"
        else:
            other, why = f"{number}{unit.upper()}B", f"{unit} is binary, as rsync and dd read it"
        return (
            f"{self.flag} {self.given} = {human_size(self.value)}{per} "
            f"({why}; {other} would be {human_size(parse_size(other))}{per})."
        )


def parse_int(text: str) -> int:
    """A whole-number knob's value; ValueError in the words of the knob's error sentence."""
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"expected a whole number; got {clip(text)!r}") from None


def parse_float(text: str) -> float:
    """A number knob's value (seconds); ValueError in the words of the knob's error sentence."""
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"expected a number of seconds; got {clip(text)!r}") from None


KNOBS: tuple[Knob, ...] = (
    Knob(
        "source",
        "--source",
        "REPLICATOR_SOURCE",
        "ARM ID of a managed disk, of one incremental snapshot, or of a virtual machine (its disks, from "
        "one VM restore point).",
        "required",
        "-",
        str,
    ),
    Knob(
        "target",
        "--target",
        "REPLICATOR_TARGET",
        "URL of the target page blob (a SAS in it is honoured); for a VM, a container or a folder in it "
        "(each disk goes to <prefix>/<disk name>.vhd).",
        "required",
        "-",
        str,
    ),
    Knob(
        "latest_only",
        "--latest-only",
        "REPLICATOR_LATEST_ONLY",
        "Replicate only the newest snapshot, as one diff from the target's last restore point.",
        "off: every snapshot gets its own restore point",
        "none",
    ),
    Knob(
        "concurrency",
        "--concurrency",
        "REPLICATOR_CONCURRENCY",
        "Copy workers, and the ceiling of chunk writes in flight at the target blob (1-192; each stripe "
        "blob of a source over 8 TiB has its own, up to 192 workers in all): below it "
        "the pacer moves the limit (replicator.engine.pacer). Unset: 64 for a standard blob, a premium "
        "page blob's tier ceiling (core.premium: its requests/s x 128 ms, 64 to 192).",
        "64: a page blob serves ~500 requests/s; at a 60 ms round trip server mode needs 30+ requests "
        "in flight and stream mode (two round trips per chunk) 60+ (measured, 20,000 small writes: "
        "server 16 reached 235/s and 48 the full 500/s; stream 48 took 1.42x the per-blob bound and "
        "64 1.10x; docs/benchmarks.md), so the ceiling leaves the pacer room to reach them; a premium "
        "tier serves up to 16,000/s (P30 5,000), so its ceiling scales with it up to the process's 192 "
        "connections; large chunks are bounded by --max-in-flight instead",
        "none beyond --max-in-flight",
        parse_int,
    ),
    Knob(
        "disk_concurrency",
        "--disk-concurrency",
        "REPLICATOR_DISK_CONCURRENCY",
        "A VM's disks replicated at once (1-64), each with its own --concurrency writes.",
        "4: the process's 192 connections (replicator.plumbing.http_pool) serve three disks at "
        "--concurrency 64 without queuing (a disk over 8 TiB counts once per stripe it writes at once) "
        "and a fourth keeps them busy while one disk lists, grants or "
        "commits; each disk writes to its own page blob (~500 requests/s and 60 MiB/s each), so four "
        "are a tenth of a standard account's 20,000 requests/s; more only queue for connections",
        "per disk at once: its listing (up to 8 answers, about 10,000 ranges x 50 bytes each), its "
        "queue (2 x --concurrency ops) and its count-ahead listing; stream mode's chunk buffers stay "
        "one --max-in-flight for the whole process, whatever the number of disks",
        parse_int,
    ),
    Knob(
        "max_in_flight_bytes",
        "--max-in-flight",
        "REPLICATOR_MAX_IN_FLIGHT",
        "Bytes of chunk writes in flight at once, e.g. 32MiB (replicator.engine.inflight).",
        "32MiB is about half a second of a page blob's 60 MiB/s: enough to keep it busy, while more "
        "would queue past Azure's backlog and come back as 503 ServerBusy (replicator.engine.inflight)",
        "stream mode: the buffers of the chunks in flight (32 MiB); server mode: none",
        parse_size,
    ),
    Knob(
        "merge_gap_bytes",
        "--merge-gap",
        "REPLICATOR_MERGE_GAP",
        "Diffs only: copy changed ranges at most this far apart as one request, gap included (0-1MiB).",
        "64KiB: a request costs a page blob as much time as ~120 KiB of bytes (500/s vs 60 MiB/s); "
        "the gap of a diff is unchanged since the base the target holds, so copying it is byte-identical "
        "(never across a clear; full copies never merge: their gaps are source holes the target may hold "
        "data in)",
        "none",
        parse_size,
    ),
    Knob(
        "mode",
        "--mode",
        "REPLICATOR_MODE",
        "server: Put Page From URL (no bytes through this host); stream: ranged GET + Put Page.",
        "server-side copy moves no data through the host",
        "see concurrency",
        str,
        MODES,
    ),
    Knob("plan", "--plan", "REPLICATOR_PLAN", "Print what would be copied; write nothing.", "off", "none"),
    Knob(
        "verify",
        "--verify",
        "REPLICATOR_VERIFY",
        "Before each restore point is taken, compare the target with the source snapshot (a full copy "
        "in whole, a diff over its changed and cleared ranges); a mismatch fails the run.",
        "off: doubles the reads",
        "32 MiB (4 pairs of 4 MiB reads) plus 1000 ranges, whatever `--concurrency`",
    ),
    Knob(
        "json",
        "--json",
        "REPLICATOR_JSON",
        "Print one JSON document with the result on stdout.",
        "off",
        "none",
    ),
    Knob(
        "log_level",
        "--log-level",
        "REPLICATOR_LOG_LEVEL",
        "info: what the run does; debug: also its decisions (base, windows, grants, retries, lease); "
        "wire: also the Azure SDKs' request log; warning or error: less.",
        f"info ({', '.join(LOG_LEVELS)}); debug shows the tool's decisions, and the SDKs' wire log is its "
        "own level above it, since it buries the decisions in request dumps",
        "none",
        str,
        LOG_LEVELS,
    ),
    Knob(
        "progress_seconds",
        "--progress-seconds",
        "REPLICATOR_PROGRESS_SECONDS",
        "Without a progress bar (not a terminal, or --json): log a progress record this often: "
        "snapshot, bytes done of total, rate over the last minute, ETA.",
        "30 s: without a bar (not a terminal, or `--json`) a minute without a line reads as a hang in "
        "cron, systemd or Functions logs, while a "
        "day-long copy still logs only 120 lines an hour",
        "none",
        parse_float,
    ),
    Knob(
        "allow_http",
        "--allow-http",
        "REPLICATOR_ALLOW_HTTP",
        "Allow plain-HTTP endpoints (local emulators only).",
        "off: HTTPS only",
        "none",
    ),
    Knob(
        "max_bandwidth",
        "--max-bandwidth",
        "REPLICATOR_MAX_BANDWIDTH",
        "Cap on bytes written per second, e.g. 50MiB (MB is decimal, M and MiB binary).",
        "no cap; sizes take KiB/MiB/GiB/TiB, K/M/G/T (binary, as rsync and dd read them) and KB/MB/GB/TB "
        "(decimal); a value in anything but an explicit binary unit is said at the start of the run "
        "(`size_read`: `50MB = 47.7 MiB/s`, knobs.SizeReading) rather than refused, so scripts written "
        "for those tools keep working and nobody takes 50MB for 50 MiB unnoticed",
        "none",
        parse_size,
    ),
    Knob(
        "account_requests",
        "--account-requests",
        "REPLICATOR_ACCOUNT_REQUESTS",
        "Requests per second the target storage account takes from this process, shared by every run "
        "in it (1-1000000; replicator.engine.account_gate).",
        "the account's documented target: 20,000 for a standard account, Azure's figure in every region "
        "(40,000 in the regions 'Scalability and performance targets for standard storage accounts' "
        "lists: set it there); lower it to leave room for other writers, or to each process's share when "
        "several processes write to one account (they cannot share one budget); an account-level 503 "
        "cuts it for a while (replicator.core.account_budget)",
        "none (a few numbers per account)",
        parse_int,
    ),
    Knob(
        "account_ingress",
        "--account-ingress",
        "REPLICATOR_ACCOUNT_INGRESS",
        "Bytes per second this process sends into the target storage account, shared by every run in it, "
        "e.g. 1GiB (Put Page From URL's ranges count: Azure's ingress is all data sent to the account).",
        "the account's documented target: 25 Gbps (3.125 GB/s) for a standard account in every region "
        "(60 Gbps in the regions Azure lists: set 7.5GB there); lower it as --account-requests",
        "none",
        parse_size,
    ),
    Knob(
        "arm_endpoint",
        "--arm-endpoint",
        "REPLICATOR_ARM_ENDPOINT",
        "Azure Resource Manager base URL.",
        "public Azure",
        "none",
        str,
    ),
    Knob(
        "subscription_id",
        "--subscription-id",
        "AZURE_SUBSCRIPTION_ID",
        "Subscription of the disk `replicate restore` creates (default: the source disk's, recorded on "
        "the target).",
        "used by `replicate restore` only (the new disk's subscription; default: the source disk's, "
        "recorded on the target); `replicate` takes its subscription from `--source`",
        "none",
        str,
    ),
    Knob(
        "access_token",
        None,
        "REPLICATOR_ACCESS_TOKEN",
        "Static bearer token used instead of DefaultAzureCredential (environment only: argv is public).",
        "DefaultAzureCredential",
        "none",
        str,
    ),
    Knob(
        "sas_duration_seconds",
        "--sas-duration",
        "REPLICATOR_SAS_DURATION",
        "Lifetime of each SAS the tool is granted, seconds: a snapshot's, and a restore's upload disk's "
        "Write SAS (each re-granted before it expires).",
        "one hour bounds the exposure of a leaked URL; long copies re-grant",
        "none",
        parse_int,
    ),
    Knob(
        "sas_wait_seconds",
        "--sas-wait",
        "REPLICATOR_SAS_WAIT",
        "How long to wait for a free SAS slot of the snapshot family (5 per family), seconds.",
        "15 minutes lets another run finish; then exit 3",
        "none",
        parse_int,
    ),
    Knob(
        "list_window_bytes",
        "--list-window",
        "REPLICATOR_LIST_WINDOW",
        "Grid a resumed run restarts its listing on (the multiple below its checkpoint), e.g. 4GiB.",
        "256GiB: a resume re-lists at most one cell before its checkpoint; the listing windows themselves "
        "adapt (core.listwindows: the whole disk first, then sized from the answers) and "
        f"{LIST_PREFETCH} windows are listed at once (ranges.LIST_PREFETCH), yielded in offset order",
        f"up to {LIST_PREFETCH} answers held (about 10,000 ranges x 50 bytes each)",
        parse_size,
    ),
    Knob(
        "page_size",
        "--page-size",
        "REPLICATOR_PAGE_SIZE",
        "Ranges per Get Page Ranges page (service default 10000).",
        "service default",
        "one page of ranges (~10000 x 50 bytes)",
        parse_int,
    ),
    Knob(
        "checkpoint_seconds",
        "--checkpoint-seconds",
        "REPLICATOR_CHECKPOINT_SECONDS",
        "How often the resume offset is saved to the target's metadata.",
        "5 s: a crash repeats at most a few seconds of copying",
        "none",
        parse_float,
    ),
    Knob(
        "max_attempts",
        "--max-attempts",
        "REPLICATOR_MAX_ATTEMPTS",
        "Attempts per chunk on throttling, 5xx, timeouts and resets before the run fails.",
        "8 attempts with exponential backoff ride out minutes of throttling",
        "none",
        parse_int,
    ),
    Knob(
        "request_timeout_seconds",
        "--request-timeout",
        "REPLICATOR_REQUEST_TIMEOUT",
        "Seconds before one chunk request is abandoned and retried.",
        "120 s: a 4 MiB chunk over a slow cross-region link",
        "none",
        parse_float,
    ),
    Knob(
        "time_budget_seconds",
        "--time-budget",
        "REPLICATOR_TIME_BUDGET",
        "Stop cleanly before this long (9m, 1h30m or seconds), checkpoint saved (exit 3); the next run "
        "continues.",
        "no budget: a run goes on until done (set it below a Functions timeout or a cron interval); "
        "with one, the run stops feeding writes at budget - reserve (a quarter, at most 60 s), saves its "
        "checkpoint, revokes, releases and exits 3 (status `incomplete`); see docs/functions.md",
        "none",
        parse_duration,
    ),
    Knob(
        "lease_wait_seconds",
        "--lease-wait",
        "REPLICATOR_LEASE_WAIT",
        "Seconds to wait for a target lease held by another run before exiting 3.",
        "70 s outlasts the 60 s lease of a killed run, so a rerun right after a crash proceeds; "
        "a live run renews its lease and is never waited out, so a second run still exits 3 "
        "(replicator.plumbing.recovery, docs/reliability.md)",
        "none",
        parse_float,
    ),
    Knob(
        "lease_seconds",
        "--lease-duration",
        "REPLICATOR_LEASE_DURATION",
        "Seconds of the target blob lease (15-60, Azure's range), renewed every quarter of it.",
        "60 s (Azure allows 15-60) rides out renewal hiccups, renewed every quarter of it; a shorter lease "
        "frees a killed run's target sooner (the fleet tests use 15 s with a matching `--lease-wait`)",
        "none",
        parse_int,
    ),
    Knob(
        "snapshot_now",
        "--snapshot-now",
        "REPLICATOR_SNAPSHOT_NOW",
        "First take an incremental snapshot of the source disk (of a VM: a crash-consistent restore "
        "point) and wait for it (engine.snapshots, engine.vm_restore_points).",
        "off: replicate the snapshots that exist; with it, an incremental snapshot of the disk is taken "
        "and waited for first (engine.snapshots); Azure allows 7 per disk per 5 minutes and 500 per "
        "disk, a refusal exits 3; of a VM, a crash-consistent restore point (3 per VM per hour, 500 per "
        "VM) in the tool's own collection",
        "none",
    ),
    Knob(
        "source_keep",
        "--source-keep",
        "REPLICATOR_SOURCE_KEEP",
        "After a run, delete the disk's oldest incremental snapshots (a VM's restore points) beyond the "
        "newest N (1-500).",
        "off: never delete source snapshots; with N (1-500), after a successful run the disk's "
        "incremental snapshots beyond the newest N that the tool took for this target (tags "
        "`replicator-owner: replicator` and `replicator-target`, put on by `--snapshot-now`) are "
        "deleted, never one it did not take for this target, never the last restore point's snapshot, "
        "one being replicated or one with an active SAS (replicator.engine.snapshots); of a VM, its "
        "restore points in the tool's collection for this target, never one a group still needs "
        "(replicator.engine.vm_restore_points)",
        "none",
        parse_int,
    ),
    Knob(
        "snapshot_search",
        "--snapshot-search",
        "REPLICATOR_SNAPSHOT_SEARCH",
        "Where to look for the disk's incremental snapshots (a VM's restore point collections): its own "
        "resource group, or every resource group of the subscription (needs read access there).",
        "resource-group: where Azure's docs keep a disk's snapshots, and read access to that group is "
        "enough; `subscription` lists every snapshot of the subscription (every nextLink) and keeps the "
        "disk's, for snapshots kept in another group (needs snapshots/read on the subscription)",
        "none",
        str,
        SNAPSHOT_SEARCHES,
    ),
    Knob(
        "allow_rollback",
        "--allow-rollback",
        "REPLICATOR_ALLOW_ROLLBACK",
        "Allow a --source snapshot older than the one the target's base blob holds: a full copy that "
        "rolls the base blob back to it (restore points are kept).",
        "off: a `--source` snapshot older than the one the base blob holds is refused (exit 2): rolling "
        "the replica back costs a full copy and moves the next diff's base back in time, which an "
        "unattended run must never do by itself; with it, that full copy is made (restore points are kept)",
        "none",
    ),
)


def _bool(flag: str, text: str) -> bool:
    value = text.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off", ""):
        return False
    raise UserError(f"{flag} must be true or false; got {text!r}.")


TARGET_KNOBS = ("target", "arm_endpoint", "access_token", "allow_http", "json", "log_level")
"""The knobs of the commands about one target (`list`, `restore`, `prune`, `status`): the main
command's flags and environment variables of the same names; a command adds its own to these."""


def knob(name: str) -> Knob:
    """The knob of the `Config` field `name`."""
    return next(k for k in KNOBS if k.name == name)
