"""`replicate status [--target URL] --max-age DURATION [--json]`: how old is each DR copy?

The library is replicator.status (reading) and replicator.freshness (verdicts, table); this module
parses, picks the targets (one `--target`, else every job of REPLICATOR_JOBS / REPLICATOR_DISCOVER),
prints, and returns the worst verdict's exit code.
"""

from __future__ import annotations

import argparse
import os
import textwrap
from collections.abc import Mapping

from replicator.errors import UserError
from replicator.freshness import EXIT_CODES, parse_duration, render, summary, worst
from replicator.jobs import DISCOVER_ENV, JOBS_ENV, JobSpec, load_jobs
from replicator.restore_cli import Outcome, load, parser, run
from replicator.status import survey

MAX_AGE_ENV = "REPLICATOR_MAX_AGE"

DESCRIPTION = (
    "Say how current each replica is: per target the newest restore point and its source snapshot, "
    "the lag (the RPO held now), the source's newest snapshot and whether it is replicated, a run in "
    "progress, the lease, the disk's snapshots against 500 and active SAS grants against 5, and a "
    "verdict. Reads only: no lease, no grant, no write. Without --target: every job of "
    f"{JOBS_ENV} and {DISCOVER_ENV}."
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


def max_age(raw: str | None, env: Mapping[str, str]) -> float:
    """Seconds of --max-age, else of REPLICATOR_MAX_AGE; UserError (exit 2) when missing or malformed.

    Required, with no default: a default would judge every replica against an RPO nobody chose, and
    a probe that is green against the wrong RPO is the silent failure this command exists to end.
    """
    origin = "--max-age"
    if raw is None and env.get(MAX_AGE_ENV):
        raw, origin = env[MAX_AGE_ENV], f"{MAX_AGE_ENV} (environment variable)"
    if raw is None:
        raise UserError(
            f"--max-age is required (or set {MAX_AGE_ENV}): the oldest a replica may be and still count as "
            "fresh, e.g. 26h for a daily schedule."
        )
    try:
        return parse_duration(raw)
    except ValueError as exc:
        raise UserError(f"{origin}: {exc}.") from None


async def _jobs(config_target: str, env: Mapping[str, str]) -> list[JobSpec]:
    if config_target:
        return [JobSpec("", config_target)]
    if not env.get(JOBS_ENV) and not env.get(DISCOVER_ENV):
        raise UserError(
            f"nothing to check: give --target (or REPLICATOR_TARGET), or set {JOBS_ENV} or {DISCOVER_ENV} "
            "for a fleet."
        )
    jobs = await load_jobs(env)
    if not jobs:
        raise UserError(f"nothing to check: {DISCOVER_ENV} found no disk carrying the target tag.")
    return jobs


async def _status(argv: list[str]) -> Outcome:
    p = parser("status", textwrap.fill(DESCRIPTION, 79))
    p.epilog, p.formatter_class = EPILOG, argparse.RawDescriptionHelpFormatter
    for action in p._actions:  # the common knob's help says "(required)"; here it is optional
        if action.dest == "target":
            action.help = (
                f"URL of the target page blob (a SAS in it is honoured); without it, every job of {JOBS_ENV} "
                f"and {DISCOVER_ENV}. [env REPLICATOR_TARGET]"
            )
    p.add_argument(
        "--max-age",
        metavar="DURATION",
        help="The oldest a replica may be and still be fresh: 26h, 90m, 2d, 1d12h or seconds. "
        f"(required) [env {MAX_AGE_ENV}]",
    )
    args = p.parse_args(argv)
    env = os.environ
    seconds = max_age(args.max_age, env)
    config = load(args, env, require_target=False)
    checked = await survey(config, await _jobs(config.target, env), seconds)
    verdict = worst([c.judgement.verdict for c in checked])

    def show() -> None:
        for line in render(checked, seconds):
            print(line)

    payload = {"max_age_seconds": seconds, "targets": [c.to_json() for c in checked]}
    return Outcome(config.json, verdict, payload, show, EXIT_CODES[verdict], summary(checked))


def main(argv: list[str]) -> int:
    return run("status", argv, _status)
