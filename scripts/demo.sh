#!/usr/bin/env bash
# The demo from a fresh clone: sets up (scripts/setup.sh, without Node tools: the demo needs no
# Azurite), then `replicate demo`: the embedded emulator, a 64 GiB disk, a full copy and a diff,
# both restore points verified byte-for-byte. Leaves nothing running. Arguments go to
# `replicate demo` (see `replicate demo --help`).
set -euo pipefail
cd "$(dirname "$0")/.."
REPLICATOR_SKIP_NODE=1 scripts/setup.sh
exec .venv/bin/replicate demo "$@"
