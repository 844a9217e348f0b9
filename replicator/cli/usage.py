"""Usage errors in the one style every command prints: `<prog>: error: <Sentence>.`, exit 2, no usage dump.

argparse's own messages ("argument --keep: invalid int value: 'x'") start lowercase, name argparse's
idea of the problem and come after a usage block that hides them; `sentence` rewrites the common ones
the way replicator.settings.config phrases its own, and `UsageParser` prints them in the house style.
"""

from __future__ import annotations

import argparse
import re
import sys
from typing import NoReturn

from replicator.core.errors import EXIT_USAGE

_REWRITES: tuple[tuple[str, str], ...] = (
    (r"argument (\S+): invalid int value: (.*)", r"\1: expected a whole number; got \2"),
    (r"argument (\S+): invalid float value: (.*)", r"\1: expected a number; got \2"),
    (
        r"argument (\S+): expected one argument",
        r"\1 needs a value (one that starts with '-' takes the = form: \1=-5)",
    ),
    (r"argument (\S+): (.*)", r"\1: \2"),
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


class UsageParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line in the house style (exit 2), without the usage block."""

    def error(self, message: str) -> NoReturn:
        from replicator.observe.jsonlog import (
            failure,  # here: jsonlog is imported by config, which imports this
        )

        failure(self.prog, "bad input", sentence(message, hint=f"see `{self.prog} --help`"), EXIT_USAGE)
        sys.exit(EXIT_USAGE)
