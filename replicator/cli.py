"""Command-line entry point: parses, dispatches, prints. No replication logic lives here."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    """Dispatch `replicate <subcommand>`; the main call is `replicate --source S --target T`."""
    args = sys.argv[1:] if argv is None else argv
    if args and args[0] == "emulator":
        from replicator.emulator.server import main as emulator_main

        return emulator_main(args[1:])
    print("replicate: the replication command is not built yet", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
