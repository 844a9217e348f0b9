"""`--queue URL` of `replicate worker` and `replicate enqueue`: one flag, one variable, one sentence."""

from __future__ import annotations

import argparse
import os

from replicator.core.errors import UserError
from replicator.fleet.queue import QUEUE_URL_ENV


def add_queue_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--queue", default=os.environ.get(QUEUE_URL_ENV), help=f"queue URL [env {QUEUE_URL_ENV}]"
    )


def queue_url(args: argparse.Namespace) -> str:
    """The queue the command works on; bad input (exit 2) when neither the flag nor the variable gives one."""
    if not args.queue:
        raise UserError(f"--queue (or {QUEUE_URL_ENV}) is required.")
    return str(args.queue)
