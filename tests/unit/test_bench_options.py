"""`replicate bench --profile DIR` (each timed child under `py-spy record`, one flame graph each) and
`--render JSON`, and their bad input: one sentence, exit 2, nothing measured."""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import sys
from pathlib import Path
from typing import Any

import pytest

from replicator.cli import main as cli_main
from replicator.devtools.bench import harness
from replicator.devtools.bench.harness import Bench
from tests.logs import messages


def test_profiled_children_run_under_py_spy_with_one_flame_graph_each(tmp_path: Path) -> None:
    none: Any = None
    bench = Bench({}, none, none, 10.0, tmp_path / "profiles", tmp_path)
    commands = [
        ([sys.executable, "-m", "replicator.cli.main", "--json"], {"A": "1"}),
        (["other"], {"B": "2"}),
    ]
    wrapped = bench._profiled(commands, "scattered-20-server")
    assert (tmp_path / "profiles").is_dir()
    for i, ((cmd, env), (original, original_env)) in enumerate(zip(wrapped, commands, strict=True)):
        assert Path(cmd[0]).name == "py-spy" and cmd[1] == "record"
        assert cmd[cmd.index("-o") + 1] == str(tmp_path / "profiles" / f"scattered-20-server-{i}.svg")
        assert cmd[cmd.index("--") + 1 :] == original and env is original_env


@pytest.mark.parametrize("content", [None, "not json", '{"rows": []}'])
def test_render_of_a_missing_or_foreign_file_is_one_sentence_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str | None
) -> None:
    data = tmp_path / "measurements.json"
    if content is not None:
        data.write_text(content)
    assert cli_main.main(["bench", "--render", str(data), "--out", str(tmp_path / "report.md")]) == 2
    [line] = messages(capsys.readouterr().err)
    assert line.startswith("replicate bench: error: ") and "Traceback" not in line
    assert line.endswith("give the .json a bench run saved beside its report.")
    assert not (tmp_path / "report.md").exists()


def test_profile_without_py_spy_is_refused_before_anything_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(harness, "py_spy", lambda: tmp_path / "no-py-spy")
    assert cli_main.main(["bench", "--profile", str(tmp_path / "p"), "--data-dir", str(tmp_path / "e")]) == 2
    assert "--profile needs py-spy" in capsys.readouterr().err
    assert not (tmp_path / "e").exists()


def test_the_report_header_names_what_was_run_and_a_saved_file_without_it_its_rows(tmp_path: Path) -> None:
    from replicator.devtools.bench import report

    args = argparse.Namespace(scenarios=["premium"], contenders=["server"], scale=1.0, latencies=[20.0])
    assert report.command(args) == (
        "replicate bench --scenarios premium --contenders server --scale 1 --latencies 20"
    )
    row = report.Row("premium", 20.0, "server", 4.0, 100, 100, 0, 2000, 0, 0, 1.5, 2.0, 0.6)
    assert report.cpu_per_request(row) == "0.75 + 0.30"  # ms per request: the tool's + the emulator's
    old = tmp_path / "old.json"  # saved before the header recorded scenarios and contenders
    old.write_text(json.dumps({"total_seconds": 1, "scale": 1, "latencies": [20], "platform": "x",
                               "rows": [dataclasses.asdict(row)]}))  # fmt: skip
    report.render(old, tmp_path / "old.md")
    assert (
        "`replicate bench --scenarios premium --contenders server --scale 1 --latencies 20`"
        in (tmp_path / "old.md").read_text()
    )


def test_the_pacing_chart_draws_only_server_rows_that_traced_their_pacer(tmp_path: Path) -> None:
    """Rows without a trace (the baseline, a fleet of several runs, a document from before traces)
    draw nothing, and the report then links no chart; the cores a run kept busy are its CPU seconds,
    the tool's and the emulator's, over its wall time."""
    from replicator.devtools.bench import report

    def row(contender: str, trace: list[list[float]] | None) -> report.Row:
        extra = {"pacing": {"trace": trace}} if trace is not None else {}
        return report.Row(
            "premium", 20.0, contender, 4.0, 100, 100, 0, 2000, 0, 0, 1.5, 2.0, 2.1, extra=extra
        )

    one_point = row("server", [[0.1, 8, 400.0]])
    assert not report.pacing_chart(
        [row("baseline", [[0.1, 1, 40], [0.2, 1, 40]]), one_point], tmp_path / "p.png"
    )
    assert not (tmp_path / "p.png").exists()
    assert report.cores_busy(one_point) == pytest.approx(0.9)  # (1.5 + 2.1) / 4.0
    report.write([one_point], tmp_path / "r.md", 1.0, argparse.Namespace(
        scenarios=["premium"], contenders=["server"], scale=1.0, latencies=[20.0]))  # fmt: skip
    assert "![requests in flight" not in (tmp_path / "r.md").read_text()


def test_docs_benchmarks_is_what_its_saved_measurements_and_method_render(tmp_path: Path) -> None:
    """docs/benchmarks.md is generated: its text after the tables is bench/method.md's, so a finding
    written into the docs by hand and not into method.md would be lost by the next run. Charts aside
    (they need the `bench` extra), rendering docs/benchmarks.json gives the file as committed."""
    from replicator.devtools.bench import report

    docs = Path(__file__).resolve().parents[2] / "docs"
    report.render(docs / "benchmarks.json", tmp_path / "benchmarks.md")

    def text(path: Path) -> str:
        """The report without its chart lines and the blank line each brings."""
        return re.sub(r"^!\[.*\n\n", "", path.read_text(), flags=re.MULTILINE)

    assert text(tmp_path / "benchmarks.md") == text(docs / "benchmarks.md")


def test_a_baseline_row_has_no_account_figures_and_a_run_of_ours_has_them() -> None:
    """The fleet-account baseline prints the sample's documents (no jobs, no budget): its row has no
    account figures, where it used to end the whole benchmark with a KeyError after half an hour."""
    import random

    from replicator.devtools.bench.measure import Measured
    from replicator.devtools.bench.scenarios import fleet_account

    scenario = fleet_account(random.Random(7), 0.01, disks=1)
    sample = Measured(1.0, 0, 0.1, [{"complete": True, "requests_done": 10, "requests_total": 10}])
    assert harness.account_extra(scenario, "baseline", sample, {"accounts": {}}) == {}
    job = {"seconds": 2.0, "requests": 290, "account_budget": {"waits": 3, "wait_seconds": 0.5}}
    ours = Measured(2.5, 0, 1.0, [{"runs": [{"snapshots": [job]}]}])
    stats = {"accounts": {harness.ACCOUNT: {"requests": 320}}}  # the control requests too
    extra = harness.account_extra(scenario, "server", ours, stats)
    assert extra["aggregate_requests_per_second"] == 145.0 and extra["budget_waits"] == 3
    assert extra["served_requests_per_second"] == 160.0


def test_the_baseline_is_not_run_on_a_disk_over_one_page_blob() -> None:
    """The sample's approach writes one page blob: a 16 TiB disk's copy could only read back DIFFERENT
    (striped-idle did, in a full run), so the striped scenarios run this tool's contenders only."""
    from replicator.devtools.bench.scenarios import build

    scenarios = {s.name: s for s in build(["striped-idle", "striped-scattered", "idle"], 7, 0.01)}
    everyone = ["baseline", "full", "server", "stream"]
    assert harness.contenders_of(scenarios["striped-idle"], everyone) == ["full", "server", "stream"]
    assert harness.contenders_of(scenarios["striped-scattered"], ["baseline"]) == []
    assert harness.contenders_of(scenarios["idle"], everyone) == everyone  # 8 TiB exactly: one blob
