"""What the shell reads of the command line before the configuration loads: enough to print a
failed load's envelope (`--json`, the target without its SAS) in the shape the command promised.

The configuration and URL modules are imported inside the functions: `replicate emulator` and
`replicate --version` start without the Azure SDK.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

from replicator.core.errors import ReplicatorError, UserError
from replicator.core.redact import redact


def flag_value(argv: Sequence[str], flag: str) -> str | None:
    """The value given to `flag` (`--flag V` or `--flag=V`) in raw `argv`; None when absent.

    Only for documents about input that failed to parse: the parser is the authority otherwise.
    """
    for i, arg in enumerate(argv):
        if arg.startswith(f"{flag}="):
            return arg.split("=", 1)[1]
        if arg == flag and i + 1 < len(argv):
            return argv[i + 1]
    return None


def target_display(argv: Sequence[str], raw: str | None = None) -> str | None:
    """The target (`raw`, else `--target` in argv, else REPLICATOR_TARGET) without its SAS, for an
    envelope; None when there is none."""
    from replicator.plumbing.urlcheck import parse_target_url  # here: `replicate emulator` skips the SDK

    raw = raw or flag_value(argv, "--target") or os.environ.get("REPLICATOR_TARGET")
    if not raw:
        return None
    try:
        return parse_target_url(raw, allow_http=True).display
    except ReplicatorError:
        return redact(raw.split("?", 1)[0])


def wants_json(argv: Sequence[str], env: Mapping[str, str]) -> bool:
    """Whether `--json` (or REPLICATOR_JSON) is asked for, known even when the rest of the config is bad."""
    from replicator.settings.knobs import knob  # here: `replicate emulator` need not import the Azure SDK

    json = knob("json")
    if json.flag in argv:
        return True
    try:
        return bool(json.from_env(env))
    except UserError:  # a bad value is reported by the config load itself
        return False
