"""`replicate bench --profile DIR` (each timed child under `py-spy record`, one flame graph each) and
`--render JSON`, and their bad input: one sentence, exit 2, nothing measured."""

from __future__ import annotations

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
