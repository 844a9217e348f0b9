"""Command-line entry point: parses, dispatches, prints. No replication logic lives here.

`replicate --source S --target T [options]` runs replicator.engine.pipeline.replicate; `replicate emulator`
starts the emulator. The terminal belongs to this module: stderr carries the one log stream
(replicator.observe.jsonlog: human lines and the progress bar on a terminal, JSON lines with a progress record
every --progress-seconds elsewhere), `--json` prints exactly one JSON document on stdout (also on
failure), and the exit code comes from the error class (replicator.core.errors). User errors get one
line, never a traceback; every line that leaves the process goes through replicator.core.redact.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

from replicator.cli import interrupt
from replicator.cli.argv import flag_value, target_display, wants_json
from replicator.core.errors import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    Interrupted,
    ReplicatorError,
    status_of,
)
from replicator.core.messages import clip, describe
from replicator.core.output import (
    emit_json,
    envelope,
    human_rate,
    human_size,
)
from replicator.core.redact import redact
from replicator.engine.progress import Fanout, RunResult, SnapshotResult
from replicator.observe import jsonlog, metrics
from replicator.observe.progress_log import LogProgress, reported

log = logging.getLogger("replicator")


class TerminalProgress(LogProgress):
    """LogProgress (the lines) plus, on a terminal, a rich bar: bytes copied of bytes to copy, rate, ETA.

    Rates are in binary units, as `--max-bandwidth 4MiB` caps them (rich's own speed column is decimal).
    """

    def __init__(self, stream: TextIO, *, bar: bool) -> None:
        super().__init__()
        self._bar: Any = None
        self._task: Any = None
        if bar:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                DownloadColumn,
                ProgressColumn,
                TextColumn,
                TimeRemainingColumn,
            )
            from rich.progress import Progress as RichProgress
            from rich.text import Text

            class RateColumn(ProgressColumn):
                def render(self, task: Any) -> Text:
                    speed = task.finished_speed or task.speed
                    return Text("?" if speed is None else human_rate(speed), style="progress.data.speed")

            self._bar = RichProgress(
                TextColumn("{task.description}"),
                BarColumn(),
                DownloadColumn(binary_units=True),
                RateColumn(),
                TimeRemainingColumn(),
                TextColumn("{task.fields[note]}"),
                console=Console(file=stream),
                transient=True,
            )

    def on_snapshot_start(self, result: SnapshotResult, index: int, total: int) -> None:
        super().on_snapshot_start(result, index, total)
        if self._bar is not None:
            self._bar.start()
            self._task = self._bar.add_task(result.snapshot_name, total=None, note="listing")

    def on_planned(self, copy_bytes: int, clear_bytes: int) -> None:
        super().on_planned(copy_bytes, clear_bytes)
        if self._task is not None:
            self._bar.update(self._task, total=self.total)

    def on_total(self, copy_bytes: int) -> None:
        super().on_total(copy_bytes)
        if self._task is not None:
            self._bar.update(self._task, total=self.total)

    def on_listing_done(self) -> None:
        super().on_listing_done()
        if self._task is not None and self.current is not None:
            rest = max(0, self.current.size_bytes - self.planned - self.cleared)
            note = f"{human_size(rest)} {'empty' if self.current.mode == 'full' else 'unchanged'}, skipped"
            self._bar.update(self._task, total=self.planned, note=note)

    def on_skipped(self, nbytes: int) -> None:
        super().on_skipped(nbytes)
        if self._task is not None:
            self._bar.update(self._task, note=f"resumed: {human_size(self.skipped)} already copied")

    def on_written(self, nbytes: int) -> None:
        super().on_written(nbytes)
        if self._task is not None:
            self._bar.advance(self._task, nbytes)

    def on_retry(self, what: str, attempt: int, delay: float, error: str) -> None:
        super().on_retry(what, attempt, delay, error)
        if self._task is not None:
            self._bar.update(self._task, note=f"retrying ({error[:60]})")

    def on_snapshot_done(self, result: SnapshotResult) -> None:
        self.close()  # the summary line goes below the bar, not into it
        super().on_snapshot_done(result)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            if self._task is not None:
                self._bar.remove_task(self._task)
                self._task = None


def replicate_main(args: list[str]) -> int:
    """The main call: load the config, run the pipeline, print the outcome; returns the exit code.

    SIGINT and SIGTERM cancel the run; its cleanups run, then it exits 128 + the signal's number
    (replicator.cli.interrupt). The envelope's status names the ending: replicator.core.errors.status_of.
    Success and failure print one envelope of one shape (replicator.core.output.envelope): a failure
    carries every snapshot the run started, with its bytes done and remaining (progress.Tally).
    """
    from replicator.settings import config as config_module

    started = datetime.now(UTC)
    jsonlog.setup()  # a bad config is reported through the stream too
    try:
        config = config_module.load(args, epilog=EPILOG)
    except ReplicatorError as err:
        jsonlog.failure("replicate", status_of(err), str(err), err.exit_code)
        if wants_json(args, os.environ):
            run = RunResult(flag_value(args, "--source") or "", target_display(args) or "")
            _emit(run, started, err, str(err))
        return err.exit_code
    jsonlog.setup(config.log_level)
    for reading in config.size_readings:
        jsonlog.say("size_read", reading.text, knob=reading.flag, given=reading.given, bytes=reading.value)
    bar = jsonlog.on_terminal() and not config.json
    progress = TerminalProgress(sys.stderr, bar=bar)
    meter = metrics.RunMeter("replicate", config.source, config.target)
    from replicator.engine.pipeline import replicate

    try:
        work = replicate(config, Fanout(progress, meter))
        result = interrupt.run(reported(work, progress, None if bar else config.progress_seconds))
    except Exception as err:
        progress.close()
        if isinstance(err, Interrupted):
            message = f"{err} A rerun resumes from the last checkpoint."
        elif isinstance(err, ReplicatorError):
            message = str(err)
        else:
            message = f"unexpected {describe(err)}"
            log.debug("unexpected failure", exc_info=True)
        code = err.exit_code if isinstance(err, ReplicatorError) else EXIT_FAILED
        jsonlog.failure("replicate", status_of(err), message, code)
        if config.json:
            run = RunResult(config.source, target_display([], config.target) or "")
            run.snapshots, run.protected = progress.snapshots(), progress.protected
            _emit(run, started, err, message)
        meter.finish(status_of(err))
        return code
    progress.close()
    if not result.snapshots:
        jsonlog.say("nothing_new", f"nothing new to replicate from {config.source}", source=config.source)
    if config.json:
        _emit(result, started)
    meter.finish(result.status)
    return EXIT_OK


def _emit(run: RunResult, started: datetime, err: BaseException | None = None, message: str = "") -> None:
    """Print the run's envelope; `err` (None: success) decides the status and exit code."""
    if err is None:
        status, code = run.status, EXIT_OK
    else:
        status, code = status_of(err), err.exit_code if isinstance(err, ReplicatorError) else EXIT_FAILED
    emit_json(
        envelope(
            "replicate",
            status=status,
            exit_code=code,
            error=redact(message) if err is not None else None,
            retry_after_seconds=getattr(err, "retry_after_seconds", None),
            started_at=started,
            payload=run.to_json(),
        )
    )


SUBCOMMANDS = {
    # name: module whose `main(argv: list[str]) -> int` runs it; imported only when used.
    "emulator": "replicator.emulator.server",
    "demo": "replicator.devtools.demo",
    "bench": "replicator.devtools.bench.harness",
    "worker": "replicator.fleet.worker",
    "enqueue": "replicator.fleet.enqueue",
    "list": "replicator.cli.list_cmd",
    "restore": "replicator.cli.restore_cmd",
    "prune": "replicator.cli.prune_cmd",
    "status": "replicator.cli.status_cmd",
}


EPILOG = """\
subcommands (`replicate NAME --help` for each):
  list      the restore points of a target          restore   a managed disk from a restore point
  prune     delete old restore points               enqueue   put one message per job on a queue
  worker    replicate the jobs of a queue           emulator  the local Azure emulator
  demo      the demo (scripts/demo.sh)              bench     the benchmark (scripts/bench.sh)
  status    how old each replica is (--max-age; exit 0 fresh, 4 unprotected, 5 stale, 1 unknown)

credentials: DefaultAzureCredential (`az login`, a managed identity), a bearer token in
  REPLICATOR_ACCESS_TOKEN (environment only), or a SAS in --target.
TLS: a private CA (the emulator's) goes in SSL_CERT_FILE (or REQUESTS_CA_BUNDLE), exported before
  the process starts.
exit codes: 0 done: protected up to the newest snapshot (also nothing new); 1 failed, a rerun
  resumes; 2 bad input, nothing written; 3 run again later (`--json` status locked, limited or
  incomplete); 4 unprotected: no snapshot the run could replicate (never 0); 5 `status` found a
  stale target; 130 / 143 stopped by SIGINT / SIGTERM after revoking grants and releasing the lease.
"""


def main(argv: list[str] | None = None) -> int:
    """Dispatch `replicate <subcommand>`; the main call is `replicate --source S --target T`."""
    args = sys.argv[1:] if argv is None else list(argv)
    # DefaultAzureCredential logs a 2.5 KB warning per failed attempt; the error line says it all
    # (`--log-level debug` brings it back: jsonlog.setup).
    logging.getLogger("azure.identity").setLevel(logging.CRITICAL)
    if args and args[0] in SUBCOMMANDS:
        module = importlib.import_module(SUBCOMMANDS[args[0]])
        try:
            return module.main(args[1:])
        except SystemExit as exit_:  # argparse: --help (0) or a usage error (2), already printed
            return exit_.code if isinstance(exit_.code, int) else EXIT_OK
    if args and args[0] in ("help", "-help"):
        args = ["--help"]
    elif args and not args[0].startswith("-"):
        jsonlog.failure(
            "replicate",
            "bad input",
            f"Unknown subcommand {clip(args[0], 60)!r}; the subcommands are {', '.join(SUBCOMMANDS)}, "
            "and the main call is `replicate --source S --target T` (see `replicate --help`).",
            EXIT_USAGE,
        )
        return EXIT_USAGE
    try:
        return replicate_main(args)
    except SystemExit as exit_:  # argparse --help
        return exit_.code if isinstance(exit_.code, int) else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
