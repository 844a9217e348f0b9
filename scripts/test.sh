#!/usr/bin/env bash
# The whole test suite from a fresh clone: sets up (scripts/setup.sh), checks style (ruff), then runs
# pytest. The tests start what they need themselves (the emulator, Azurite) on free loopback ports
# and stop it at the end. Extra arguments go to pytest, e.g. `scripts/test.sh -m slow` for the
# slow fault campaign, or `scripts/test.sh tests/unit`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export PATH="$PWD/node_modules/.bin:$PATH"
.venv/bin/ruff check replicator tests scripts
.venv/bin/ruff format --check replicator tests scripts
exec .venv/bin/python -m pytest -q -p no:cacheprovider "$@"
