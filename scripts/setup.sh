#!/usr/bin/env bash
# Sets up everything the project needs on a machine with only Python 3.11+, Node.js and npm:
# a virtual environment in .venv with the package and its test dependencies, and the Node test tools
# pinned in package.json / package-lock.json (Azurite, and @azure/storage-blob for the cross-client
# test) in ./node_modules. Idempotent: a second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "setup: Python 3.11 or newer is needed as '$PYTHON' (set PYTHON=/path/to/python3.11)." >&2
  exit 2
fi

stamp=.venv/.installed
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
# Reinstall only when the dependency list changed, so repeated runs stay fast.
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
  touch "$stamp"
fi

if [ "${REPLICATOR_SKIP_NODE:-0}" != 1 ]; then
  if ! command -v npm >/dev/null 2>&1; then
    echo "setup: npm is needed to install the Node test tools (install Node.js 20+ and npm)." >&2
    exit 2
  fi
  if [ ! -x node_modules/.bin/azurite-blob ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
    npm ci --no-audit --no-fund --silent
  fi
fi
