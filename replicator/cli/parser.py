"""The one argument parser of every command: its usage errors, and the knobs' flags.

Usage errors are in the one style every command prints: `<prog>: error: <Sentence>.`, exit 2, no
usage dump. argparse's own messages ("argument --keep: invalid int value: 'x'") start lowercase, name
argparse's idea of the problem and come after a usage block that hides them; `sentence` rewrites the
common ones the way replicator.settings.knobs phrases its own, and `CommandParser` raises them as
`UserError`, which the shell (replicator.cli.shell) reports like any other bad input, `--json`
envelope included.

A command declares the knobs it takes (`add_knobs`: the flags of replicator.settings.knobs.KNOBS, each
also read from its environment variable) and gets its `Config` from `CommandParser.config`, the one
validated path (replicator.settings.config.read).
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable, Collection, Mapping
from typing import Any, NoReturn

from replicator.core.errors import UserError
from replicator.settings.config import Config, read
from replicator.settings.knob_table import default_text
from replicator.settings.knobs import (
    KNOBS,
    parse_duration,
    parse_float,
    parse_int,
    parse_size,
)

_REWRITES: tuple[tuple[str, str], ...] = (
    (r"argument (\S+): invalid int value: (.*)", r"\1: expected a whole number; got \2"),
    (r"argument (\S+): invalid float value: (.*)", r"\1: expected a number; got \2"),
    (
        r"argument (\S+): expected one argument",
        r"\1 needs a value (one that starts with '-' takes the = form: \1=-VALUE)",
    ),
    (r"argument (\S+): not allowed with argument (\S+)", r"\2 and \1 exclude each other: give one"),
    (r"argument (\S+): (.*)", r"\1: \2"),
    (r"one of the arguments (\S+) (\S+) is required", r"\1 or \2 is required"),
    (r"unrecognized arguments: (.*)", r"Unknown argument \1"),
    (r"the following arguments are required: ([^,]*)", r"\1 is required"),
    (r"the following arguments are required: (.*), ([^,]*)", r"\1 and \2 are required"),
)


def sentence(message: str, *, hint: str = "") -> str:
    """argparse's `message` as one sentence: rewritten, capitalised, ending with a period."""
    for pattern, replacement in _REWRITES:
        if re.fullmatch(pattern, message, re.DOTALL):
            message = re.sub(pattern, replacement, message, flags=re.DOTALL)
            break
    message = message.rstrip(".")
    if hint and message.startswith("Unknown argument"):
        message += f"; {hint}"
    return f"{message[:1].upper()}{message[1:]}."


def first_paragraph(doc: str | None) -> str:
    """A module docstring's first paragraph as one line: a `--help` description that is never cut short."""
    return " ".join((doc or "").split("\n\n")[0].split())


class _Once(argparse.Action):
    """Stores a flag that names what a command acts on (`--source`, `--target`) and refuses it given
    twice: argparse would keep the last silently, and someone who gave two targets expects both."""

    def __call__(
        self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, value: Any, *_: Any
    ) -> None:
        if getattr(namespace, self.dest, None) is not None:
            raise argparse.ArgumentError(self, f"given more than once; `{parser.prog}` takes one")
        setattr(namespace, self.dest, value)


ONCE = ("source", "target")
"""The knobs a command takes once (`_Once`), unless it names them `repeated` (`status --target`)."""


_METAVARS: dict[Callable[[str], Any], str] = {
    parse_size: "SIZE",
    parse_float: "SECONDS",
    parse_int: "N",
    parse_duration: "DURATION",
}
"""What `--help` shows as a knob's value, by its parser (else: the knob's name)."""


class CommandParser(argparse.ArgumentParser):
    """argparse whose usage errors raise UserError (one sentence, exit 2) instead of printing usage and
    exiting, and which knows the knobs its command takes."""

    def __init__(
        self, *args: Any, knobs: Collection[str] = (), repeated: Collection[str] = (), **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.knobs: list[str] = []
        self.add_knobs(knobs, repeated)

    def error(self, message: str) -> NoReturn:
        raise UserError(sentence(message, hint=f"see `{self.prog} --help`"))

    def add_knobs(self, names: Collection[str], repeated: Collection[str] = ()) -> None:
        """Take the knobs `names` (in KNOBS order): a flag each (environment-only knobs have none),
        defaulting to None so that `config` fills it from the environment. A knob `repeated` may be
        given several times (a list of its values); one of ONCE otherwise only once."""
        for knob in KNOBS:
            if knob.name not in names or knob.name in self.knobs:
                continue
            self.knobs.append(knob.name)
            if knob.flag is None:
                continue
            default = default_text(knob)
            default = default if default in (None, "required") else f"default {default}"
            help_text = f"{knob.help}{f' ({default})' if default else ''} [env {knob.env}]"
            if knob.parse is None:
                self.add_argument(
                    knob.flag, dest=knob.name, action="store_const", const="true", help=help_text
                )
            else:
                metavar = _METAVARS.get(knob.parse, knob.name.upper())
                metavar = "{" + ",".join(knob.choices) + "}" if knob.choices else metavar
                action = "append" if knob.name in repeated else _Once if knob.name in ONCE else "store"
                self.add_argument(knob.flag, dest=knob.name, metavar=metavar, help=help_text, action=action)

    def reword(self, name: str, text: str) -> None:
        """Say what the knob `name` means to this command (`list` and `status` read a VM's prefix too),
        keeping its environment variable in the help."""
        action = next(a for a in self._actions if a.dest == name)
        action.help = f"{text} [env {next(k.env for k in KNOBS if k.name == name)}]"

    def config(
        self,
        args: argparse.Namespace,
        env: Mapping[str, str] | None = None,
        *,
        required: Collection[str] = ("target",),
    ) -> Config:
        """The validated Config of this command's knobs: the flags in `args`, then `env` (default
        os.environ), then the defaults; `required` must be set."""
        given = {name: getattr(args, name, None) for name in self.knobs}
        return read(given, env, names=self.knobs, required=required)
