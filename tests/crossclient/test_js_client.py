"""A client nobody here wrote agrees with the emulator: page_blob_surface.mjs drives the session
emulator with Microsoft's JavaScript SDK (@azure/storage-blob, pinned in package.json) and plain
fetch for ARM, and checks every answer against its own model of the bytes (see its header).

It runs in the default suite, in a few seconds. Without Node or the pinned package it fails with the
fix (`./scripts/setup.sh`), never skips: a check that silently does not run is no check.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.reliability.leaks import find_leaks

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = Path(__file__).with_name("page_blob_surface.mjs")
PACKAGE = "@azure/storage-blob"
# About 3 s on an idle machine; a 2-core machine shared with other suites can be ten times slower.
TIMEOUT_SECONDS = 120


def _node_with_sdk() -> str:
    """The node binary, once the SDK version package.json pins is what node_modules holds."""
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not on PATH: install Node.js 20 or newer, then run ./scripts/setup.sh")
    pinned = json.loads((ROOT / "package.json").read_text())["devDependencies"][PACKAGE]
    installed = ROOT / "node_modules" / PACKAGE / "package.json"
    if not installed.exists():
        pytest.fail(f"{PACKAGE} is not installed in node_modules: run ./scripts/setup.sh")
    version = json.loads(installed.read_text())["version"]
    if version != pinned:
        pytest.fail(
            f"node_modules holds {PACKAGE} {version}, package.json pins {pinned}: run ./scripts/setup.sh"
        )
    return node


def test_javascript_sdk_agrees_with_the_emulator(emulator_env: dict[str, str]) -> None:
    node = _node_with_sdk()
    env = {**os.environ, **emulator_env, "NODE_EXTRA_CA_CERTS": emulator_env["SSL_CERT_FILE"]}
    done = subprocess.run(
        [node, str(SCRIPT)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=TIMEOUT_SECONDS
    )
    leaks = find_leaks(done.stdout + done.stderr, emulator_env)
    assert not leaks, f"the script printed secrets: {', '.join(leaks)}"
    try:
        report = json.loads(done.stdout)
    except ValueError:
        pytest.fail(f"the script printed no JSON report (exit {done.returncode}): {done.stderr[-3000:]}")
    failed = [f"{c['name']}: {c['detail']}" for c in report["checks"] if not c["ok"]]
    assert not failed, f"{len(failed)} of {len(report['checks'])} checks failed:\n" + "\n".join(failed)
    assert done.returncode == 0, f"exit {done.returncode} with every check passed: {report.get('error')}"
    names = {c["name"] for c in report["checks"]}
    # Each part of the surface ran (a section that stopped early would list fewer checks).
    for part in (
        "get page ranges: paged by 2 with continuation tokens",
        "diff snapshot 2 vs snapshot 1 by SAS URL (x-ms-previous-snapshot-url)",
        "put page from URL: valid ranges of snapshot 2, shifted by 512",
        "write without the lease id",
        "raw Shared Key GET with the standard Range header signed in its slot",
        "replicate in JS: full copy of snapshot 1, then the diff to snapshot 2",
    ):
        assert part in names, f"the script no longer checks {part!r}"
