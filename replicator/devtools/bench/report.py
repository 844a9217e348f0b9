"""docs/benchmarks.md: the table of every row, the targets beside their measured values, a chart."""

from __future__ import annotations

import argparse
import json
import platform
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from replicator.devtools.bench.scenarios import MiB


@dataclass
class Row:
    """One contender in one scenario at one latency: what this module tabulates."""

    scenario: str
    latency_ms: float
    contender: str
    wall_seconds: float
    changed_bytes: int
    written_bytes: int
    host_bytes: int
    requests: int
    throttled: int
    peak_rss_bytes: int
    cpu_seconds: float
    bound_seconds: float
    emulator_cpu_seconds: float = 0.0
    disks: int = 1
    verified: str = "-"
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def throughput(self) -> float:
        return self.changed_bytes / self.wall_seconds if self.wall_seconds else 0.0

    @classmethod
    def of(
        cls,
        what: tuple[str, float, str],
        wall: float,
        changed: int,
        written: int,
        measured: Any,
        stats: dict[str, Any],
        bound: float,
        extra: dict[str, Any] | None = None,
        **more: Any,
    ) -> Row:
        """A row from `what` (scenario, latency, contender), the children's measures (measure.Measured)
        and the emulator's stats over the timed part."""
        return cls(
            *what,
            wall,
            changed,
            written,
            stats["bytes_in"] + stats["bytes_out"],
            stats["requests"],
            stats["throttled"],
            measured.peak_rss_bytes,
            measured.cpu_seconds,
            bound,
            emulator_cpu_seconds=stats["cpu_seconds"],
            extra={"operations": stats["operations"], **(extra or {})},
            **more,
        )


def _mib(n: float) -> str:
    return f"{n / MiB:,.1f}"


def line(r: Row) -> str:
    return (
        f"{r.scenario} {r.latency_ms:g} ms {r.contender}: {r.wall_seconds:.2f} s, "
        f"{_mib(r.throughput)} MiB/s, "
        f"{r.requests} requests, written {_mib(r.written_bytes)} MiB of {_mib(r.changed_bytes)} changed, "
        f"host {_mib(r.host_bytes)} MiB, rss {_mib(r.peak_rss_bytes)} MiB, {r.verified} {r.note}"
    )


HEADERS = (
    "scenario", "latency", "contender", "wall s", "changed MiB", "written MiB", "host MiB", "requests",
    "503s", "MiB/s", "peak RSS MiB", "CPU s", "emulator CPU s", "CPU ms/request (tool + emulator)",
    "x baseline", "÷ bound", "verified", "note",
)  # fmt: skip


def cpu_per_request(r: Row) -> str:
    """Milliseconds of CPU per request, the tool's and the emulator's (they share this machine's cores):
    where a run is held by CPU rather than by the blob's limits, this says whose."""
    if not r.requests:
        return "-"
    return f"{1000 * r.cpu_seconds / r.requests:.2f} + {1000 * r.emulator_cpu_seconds / r.requests:.2f}"


def cores_busy(r: Row) -> float:
    """The cores the tool and the emulator kept busy together over the timed part: near the machine's
    count, the machine's CPU, not the modelled service, is what held the run."""
    return (r.cpu_seconds + r.emulator_cpu_seconds) / r.wall_seconds if r.wall_seconds else 0.0


def _cells(r: Row, baseline: Row | None) -> list[str]:
    speedup = f"{baseline.wall_seconds / r.wall_seconds:.1f}" if baseline and r.wall_seconds else "-"
    return [
        r.scenario,
        f"{r.latency_ms:g} ms",
        r.contender,
        f"{r.wall_seconds:.2f}",
        _mib(r.changed_bytes),
        _mib(r.written_bytes),
        _mib(r.host_bytes),
        str(r.requests),
        str(r.throttled),
        _mib(r.throughput),
        _mib(r.peak_rss_bytes),
        f"{r.cpu_seconds:.1f}",
        f"{r.emulator_cpu_seconds:.1f}",
        cpu_per_request(r),
        speedup,
        f"{r.wall_seconds / r.bound_seconds:.2f}" if r.bound_seconds else "-",
        r.verified,
        r.note,
    ]


def _find(rows: Iterable[Row], scenario: str, latency: float, contender: str) -> Row | None:
    return next(
        (r for r in rows if (r.scenario, r.latency_ms, r.contender) == (scenario, latency, contender)), None
    )


def _table(header: Iterable[str], body: list[list[str]]) -> list[str]:
    header = list(header)
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + [
        "| " + " | ".join(cells) + " |" for cells in body
    ]


def _striped_targets(idle: Row | None, scattered: Row | None, mode: str, lat: str) -> list[list[str]]:
    """Issue 15's targets for a 16 TiB disk (stripes): an idle run under 3 s, and a scattered diff at
    the bound of the stripes it touches (harness.bound_seconds: the slowest stripe's)."""
    out = []
    if idle:
        out.append([f"16 TiB idle {mode}: < 3 s", lat, f"{idle.wall_seconds:.2f} s, {idle.requests} requests",
                    _ok(idle.wall_seconds < 3)])  # fmt: skip
    if scattered and scattered.bound_seconds:
        ratio = scattered.wall_seconds / scattered.bound_seconds
        out.append([f"16 TiB scattered {mode}: ≤ 1.25 x bound of its stripes", lat,
                    f"{ratio:.2f} ({cores_busy(scattered):.2f} cores busy)", _ok(ratio <= 1.25)])  # fmt: skip
    return out


def targets(rows: list[Row]) -> list[list[str]]:
    """(target, latency, measured, met) for every target of issue #5 that the rows can answer."""
    out: list[list[str]] = []
    for latency in sorted({r.latency_ms for r in rows}):

        def row(scenario: str, contender: str, latency: float = latency) -> Row | None:
            return _find(rows, scenario, latency, contender)

        lat = f"{latency:g} ms"
        for mode in ("server", "stream"):
            s, b = row("scattered", mode), row("scattered", "baseline")
            if s and b:
                speedup = b.wall_seconds / s.wall_seconds
                out.append([f"scattered {mode}: ≥ 20x baseline", lat, f"{speedup:.1f}x", _ok(speedup >= 20)])
            if s:
                ratio = s.wall_seconds / s.bound_seconds
                out.append([f"scattered {mode}: ≤ 1.25 x bound", lat, f"{ratio:.2f}", _ok(ratio <= 1.25)])
            c = row("contiguous", mode)
            if c:
                share = c.throughput / (60 * MiB)
                out.append([f"contiguous {mode}: ≥ 90 % of 60 MiB/s", lat, f"{share:.0%}", _ok(share >= 0.9)])
            i = row("idle", mode)
            if i:
                out.append(
                    [f"idle {mode}: < 2 s", lat, f"{i.wall_seconds:.2f} s, {i.requests} requests",
                     _ok(i.wall_seconds < 2)]
                )  # fmt: skip
            out.extend(_striped_targets(row("striped-idle", mode), row("striped-scattered", mode), mode, lat))
        f, one = row("fleet", "server"), row("fleet", "server (1 disk)")
        if f and one and one.throughput:
            ratio = f.throughput / one.throughput
            out.append(["fleet server: aggregate ≥ 6x one disk", lat, f"{ratio:.1f}x", _ok(ratio >= 6)])
        out += _premium_targets(row("premium", "server"), row("premium", "server (standard)"), lat)
        out += _account_targets(row("fleet-account", "server"), lat)
    if rows:
        rss = max(r.peak_rss_bytes for r in rows if r.contender != "baseline")
        out.append(["peak RSS < 300 MiB (this tool)", "all", f"{_mib(rss)} MiB", _ok(rss < 300 * MiB)])
        ours = [r for r in rows if r.contender in ("server", "stream")]
        extra = max((r.written_bytes - r.changed_bytes for r in ours), default=0)
        share = max(((r.written_bytes - r.changed_bytes) / r.changed_bytes for r in ours if r.changed_bytes),
                    default=0.0)  # fmt: skip
        out.append(
            ["bytes written = changed + gap merges (diff, --merge-gap 64KiB)", "all",
             f"max excess {_mib(extra)} MiB ({share:.1%} of changed), all verified equal",
             _ok(extra >= 0 and all(r.verified == "equal" for r in ours))]
        )  # fmt: skip
        server = [r for r in rows if r.contender.startswith("server")]
        host = max((r.host_bytes for r in server), default=0)
        out.append(
            ["server mode: no data bytes through the host", "all",
             f"max {_mib(host)} MiB (listing XML only)", _ok(host < 16 * MiB)]
        )  # fmt: skip
    return out


def _premium_targets(p: Row | None, standard: Row | None, lat: str) -> list[list[str]]:
    """Issue 15's premium targets: the scattered diff into a P30 blob at least 8x faster than into a
    standard blob and within 1.25x of the P30 bound, with the CPU per request that decides it here."""
    out: list[list[str]] = []
    if p and standard and p.wall_seconds:
        speedup = standard.wall_seconds / p.wall_seconds
        out.append(["premium P30 server: ≥ 8x a standard blob", lat, f"{speedup:.1f}x", _ok(speedup >= 8)])
    if p and p.bound_seconds:
        ratio = p.wall_seconds / p.bound_seconds
        out.append(["premium P30 server: ≤ 1.25 x P30 bound", lat, f"{ratio:.2f}", _ok(ratio <= 1.25)])
    if p and p.requests and p.wall_seconds:
        pacing = p.extra.get("pacing") or {}
        out.append(
            ["premium P30 server: CPU per request (tool + emulator)", lat,
             f"{cpu_per_request(p)} ms; {p.requests / p.wall_seconds:,.0f} requests/s; "
             f"{cores_busy(p):.2f} cores busy; pacer max "
             f"{pacing.get('max_limit', '-')}, final {pacing.get('final_limit', '-')} of "
             f"{p.extra.get('ceiling', '-')}, held for CPU in {pacing.get('cpu_held', '-')} windows "
             f"(busiest {pacing.get('cpu_share', '-')} of a core)", "info"]
        )  # fmt: skip
    return out


def _account_targets(r: Row | None, lat: str) -> list[list[str]]:
    """fleet-account (issue 15): the runs' aggregate rate of the requests the budget governs (their chunk
    writes) held at the account's budget (90 % of it or more, never more than 2 % over: the burst), with
    every request the account served beside it, and 503s under 1 % of requests."""
    if r is None or "account_requests_per_second" not in r.extra:
        return []
    budget, held = r.extra["account_requests_per_second"], r.extra["aggregate_requests_per_second"]
    served = r.extra.get("served_requests_per_second")  # absent from a run before it was measured
    beside = "" if served is None else f" (all the account served: {served:.0f}/s)"
    share = r.throttled / r.requests if r.requests else 0.0
    return [
        ["fleet-account server: aggregate held at the account budget (90-102 %)", lat,
         f"{held:.0f} of {budget:.0f} requests/s ({held / budget:.0%}){beside}; {r.extra['budget_waits']} of "
         f"{r.requests} requests waited for the budget", _ok(0.9 <= held / budget <= 1.02)],
        ["fleet-account server: 503s < 1 % of requests", lat, f"{r.throttled} of {r.requests} ({share:.2%})",
         _ok(share < 0.01)],
    ]  # fmt: skip


def _ok(met: bool) -> str:
    return "met" if met else "**not met**"


def chart(rows: list[Row], path: Path) -> bool:
    """Wall time per scenario and contender (log scale), one panel per latency; False without matplotlib."""
    latencies = sorted({r.latency_ms for r in rows})
    figure = _figure(len(latencies))
    if figure is None:
        return False
    fig, axes = figure
    scenarios = list(dict.fromkeys(r.scenario for r in rows))
    contenders = list(dict.fromkeys(r.contender for r in rows))
    width = 0.8 / len(contenders)
    for ax, latency in zip(axes, latencies, strict=True):
        for k, contender in enumerate(contenders):
            values = [
                (r.wall_seconds if (r := _find(rows, s, latency, contender)) else 0.0) for s in scenarios
            ]
            ax.bar([i + k * width for i in range(len(scenarios))], values, width, label=contender)
        ax.set_xticks([i + 0.4 - width / 2 for i in range(len(scenarios))], scenarios)
        ax.set_yscale("log")
        ax.set_ylabel("wall seconds (log)")
        ax.set_title(f"{latency:g} ms latency, per-blob limits on")
    axes[0].legend(fontsize="small")
    _save(fig, path)
    return True


def pacing_chart(rows: list[Row], path: Path) -> bool:
    """Requests in flight over time: the pacer's limit (its run document's `pacing.trace`) of every
    `server` row that traced one, one panel per latency; False without matplotlib or a trace."""
    traced = [r for r in rows if r.contender.startswith("server") and len(_trace(r)) > 1]
    latencies = sorted({r.latency_ms for r in traced})
    figure = _figure(len(latencies)) if traced else None
    if figure is None:
        return False
    from matplotlib.ticker import ScalarFormatter

    fig, axes = figure
    for ax, latency in zip(axes, latencies, strict=True):
        for r in (r for r in traced if r.latency_ms == latency):
            points = _trace(r)
            tier = r.extra.get("tier")
            label = f"{r.scenario} {r.contender}" + (f" ({tier})" if tier and tier not in r.contender else "")
            # each point ends a window and holds the limit it ran under: a step back to the job's start
            times, limits = [0.0] + [p[0] for p in points], [points[0][1]] + [p[1] for p in points]
            ax.step(times, limits, where="pre", label=label)
        ax.set_yscale("log", base=2)
        ax.yaxis.set_major_formatter(ScalarFormatter())
        ax.set_xlabel("seconds since the job began")
        ax.set_ylabel("requests in flight (pacer's limit)")
        ax.set_title(f"{latency:g} ms latency")
        ax.legend(fontsize="x-small")
    _save(fig, path)
    return True


def _figure(panels: int) -> tuple[Any, list[Any]] | None:
    """A figure of `panels` side by side and its axes, drawn off-screen; None without matplotlib (the
    `bench` extra), which a report then goes without."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, axes = plt.subplots(1, panels, figsize=(6 * panels, 4.5), squeeze=False)
    return fig, list(axes[0])


def _save(fig: Any, path: Path) -> None:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _trace(r: Row) -> list[list[float]]:
    return list((r.extra.get("pacing") or {}).get("trace") or [])


def _platform() -> str:
    return f"{platform.machine()} / Python {platform.python_version()}"


def save(rows: list[Row], out: Path, total_seconds: float, args: argparse.Namespace) -> None:
    """The measurements beside the report (`.json`), so `replicate bench --render` can rewrite the
    report (e.g. after editing method.md) without measuring again."""
    out.parent.mkdir(parents=True, exist_ok=True)
    doc = {
        "total_seconds": total_seconds,
        "scale": args.scale,
        "latencies": args.latencies,
        "scenarios": args.scenarios,
        "contenders": args.contenders,
        "platform": _platform(),
        "rows": [asdict(r) for r in rows],
    }
    out.with_suffix(".json").write_text(json.dumps(doc, indent=1) + "\n")


def render(data: Path, out: Path) -> None:
    """Rewrite the report and chart from a `save`d measurement file."""
    doc = json.loads(data.read_text())
    rows = [Row(**r) for r in doc["rows"]]
    args = argparse.Namespace(
        scale=doc["scale"],
        latencies=doc["latencies"],  # files saved before these were recorded: what their rows show
        scenarios=doc.get("scenarios") or list(dict.fromkeys(r.scenario for r in rows)),
        # a row's label names its contender first ("server (1 disk)" is server's reference row)
        contenders=doc.get("contenders") or list(dict.fromkeys(r.contender.split(" (")[0] for r in rows)),
    )
    write(rows, out, doc["total_seconds"], args, doc["platform"])


def command(args: argparse.Namespace) -> str:
    """The `replicate bench` command line that measured the report: what was run, not the defaults."""
    words = ["replicate bench", "--scenarios", *args.scenarios, "--contenders", *args.contenders]
    words += [f"--scale {args.scale:g}", "--latencies", *[f"{x:g}" for x in args.latencies]]
    return " ".join(words)


def write(
    rows: list[Row], out: Path, total_seconds: float, args: argparse.Namespace, measured_on: str | None = None
) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    measured_on = measured_on or _platform()
    png = out.with_suffix(".png")
    has_chart = chart(rows, png)
    body = [_cells(r, _find(rows, r.scenario, r.latency_ms, "baseline")) for r in rows]
    text = [
        "# Benchmarks",
        "",
        f"Generated by `./scripts/bench.sh` (`{command(args)}`) in {total_seconds:.0f} s on {measured_on}; "
        "the emulator models the link (latency per request) and Azure's per-blob limits "
        "(500 requests/s, 60 MiB/s, 503 ServerBusy beyond a 1 s backlog; a premium blob its tier's, "
        "P30: 5,000 requests/s, 200 MB/s). Do not edit by hand.",
        "",
        "## Targets",
        "",
        *_table(("target", "latency", "measured", "status"), targets(rows)),
        "",
        "## Every run",
        "",
        *_table(HEADERS, body),
        "",
    ]
    if has_chart:
        text += [f"![wall time per scenario and contender]({png.name})", ""]
    paced = out.with_name(f"{out.stem}-pacing.png")
    if pacing_chart(rows, paced):
        text += [f"![requests in flight over time (the pacer's limit)]({paced.name})", ""]
    text += [(Path(__file__).parent / "method.md").read_text()]
    out.write_text("\n".join(text))
