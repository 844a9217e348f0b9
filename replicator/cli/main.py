"""Command-line entry point: dispatches `replicate <subcommand>` and the main call. No logic lives here.

`replicate --source S --target T [options]` is replicator.cli.replicate_cmd; `replicate list`,
`restore`, `prune`, `status`, `drill`, `worker` and `enqueue` are the `*_cmd` modules beside it, every
one run through the one shell (replicator.cli.shell: parser, configuration, signals, error -> status ->
exit code -> `--json` envelope -> one stderr sentence). `emulator`, `demo` and `bench` are dispatched
to as they are. Modules are imported only when used, so `replicate emulator` starts without the
Azure SDK.
"""

from __future__ import annotations

import importlib
import logging
import sys

from replicator.core.errors import EXIT_OK, EXIT_USAGE, UserError
from replicator.core.messages import clip
from replicator.observe import jsonlog

SUBCOMMANDS = {
    # name: module whose `main(argv: list[str]) -> int` runs it; imported only when used.
    "emulator": "replicator.emulator.server",
    "demo": "replicator.devtools.demo",
    "bench": "replicator.devtools.bench.harness",
    "worker": "replicator.cli.worker_cmd",
    "enqueue": "replicator.cli.enqueue_cmd",
    "list": "replicator.cli.list_cmd",
    "restore": "replicator.cli.restore_cmd",
    "prune": "replicator.cli.prune_cmd",
    "status": "replicator.cli.status_cmd",
    "drill": "replicator.cli.drill_cmd",
}


EPILOG = """\
subcommands (`replicate NAME --help` for each):
  list      the restore points of a target          restore   a managed disk from a restore point
  prune     delete old restore points               enqueue   put one message per job on a queue
  worker    replicate the jobs of a queue           emulator  the local Azure emulator
  demo      the demo (scripts/demo.sh)              bench     the benchmark (scripts/bench.sh)
  status    how old each replica is (--max-age; exit 0 fresh, 4 unprotected, 5 stale, 1 unknown)
  drill     restore into a scratch resource group, compare, delete, report the RTO (exit 6: differs)

credentials: DefaultAzureCredential (`az login`, a managed identity), a bearer token in
  REPLICATOR_ACCESS_TOKEN (environment only), or a SAS in --target.
TLS: a private CA (the emulator's) goes in SSL_CERT_FILE (or REQUESTS_CA_BUNDLE), exported before
  the process starts.
exit codes: 0 done: protected up to the newest snapshot (also nothing new); 1 failed, a rerun
  resumes; 2 bad input, nothing written; 3 run again later (`--json` status locked, limited or
  incomplete); 4 unprotected: no snapshot the run could replicate (never 0); 5 `status` found a
  stale target; 6 `drill` read back a disk that differs from its restore point; 130 / 143 stopped
  by SIGINT / SIGTERM after revoking grants and releasing the lease.
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
        except SystemExit as exit_:  # argparse: --help (0), or the emulator's usage error (2), printed
            return exit_.code if isinstance(exit_.code, int) else EXIT_OK
        except UserError as err:  # a usage error of `demo` or `bench` (the shell's commands report their own)
            from replicator.cli import shell

            return shell.report(args[0], args[1:], err)
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
    from replicator.cli import replicate_cmd

    return replicate_cmd.main(args, EPILOG)


if __name__ == "__main__":
    sys.exit(main())
