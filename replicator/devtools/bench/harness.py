"""`replicate bench`: create the scenarios, run every contender against the same emulator with the
link model on, verify every result byte-for-byte (untimed), and write docs/benchmarks.md + chart.

Contenders (each a child process, measured by measure.run_children):
- baseline: replicator.devtools.bench.baseline (the public sample's approach), time-budgeted, extrapolated;
- full: this tool onto a fresh target (a full copy: every valid range, concurrently);
- server, stream: this tool, `--mode server` / `--mode stream`, default options, as a diff.
The fleet scenario runs all its disks in one process (devtools.bench.concurrent) and adds a one-disk
reference row for the aggregate ratio; the premium scenario writes into a premium page-blob account
(its P30 blob's limits) and adds the same diff into a standard blob (`server (standard)`) beside it;
fleet-account runs the fleet into one account whose limits (Scenario.account) the emulator enforces
and the tool is told as its account budget; its bound is the account's (the fewest seconds its
requests and ingress allow) where that is the larger.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from replicator.cli.parser import CommandParser, first_paragraph
from replicator.core import premium
from replicator.devtools.bench import report, striped
from replicator.devtools.bench.measure import Measured, run_children
from replicator.devtools.bench.report import Row
from replicator.devtools.bench.scenarios import (
    BUILDERS,
    DiskSpec,
    MiB,
    Scenario,
    build,
    minimal_requests,
    per_stripe,
)
from replicator.devtools.bench.world import (
    LINK_OFF,
    BenchDisk,
    Emulator,
    World,
)
from replicator.devtools.disk_builder import compare_copy, control
from replicator.emulator.process import EmulatorProcess

CONTENDERS = ("baseline", "full", "server", "stream")
# Chunk pairs the (untimed) verification reads at once: 20,000 scattered ranges at 4 pairs took
# about half a minute per restore point; 32 pairs hold at most 256 MiB in this harness process.
VERIFY_CONCURRENCY = 32
BLOB_MIBPS, BLOB_IOPS = 60.0, 500.0
ACCOUNT = "drsite"  # the target storage account (path-style: /<account>/<container>/<blob>)
PREMIUM_ACCOUNT = "drsitepremium"  # the premium page-blob account of the premium scenario


def bound_seconds(specs: list[DiskSpec], premium_target: bool = False) -> float:
    """max(changed / MiB/s, minimal requests / requests/s) for one blob at its limits (a standard blob's
    500 and 60 MiB/s, or a premium blob's tier's by its exported size); blobs run in parallel (a disk
    over 8 TiB is one spec per stripe: scenarios.per_stripe), so the slowest blob is the bound."""

    def seconds(s: DiskSpec) -> float:
        iops, mibps = BLOB_IOPS, BLOB_MIBPS
        if premium_target:
            tier = premium.tier_for(s.size + 512)  # the export: the disk and its VHD footer
            iops, mibps = tier.requests_per_second, tier.mib_per_second
        return max(s.changed_bytes / (mibps * MiB), minimal_requests(s) / iops)

    return max(seconds(s) for s in specs)


def account_bound_seconds(scenario: Scenario, disks: list[BenchDisk]) -> float:
    """The fewest seconds the scenario's target account lets its disks' writes take (0: no limits)."""
    if scenario.account is None:
        return 0.0
    requests = sum(minimal_requests(d.spec) for d in disks)
    return scenario.account.bound_seconds(requests, sum(d.spec.changed_bytes for d in disks))


def account_extra(
    scenario: Scenario, contender: str, measured: Measured, stats: dict[str, Any]
) -> dict[str, float]:
    """A scenario with an account budget: the budget, the aggregate rate of the requests it governs
    (the jobs' chunk writes, retries included, over the longest job: the runs start together, so this
    leaves out the process's start, not any waiting), the rate of every request the emulator counted
    against the account over the same time (the runs' control requests too: inspect, lease, metadata,
    snapshots, most of them before or after the jobs, which is why it is not the budget's measure),
    and how many of the runs' requests waited for the budget (few: the budget did not bind, something
    else, such as this machine's CPU, held the runs back). The baseline has no budget and its
    documents no jobs: nothing."""
    if scenario.account is None or contender == "baseline":
        return {}
    jobs = [s for doc in measured.outputs for run in doc.get("runs", [doc]) for s in run.get("snapshots", [])]
    longest = max((s["seconds"] for s in jobs), default=0.0)
    served = stats["accounts"].get(ACCOUNT, {}).get("requests", 0)
    governed = sum(s.get("requests", 0) for s in jobs)
    budgets = [s["account_budget"] for s in jobs if s.get("account_budget")]
    return {
        "account_requests_per_second": scenario.account.iops,
        "aggregate_requests_per_second": governed / longest if longest else 0.0,
        "served_requests_per_second": served / longest if longest else 0.0,
        "budget_waits": sum(b["waits"] for b in budgets),
        "budget_wait_seconds": sum(b["wait_seconds"] for b in budgets),
    }


class Bench:
    def __init__(
        self,
        env: dict[str, str],
        emulator: Emulator,
        world: World,
        budget: float,
        profile: Path | None,
        work_dir: Path,
    ) -> None:
        self.env, self.emulator, self.world, self.budget = env, emulator, world, budget
        self.child_env = {**os.environ, **env}
        self.profile = profile
        self.work_dir = work_dir  # the fleet children's job files

    def target(self, scenario: str, latency: float, label: str, i: int, account: str = ACCOUNT) -> str:
        name = f"{scenario}-{latency:g}-{label}-{i}".replace(" ", "").replace("(", "").replace(")", "")
        return f"{self.env['REPLICATOR_BLOB_ENDPOINT']}/{account}/bench/{name}.vhd"

    def _tool(self, jobs: list[tuple[str, str]], args: list[str]) -> tuple[list[str], dict[str, str]]:
        if len(jobs) == 1:
            (source, target) = jobs[0]
            cmd = [
                sys.executable,
                "-m",
                "replicator.cli.main",
                "--source",
                source,
                "--target",
                target,
                "--json",
            ]
            return cmd + args, self.child_env
        spec = Path(tempfile.mkstemp(prefix="bench-jobs-", suffix=".json", dir=self.work_dir)[1])
        spec.write_text(json.dumps({"jobs": jobs, "args": args}))
        return [sys.executable, "-m", "replicator.devtools.bench.concurrent", str(spec)], self.child_env

    def prepare(self, disks: list[BenchDisk], targets: list[str]) -> None:
        """Bring each target to the base restore point (link off: setup is not timed)."""
        run_children([self._tool([(d.base_id, t) for d, t in zip(disks, targets, strict=True)], [])])

    def measure(
        self,
        scenario: Scenario,
        disks: list[BenchDisk],
        latency: float,
        contender: str,
        label: str = "",
        *,
        premium_target: bool | None = None,
    ) -> Row:
        """One timed row; `premium_target` (default: the scenario's) picks the target account."""
        on_premium = scenario.premium_target if premium_target is None else premium_target
        account = PREMIUM_ACCOUNT if on_premium else ACCOUNT
        targets = [
            self.target(scenario.name, latency, label or contender, i, account) for i in range(len(disks))
        ]
        if contender != "full":
            self.prepare(disks, targets)
        # The tool grants and revokes the snapshots itself, and a revoke ends every SAS of a snapshot:
        # the baseline's SAS and the verification's are granted around the tool's runs, never across.
        with self.world.read_sas(*[n for d in disks for n in (d.current_name, d.base_name)]) as urls:
            self.emulator.reset_stats()
            flags = scenario.account.flags if scenario.account else []
            commands = self._commands(disks, targets, contender, urls, flags)
            if self.profile is not None:
                commands = self._profiled(commands, f"{targets[0].rsplit('/', 1)[1][:-4]}")
            # scenarios.Scenario.unlimited_source: every row of such a scenario, its standard row too
            sources = not scenario.unlimited_source
            limits = scenario.account.link if scenario.account else {}
            with self.emulator.link(
                latency_ms=latency, blob_limits=True, limit_copy_sources=sources, **limits
            ):
                measured = run_children(commands)
            stats = self.emulator.stats()
        row = self._row(scenario, disks, latency, label or contender, measured, stats, account, on_premium)
        with self.world.read_sas(*[d.current_name for d in disks]) as sources:
            row.verified = self._verify(disks, targets, contender, measured, sources)
        return row

    def _commands(
        self, disks: list[BenchDisk], targets: list[str], contender: str, urls: list[str], flags: list[str]
    ) -> list[tuple[list[str], dict[str, str]]]:
        if contender == "baseline":
            return [
                (
                    [sys.executable, "-m", "replicator.devtools.bench.baseline"],
                    {
                        **self.child_env,
                        "BENCH_SOURCE_SAS": urls[2 * i],
                        "BENCH_BASE_SAS": urls[2 * i + 1],
                        "BENCH_TARGET": target,
                        "BENCH_BUDGET_SECONDS": str(self.budget),
                    },
                )
                for i, target in enumerate(targets)
            ]
        mode = "stream" if contender == "stream" else "server"
        return [
            self._tool(
                [(d.current_id, t) for d, t in zip(disks, targets, strict=True)], ["--mode", mode, *flags]
            )
        ]

    def _profiled(
        self, commands: list[tuple[list[str], dict[str, str]]], name: str
    ) -> list[tuple[list[str], dict[str, str]]]:
        """Each command under `py-spy record` (flame graph SVG per child in the profile folder)."""
        assert self.profile is not None
        self.profile.mkdir(parents=True, exist_ok=True)
        spy = str(py_spy())
        return [
            ([spy, "record", "--rate", "100", "-o", str(self.profile / f"{name}-{i}.svg"), "--", *cmd], env)
            for i, (cmd, env) in enumerate(commands)
        ]

    def _row(
        self,
        scenario: Scenario,
        disks: list[BenchDisk],
        latency: float,
        contender: str,
        measured: Measured,
        stats: dict[str, Any],
        account: str,
        on_premium: bool,
    ) -> Row:
        written = sum(
            b["bytes_written"] for name, b in stats["blobs"].items() if name.startswith(f"{account}/bench/")
        )
        # changed bytes are the scenario's truth (what the diff holds); written - changed = gap merges
        wall, note, changed = measured.wall_seconds, "", sum(d.spec.changed_bytes for d in disks)
        if contender == "baseline":
            docs = measured.outputs
            if not all(d["complete"] for d in docs):
                # one request in flight: time is linear in requests, so extrapolate the copy phase
                overhead = wall - max(d["list_seconds"] + d["copy_seconds"] for d in docs)
                wall = overhead + max(
                    d["list_seconds"] + d["copy_seconds"] * d["requests_total"] / max(1, d["requests_done"])
                    for d in docs
                )
                done = sum(d["requests_done"] for d in docs)
                total = sum(d["requests_total"] for d in docs)
                note = (
                    f"extrapolated from {done} of {total} requests ({measured.wall_seconds:.0f} s measured)"
                )
        what = (scenario.name, latency, contender)
        per_blob = bound_seconds([part for d in disks for part in per_stripe(d.spec)], on_premium)
        bound = max(per_blob, account_bound_seconds(scenario, disks))
        extra = _paced(contender, measured) | account_extra(scenario, contender, measured, stats)
        return Row.of(
            what, wall, changed, written, measured, stats, bound, extra, disks=len(disks), note=note
        )

    def _verify(
        self,
        disks: list[BenchDisk],
        targets: list[str],
        contender: str,
        measured: Measured,
        sources: list[str],
    ) -> str:
        if contender == "baseline":
            if not all(d["complete"] for d in measured.outputs):
                return "sampled"
            points: list[str | None] = [None] * len(disks)
        else:
            points = [
                run["snapshots"][-1]["restore_point"]
                for doc in measured.outputs
                for run in doc.get("runs", [doc])
            ]
        ok = asyncio.run(_compare_all(sources, targets, points))
        return "equal" if ok else "DIFFERENT"


def _paced(contender: str, measured: Measured) -> dict[str, Any]:
    """What this tool's run document says of its target and pacer (a one-disk run of this tool: where
    the pacer converged, the target's tier and the ceiling), for the report's notes."""
    docs = measured.outputs
    if contender == "baseline" or len(docs) != 1 or "snapshots" not in docs[0] or not docs[0]["snapshots"]:
        return {}
    doc = docs[0]
    account = doc.get("target_account") or {}
    return {"pacing": doc["snapshots"][-1].get("pacing"), "tier": (account.get("tier") or {}).get("tier"),
            "ceiling": account.get("pacer_ceiling")}  # fmt: skip


def py_spy() -> Path:
    """The profiler `--profile` runs, from this interpreter's environment (the `bench` extra)."""
    return Path(sys.executable).with_name("py-spy")


async def _compare_all(sources: list[str], targets: list[str], points: list[str | None]) -> bool:
    for source, target, point in zip(sources, targets, points, strict=True):
        if not (await compare_copy(source, target, point, concurrency=VERIFY_CONCURRENCY)).equal:
            return False
    return True


def run(args: argparse.Namespace, data_dir: Path) -> int:
    emulator_proc = EmulatorProcess(data_dir, "--completion-seconds", "0")
    env = emulator_proc.start()
    os.environ.update(env)
    try:
        emulator, world = Emulator(env), World(env)
        emulator.set_link(**LINK_OFF)
        # the premium scenario's account: each run commits one restore point, so the ten-minute
        # snapshot interval is off (the benchmark measures the copy, docs/emulator.md)
        control(
            env, "accounts", {"account": PREMIUM_ACCOUNT, "premium": True, "snapshot_interval_seconds": 0}
        )
        rng = random.Random(args.seed)
        bench = Bench(env, emulator, world, args.baseline_budget, args.profile, data_dir)
        rows: list[Row] = []
        started = time.monotonic()

        partial = args.out.with_name(f"{args.out.stem}.partial{args.out.suffix}")

        def keep(row: Row) -> None:
            """Keep a row and save every row so far beside the report, as `<report>.partial.json`
            (never over the last complete run's measurements): a run that fails late, or is stopped,
            leaves what it measured for `--render`."""
            rows.append(row)
            _say(report.line(row))
            report.save(rows, partial, time.monotonic() - started, args)

        for scenario in build(args.scenarios, args.seed, args.scale):
            t0 = time.monotonic()
            if scenario.name == "striped-restore":
                for row in _striped_restore(bench, scenario, rng, args.latencies):
                    keep(row)
                continue
            disks = [
                world.make_disk(f"{scenario.name}-{i}", spec, rng) for i, spec in enumerate(scenario.disks)
            ]
            _say(f"{scenario.name}: set up in {time.monotonic() - t0:.0f} s ({scenario.description})")
            for latency in args.latencies:
                for contender in contenders_of(scenario, args.contenders):
                    keep(bench.measure(scenario, disks, latency, contender))
                if scenario.name == "fleet" and "server" in args.contenders:
                    keep(bench.measure(scenario, disks[:1], latency, "server", "server (1 disk)"))
                if scenario.premium_target and "server" in args.contenders:
                    keep(
                        bench.measure(
                            scenario, disks, latency, "server", "server (standard)", premium_target=False
                        )
                    )
        elapsed = time.monotonic() - started
        report.save(rows, args.out, elapsed, args)
        report.write(rows, args.out, elapsed, args)
        partial.with_suffix(".json").unlink(missing_ok=True)
        _say(f"wrote {args.out}")
        return 0 if all(r.verified in ("equal", "sampled") for r in rows) else 1
    finally:
        emulator_proc.stop()


def contenders_of(scenario: Scenario, contenders: list[str]) -> list[str]:
    """The contenders that can replicate `scenario`'s disks: not the baseline (the public sample's
    approach writes one page blob) where a disk exports more than a page blob holds (stripes), since
    its copy could only read back DIFFERENT."""
    striped = any(len(per_stripe(spec)) > 1 for spec in scenario.disks)
    return [c for c in contenders if not (striped and c == "baseline")]


def _striped_restore(
    bench: Bench, scenario: Scenario, rng: random.Random, latencies: list[float]
) -> Iterator[Row]:
    """The striped-restore scenario (devtools.bench.striped): one restore point, one restore per latency."""
    t0 = time.monotonic()
    container, url = striped.target_url(bench.env, ACCOUNT)
    asyncio.run(striped.make_point(container, scenario.disks[0], rng))
    _say(f"{scenario.name}: set up in {time.monotonic() - t0:.0f} s ({scenario.description})")
    for latency in latencies:
        bound = bound_seconds(scenario.disks)
        yield striped.measure(bench.child_env, bench.emulator, bench.world, scenario, url, latency, bound)


_STARTED = time.monotonic()


def _say(text: str) -> None:
    print(f"bench: {time.monotonic() - _STARTED:5.0f} s  {text}", file=sys.stderr, flush=True)


def main(argv: list[str]) -> int:
    parser = CommandParser(prog="replicate bench", description=first_paragraph(__doc__))
    parser.add_argument(
        "--scenarios",
        nargs="+",
        default=list(BUILDERS),
        choices=BUILDERS,
        metavar="SCENARIO",
        help=f"scenarios to run, of {' '.join(BUILDERS)} (default: all)",
    )
    parser.add_argument(
        "--contenders",
        nargs="+",
        default=list(CONTENDERS),
        choices=CONTENDERS,
        help="tools to time (default: all)",
    )
    parser.add_argument(
        "--latencies",
        nargs="+",
        type=float,
        default=[20.0, 60.0],
        help="link round trips, ms (default 20 60)",
    )
    parser.add_argument("--scale", type=float, default=1.0, help="shrink the scenarios (smoke test)")
    parser.add_argument("--baseline-budget", type=float, default=10.0, help="seconds before extrapolating")
    parser.add_argument("--seed", type=int, default=7, help="seed of the scenarios' data (default 7)")
    parser.add_argument(
        "--out", type=Path, default=Path("docs/benchmarks.md"), help="report to write (chart beside it)"
    )
    parser.add_argument("--data-dir", type=Path, help="emulator state (default: a temporary folder)")
    parser.add_argument(
        "--profile",
        type=Path,
        metavar="DIR",
        help="run each timed contender under py-spy and write its flame graph (SVG) to DIR; "
        "the profiler's overhead skews that run's numbers",
    )
    parser.add_argument(
        "--render",
        type=Path,
        metavar="JSON",
        help="measure nothing: rewrite --out (and its chart) from the .json a run saved beside it",
    )
    args = parser.parse_args(argv)
    if args.profile is not None and not py_spy().exists():
        parser.error(
            f"--profile needs py-spy beside {sys.executable}; install it with pip install -e '.[bench]'."
        )
    if args.render is not None:
        fix = "give the .json a bench run saved beside its report"
        try:
            report.render(args.render, args.out)
        except OSError as exc:
            parser.error(f"cannot read {args.render} ({exc.strerror}); {fix}.")
        except (ValueError, KeyError, TypeError):
            parser.error(f"{args.render} is not a bench measurement file; {fix}.")
        return 0
    if args.data_dir is not None:
        return run(args, args.data_dir)
    with tempfile.TemporaryDirectory(prefix="replicator-bench-") as tmp:
        return run(args, Path(tmp))
