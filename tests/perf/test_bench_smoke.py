"""The benchmark harness on a tiny scenario, so it does not rot: it must run every step (setup,
contenders as children, stats, verification, report) and write a report. No timing assertions."""

from __future__ import annotations

import functools
import importlib.util
import subprocess
import sys
from pathlib import Path


def test_bench_harness_runs_end_to_end_on_a_tiny_scenario(tmp_path: Path) -> None:
    out = tmp_path / "benchmarks.md"
    cmd = [
        sys.executable, "-m", "replicator.cli.main", "bench",
        "--scenarios", "scattered", "idle", "premium", "--contenders", "baseline", "server",
        "--scale", "0.005", "--latencies", "5", "--baseline-budget", "30",
        "--out", str(out), "--data-dir", str(tmp_path / "emulator"),
    ]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    report = out.read_text()
    assert "## Targets" in report and "## Every run" in report
    rows = [
        line for line in report.splitlines() if line.startswith(("| scattered |", "| idle |", "| premium |"))
    ]
    assert len(rows) == 7, report  # premium: baseline, server into the P30 blob, server (standard)
    assert all("| equal |" in row for row in rows), report  # the baseline finished: verified too
    assert "scattered server: ≥ 20x baseline" in report
    assert "premium P30 server: ≥ 8x a standard blob" in report
    assert "premium P30 server: CPU per request (tool + emulator)" in report
    # the header names what was run, not the defaults
    assert (
        "`replicate bench --scenarios scattered idle premium --contenders baseline server --scale 0.005"
        in report
    )
    assert "sig=" not in report and "sig=" not in done.stderr
    # rows are saved as they are measured, beside the report but apart from a complete run's file
    assert not (tmp_path / "benchmarks.partial.json").exists()
    # the measurements are saved beside the report, and --render rewrites the same report from them
    rerendered = tmp_path / "again.md"
    cmd = [
        sys.executable,
        "-m",
        "replicator.cli.main",
        "bench",
        "--render",
        str(out.with_suffix(".json")),
        "--out",
        str(rerendered),
    ]
    assert subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False).returncode == 0
    charts = {"again.png": "benchmarks.png", "again-pacing.png": "benchmarks-pacing.png"}
    assert (
        functools.reduce(lambda text, names: text.replace(*names), charts.items(), rerendered.read_text())
        == report
    )
    # the pacer's trace of each server row is drawn beside the report, where matplotlib (the `bench`
    # extra) is installed; without it the report links neither chart
    assert ("![requests in flight over time" in report) == _has_matplotlib()
    assert (tmp_path / "benchmarks-pacing.png").exists() == _has_matplotlib()


def _has_matplotlib() -> bool:
    return importlib.util.find_spec("matplotlib") is not None


def test_the_striped_restore_scenario_runs_and_verifies(tmp_path: Path) -> None:
    out = tmp_path / "benchmarks.md"
    cmd = [
        sys.executable, "-m", "replicator.cli.main", "bench", "--scenarios", "striped-restore",
        "--scale", "0.005", "--latencies", "5", "--out", str(out), "--data-dir", str(tmp_path / "emulator"),
    ]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=180, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    [row] = [line for line in out.read_text().splitlines() if line.startswith("| striped-restore |")]
    assert "| equal |" in row and "| server |" in row


def test_the_account_limited_fleet_runs_end_to_end_on_a_tiny_scale(tmp_path: Path) -> None:
    out = tmp_path / "benchmarks.md"
    cmd = [
        sys.executable, "-m", "replicator.cli.main", "bench",
        "--scenarios", "fleet-account", "--contenders", "server",
        "--scale", "0.005", "--latencies", "5",
        "--out", str(out), "--data-dir", str(tmp_path / "emulator"),
    ]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=180, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    report = out.read_text()
    (row,) = [line for line in report.splitlines() if line.startswith("| fleet-account |")]
    assert "| equal |" in row, report  # every restore point verified
    assert "fleet-account server: aggregate held at the account budget" in report
    assert "fleet-account server: 503s < 1 % of requests" in report
