"""`replicate list`, `replicate restore`, `replicate prune`: parsing and printing only.

The library is replicator.target.restore_points; these modules build its input from flags (each with the
environment variable of the main command's knob of the same name, see replicator.settings.config.KNOBS),
print the outcome and return the exit code. Human lines go to stderr through the one log stream
(replicator.observe.jsonlog: plain on a terminal, JSON lines elsewhere), the result to stdout (the table of
`list`, the disk ID of `restore`, the deleted IDs of `prune`), or exactly one JSON document on
stdout with `--json`, also on failure. Every line that leaves the process goes through redact.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Coroutine, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, NamedTuple

from replicator.cli import interrupt
from replicator.cli.argv import target_display, wants_json
from replicator.core.errors import (
    EXIT_FAILED,
    EXIT_OK,
    ReplicatorError,
    UserError,
    status_of,
)
from replicator.core.messages import describe
from replicator.core.output import emit_json, envelope
from replicator.core.redact import redact
from replicator.observe import jsonlog
from replicator.plumbing.credentials import check_arm_endpoint
from replicator.settings import config as config_module


class Outcome(NamedTuple):
    """What a subcommand returns when it ran to the end (an error is raised instead)."""

    json: bool  # print the JSON envelope rather than the human output
    status: str  # the envelope's status: "listed", "restored", "pruned", "planned", "fresh", ...
    payload: dict[str, Any]  # the command's fields of the envelope
    show: Callable[[], None]  # the human printer
    exit_code: int = EXIT_OK  # non-zero without an error: `status` found a stale target
    error: str | None = None  # with a non-zero exit_code: the one sentence saying why (the envelope's error)


COMMON_KNOBS = ("target", "arm_endpoint", "access_token", "allow_http", "json", "log_level")
"""The main command's knobs these subcommands share (same flags, same environment variables); a
subcommand adds more with `config.add_knobs` (restore: --subscription-id)."""


def parser(prog: str, description: str) -> argparse.ArgumentParser:
    """An argument parser with the common knobs; usage errors become UserError (exit 2)."""
    p = config_module._Parser(prog=f"replicate {prog}", description=description)
    config_module.add_knobs(p, COMMON_KNOBS)
    return p


def load(
    args: argparse.Namespace, env: Mapping[str, str] | None = None, *, require_target: bool = True
) -> config_module.Config:
    """The Config the target and ARM adapters read, from the common knobs (flag, then environment).

    `require_target` False: a fleet command (`status` of the jobs) fills `target` per job."""
    env = os.environ if env is None else env
    values: dict[str, Any] = {}
    for knob in config_module.KNOBS:
        if knob.name not in COMMON_KNOBS and knob.name not in vars(args):
            continue
        raw = getattr(args, knob.name, None)
        raw = env.get(knob.env) if raw is None else raw
        if raw is None or raw == "":
            continue
        values[knob.name] = knob.value(raw)
    if require_target and not values.get("target"):
        raise UserError("--target is required (or set REPLICATOR_TARGET).")
    config = config_module.Config(source="", **{"target": "", **values})
    jsonlog.setup(config.log_level)
    check_arm_endpoint(config.arm_endpoint, allow_http=config.allow_http)
    return config


def say(text: str, name: str = "step", **fields: Any) -> None:
    """A line for the operator on stderr (the event `name`), through the one log stream."""
    jsonlog.say(name, text, **fields)


def run(
    name: str,
    argv: Sequence[str],
    work: Callable[[list[str]], Coroutine[Any, Any, Outcome]],
) -> int:
    """Run `work(argv)`, print its outcome; map errors to one line (and the JSON envelope) and an exit code.

    `payload_on_error` is what the envelope of a failed run carries besides the error (the same
    fields a success has, so both documents have one shape): at least the target.
    """
    started = datetime.now(UTC)
    want_json = wants_json(argv, os.environ)
    jsonlog.setup()  # usage errors go through the stream too; load() sets the asked level
    try:
        outcome = interrupt.run(work(list(argv)))
    except SystemExit as exit_:  # --help
        return exit_.code if isinstance(exit_.code, int) else EXIT_OK
    except Exception as err:
        code = err.exit_code if isinstance(err, ReplicatorError) else EXIT_FAILED
        message = str(err) if isinstance(err, ReplicatorError) else describe(err)
        jsonlog.failure(f"replicate {name}", status_of(err), message, code)
        if want_json:
            emit_json(
                envelope(
                    name,
                    status=status_of(err),
                    exit_code=code,
                    error=redact(message),
                    retry_after_seconds=getattr(err, "retry_after_seconds", None),
                    started_at=started,
                    payload={"target": target_display(argv)},
                )
            )
        return code
    if outcome.json:
        emit_json(
            envelope(
                name,
                status=outcome.status,
                exit_code=outcome.exit_code,
                error=outcome.error,
                started_at=started,
                payload=outcome.payload,
            )
        )
    else:
        outcome.show()
    return outcome.exit_code
