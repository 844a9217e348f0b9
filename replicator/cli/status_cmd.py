"""`replicate status [--target URL ...] --max-age DURATION [--json]`: how old is each DR copy?

The library is replicator.fleet.status (which targets, reading them) and replicator.core.freshness (verdicts,
table); this module parses, prints, and returns the worst verdict's exit code.
"""

from __future__ import annotations

import argparse
import os
import textwrap

from replicator.cli import shell
from replicator.core.freshness import (
    EXIT_CODES,
    render,
    summary,
    worst,
)
from replicator.fleet.jobs import DISCOVER_ENV, JOBS_ENV
from replicator.fleet.status import (
    MAX_AGE_ENV,
    STATUS_KNOBS,
    check,
    max_age,
)

DESCRIPTION = (
    "Say how current each replica is: per target the newest restore point and its source snapshot, "
    "the lag (the RPO held now), the source's newest snapshot and whether it is replicated, a run in "
    "progress, the lease, the disk's snapshots against 500 and active SAS grants against 5, and a "
    "verdict (a VM's prefix: by its newest complete group). Reads only: no lease, no grant, no write. "
    f"The targets: every --target given, else every job of {JOBS_ENV} and {DISCOVER_ENV}."
)

EPILOG = f"""\
verdicts (the first that applies):
  unknown      the target or its source disk could not be read (the error's sentence)
  unprotected  no restore point, or the source disk has no incremental snapshot
  stale        the lag exceeds --max-age, or a run stopped part-way and nothing has
               written the target for longer than --max-age
  fresh        the lag is within --max-age

exit codes (the worst target decides; a confirmed problem outranks an unreadable target):
  4 any target unprotected; else 5 any stale; else 1 any unknown; else 0 every target fresh.
  2 bad input (a bad --max-age or target URL, no targets configured): nothing was read.

--max-age has no default: only you know the RPO you promised ({MAX_AGE_ENV} in the environment).
"""


async def _status(invocation: shell.Invocation) -> shell.CommandResult:
    p = invocation.parser(textwrap.fill(DESCRIPTION, 79), knobs=STATUS_KNOBS, repeated=("target",))
    p.epilog, p.formatter_class = EPILOG, argparse.RawDescriptionHelpFormatter
    p.reword(  # the common knob's help says "(required)"; here it is optional, and repeated
        "target",
        "URL of a target page blob, or a VM's prefix (a container, or a folder in it, holding its group "
        "manifests); a SAS in it is honoured. Give it several times for several targets; without it, "
        f"every job of {JOBS_ENV} and {DISCOVER_ENV}.",
    )
    p.add_argument(
        "--max-age",
        metavar="DURATION",
        help="The oldest a replica may be and still be fresh: 26h, 90m, 2d, 1d12h or seconds. "
        f"(required) [env {MAX_AGE_ENV}]",
    )
    args = p.parse_args(invocation.argv)
    named = list(dict.fromkeys(args.target or ()))  # every --target, in order, each once
    args.target = named[0] if len(named) == 1 else None  # several: checked by `check`, not by Config
    env = os.environ
    seconds = max_age(args.max_age, env)
    config = shell.configure(p, args, env, required=())
    checked = await check(config, seconds, env, named)
    verdict = worst([c.judgement.verdict for c in checked])

    def show() -> None:
        for line in render(checked, seconds):
            print(line)

    payload = {"max_age_seconds": seconds, "targets": [c.to_json() for c in checked]}
    return shell.CommandResult(config.json, verdict, payload, show, EXIT_CODES[verdict], summary(checked))


def main(argv: list[str]) -> int:
    return shell.run("status", argv, _status)
