"""`replicate bench --profile DIR`: each timed child runs under `py-spy record`, one flame graph each."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from replicator.bench.harness import Bench


def test_profiled_children_run_under_py_spy_with_one_flame_graph_each(tmp_path: Path) -> None:
    none: Any = None
    bench = Bench({}, none, none, 10.0, tmp_path / "profiles", tmp_path)
    commands = [([sys.executable, "-m", "replicator.cli", "--json"], {"A": "1"}), (["other"], {"B": "2"})]
    wrapped = bench._profiled(commands, "scattered-20-server")
    assert (tmp_path / "profiles").is_dir()
    for i, ((cmd, env), (original, original_env)) in enumerate(zip(wrapped, commands, strict=True)):
        assert Path(cmd[0]).name == "py-spy" and cmd[1] == "record"
        assert cmd[cmd.index("-o") + 1] == str(tmp_path / "profiles" / f"scattered-20-server-{i}.svg")
        assert cmd[cmd.index("--") + 1 :] == original and env is original_env
