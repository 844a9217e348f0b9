#!/usr/bin/env bash
# The benchmark: set up (no Node.js needed), install the chart library, run every scenario and
# contender against the embedded emulator, write docs/benchmarks.md and docs/benchmarks.png.
# Any `replicate bench` argument works (e.g. --scenarios idle --latencies 20).
set -euo pipefail
cd "$(dirname "$0")/.."
REPLICATOR_SKIP_NODE=1 ./scripts/setup.sh
if ! .venv/bin/python -c 'import matplotlib' 2>/dev/null; then
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[bench]'
fi
exec .venv/bin/python -m replicator.cli.main bench "$@"
