"""`replicate --source S --target T [options]`: the main call, run through the one shell.

Loads the Config (every knob), runs replicator.engine.run.replicate with the progress lines and,
on a terminal, the bar (replicator.cli.terminal_progress), and returns the run as the command's
result. A failure's envelope carries every snapshot the run started, with its bytes done and
remaining (progress.Tally), so success and failure print one envelope of one shape. A VM's run has
no bar (its disks run at once: each logs its own lines and progress records) and its envelope is
the VM run document, filled in as the run goes.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from replicator.cli import shell
from replicator.cli.argv import flag_value, target_display
from replicator.cli.parser import CommandParser
from replicator.cli.terminal_progress import TerminalProgress
from replicator.core.progress import Fanout, RunResult, VmRunResult
from replicator.observe import jsonlog, metrics
from replicator.observe.progress_log import reported
from replicator.settings.config import Config
from replicator.settings.knobs import KNOBS

ALL_KNOBS = tuple(knob.name for knob in KNOBS)
REQUIRED = ("source", "target")


def package_version() -> str:
    """The installed package's version (its metadata), for `replicate --version`."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("replicator")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown (not installed)"


def build_parser(epilog: str | None = None) -> CommandParser:
    """The `replicate` argument parser: every knob; `epilog` (kept as written) lists the subcommands."""
    parser = CommandParser(
        prog="replicate",
        description="Replicate managed-disk incremental snapshots to a page blob.",
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        knobs=ALL_KNOBS,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {package_version()}")
    return parser


def load(argv: Sequence[str], env: Mapping[str, str] | None = None, *, epilog: str | None = None) -> Config:
    """The Config of `replicate argv` (flags, then `env`, default os.environ); UserError on bad input."""
    parser = build_parser(epilog)
    return parser.config(parser.parse_args(list(argv)), env, required=REQUIRED)


async def _replicate(invocation: shell.Invocation, epilog: str) -> shell.CommandResult:
    argv = invocation.argv
    invocation.error_payload = lambda: RunResult(
        flag_value(argv, "--source") or "", target_display(argv) or ""
    ).to_json()
    parser = build_parser(epilog)
    config = shell.configure(parser, parser.parse_args(argv), required=REQUIRED)
    for reading in config.size_readings:
        jsonlog.say("size_read", reading.text, knob=reading.flag, given=reading.given, bytes=reading.value)
    from replicator.engine.run import is_vm, replicate  # here: `--help` and a bad config skip the engine

    vm = is_vm(config)
    bar = jsonlog.on_terminal() and not config.json and not vm
    progress = TerminalProgress(sys.stderr, bar=bar)
    meter = metrics.RunMeter("replicate", config.source, config.target)

    def failed_run() -> dict[str, Any]:
        run = RunResult(config.source, target_display([], config.target) or "")
        run.snapshots, run.protected = progress.snapshots(), progress.protected
        return run.to_json()

    document = VmRunResult(config.source, target_display([], config.target) or "") if vm else None
    invocation.error_payload = document.to_json if document else failed_run
    invocation.interrupted_hint = " A rerun resumes from the last checkpoint."
    invocation.at_end.append(meter.finish)
    try:
        work = replicate(config, Fanout(progress, meter), vm_document=document)
        result = await reported(work, progress, None if bar else config.progress_seconds)
    finally:
        progress.close()
    if result.status == "nothing new":
        jsonlog.say("nothing_new", f"nothing new to replicate from {config.source}", source=config.source)
    return shell.CommandResult(config.json, result.status, result.to_json())


def main(argv: list[str], epilog: str) -> int:
    """Run the main call; returns the exit code (replicator.cli.shell maps every ending)."""
    return shell.run("replicate", argv, lambda invocation: _replicate(invocation, epilog))
