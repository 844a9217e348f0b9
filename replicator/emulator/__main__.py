"""`python -m replicator.emulator ...` is `replicate emulator ...` (handy when the CLI is not installed)."""

import sys

from replicator.emulator.server import main

sys.exit(main(sys.argv[1:]))
