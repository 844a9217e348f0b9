"""The one shell every subcommand runs in: parse, configure, run, print, and map every ending to an exit.

A command (replicate, list, restore, prune, status, worker, enqueue) is a coroutine that parses its
own flags (replicator.cli.parser.CommandParser), loads its `Config` through `configure` (the one
validated path, with the knobs the command takes) and returns a `CommandResult`; everything else is
here, the same for all of them:

- signals: SIGINT and SIGTERM cancel the command, its cleanups run, and it exits 130 / 143
  (replicator.cli.interrupt);
- errors: the error class decides the status and the exit code (replicator.core.errors.status_of),
  one sentence goes to stderr through the one log stream (replicator.observe.jsonlog: plain on a
  terminal, JSON lines elsewhere; an unexpected error is `unexpected <describe>`, its traceback at
  debug), and with `--json` exactly one envelope (replicator.core.output.envelope) goes to stdout, on
  success and on failure alike, through replicator.core.redact.
"""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Callable, Collection, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from replicator.cli import interrupt
from replicator.cli.argv import target_display, wants_json
from replicator.cli.parser import CommandParser
from replicator.core.errors import (
    EXIT_FAILED,
    EXIT_OK,
    Interrupted,
    ReplicatorError,
    status_of,
)
from replicator.core.messages import describe
from replicator.core.output import emit_json, envelope
from replicator.core.redact import redact
from replicator.observe import jsonlog
from replicator.settings.config import Config

log = logging.getLogger("replicator")


@dataclass(frozen=True)
class CommandResult:
    """What a command returns when it ran to the end (an error is raised instead)."""

    json: bool  # print the JSON envelope rather than the human output
    status: str  # the envelope's status: "replicated", "listed", "restored", "pruned", "fresh", ...
    payload: dict[str, Any] = field(default_factory=dict)  # the command's fields of the envelope
    show: Callable[[], None] = lambda: None  # the human printer
    exit_code: int = EXIT_OK  # non-zero without an error: `status` found a stale target
    error: str | None = None  # with a non-zero exit_code: the one sentence saying why (the envelope's error)


class Invocation:
    """One run of a command, as the shell reports it: what it is called, its argv, when it started, and
    what a failure's envelope carries.

    A command refines these as it learns more: `error_payload` (the fields of a failed run's envelope,
    the same a success has, so both documents have one shape; by default the target), and
    `interrupted_hint` (what a stopped run adds to its sentence). `at_end` callbacks run with the
    final status on every ending (replicate: its metrics).
    """

    def __init__(self, name: str, argv: Sequence[str]) -> None:
        self.name = name
        self.prog = "replicate" if name == "replicate" else f"replicate {name}"
        self.argv = list(argv)
        self.started = datetime.now(UTC)
        self.error_payload: Callable[[], dict[str, Any]] = lambda: {"target": target_display(self.argv)}
        self.interrupted_hint = ""
        self.at_end: list[Callable[[str], None]] = []

    def parser(self, description: str | None, *, knobs: Collection[str] = (), **kwargs: Any) -> CommandParser:
        """The command's argument parser, taking the knobs `knobs`."""
        return CommandParser(prog=self.prog, description=description, knobs=knobs, **kwargs)


def configure(
    parser: CommandParser,
    args: argparse.Namespace,
    env: Mapping[str, str] | None = None,
    *,
    required: Collection[str] = ("target",),
) -> Config:
    """The command's validated Config (its knobs: flag, then environment, then default); the log
    stream then shows the level it asks for."""
    config = parser.config(args, env, required=required)
    jsonlog.setup(config.log_level)
    return config


def say(text: str, name: str = "step", **fields: Any) -> None:
    """A line for the operator on stderr (the event `name`), through the one log stream."""
    jsonlog.say(name, text, **fields)


Work = Callable[[Invocation], Coroutine[Any, Any, CommandResult]]


def run(name: str, argv: Sequence[str], work: Work, *, json_capable: bool = True) -> int:
    """Run `work`, print its result; map an error to one line (and the JSON envelope) and an exit code.

    `json_capable` False: the command has no `--json` (worker, enqueue), whatever the environment says.
    """
    invocation = Invocation(name, argv)
    want_json = json_capable and wants_json(argv, os.environ)
    jsonlog.setup()  # usage errors go through the stream too; configure() sets the asked level
    try:
        result = interrupt.run(work(invocation))
    except SystemExit as exit_:  # --help, --version
        return exit_.code if isinstance(exit_.code, int) else EXIT_OK
    except Exception as err:
        return _failed(invocation, err, want_json)
    if result.json:
        _emit(invocation, result.status, result.exit_code, result.error, None, result.payload)
    else:
        result.show()
    _end(invocation, result.status)
    return result.exit_code


def report(name: str, argv: Sequence[str], err: Exception) -> int:
    """Report an error raised outside `run` (a dispatched command's usage error) the one way."""
    return _failed(Invocation(name, argv), err, want_json=False)


def _failed(invocation: Invocation, err: Exception, want_json: bool) -> int:
    """Report `err` the one way: the stderr line, the envelope with `--json`; returns the exit code."""
    status = status_of(err)
    code = err.exit_code if isinstance(err, ReplicatorError) else EXIT_FAILED
    if isinstance(err, Interrupted):
        message = f"{err}{invocation.interrupted_hint}"
    elif isinstance(err, ReplicatorError):
        message = str(err)
    else:
        message = f"unexpected {describe(err)}"
        log.debug("unexpected failure", exc_info=True)
    jsonlog.failure(invocation.prog, status, message, code)
    if want_json:
        retry_after = getattr(err, "retry_after_seconds", None)
        _emit(invocation, status, code, redact(message), retry_after, invocation.error_payload())
    _end(invocation, status)
    return code


def _emit(
    invocation: Invocation,
    status: str,
    code: int,
    error: str | None,
    retry_after: float | None,
    payload: dict[str, Any],
) -> None:
    emit_json(
        envelope(
            invocation.name,
            status=status,
            exit_code=code,
            error=error,
            retry_after_seconds=retry_after,
            started_at=invocation.started,
            payload=payload,
        )
    )


def _end(invocation: Invocation, status: str) -> None:
    for callback in invocation.at_end:
        callback(status)
