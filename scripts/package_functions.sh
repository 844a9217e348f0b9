#!/usr/bin/env bash
# Stage the Functions app for `func azure functionapp publish`: functions/ plus the replicator package.
# Usage: scripts/package_functions.sh [OUT_DIR]   (default: build/functions)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
out="${1:-$root/build/functions}"
rm -rf "$out" && mkdir -p "$out"
cp "$root"/functions/function_app.py "$root"/functions/host.json "$root"/functions/requirements.txt "$out"/
cp -r "$root/replicator" "$out/replicator"
find "$out" -name __pycache__ -prune -exec rm -rf {} +
echo "staged in $out: cd there and run: func azure functionapp publish <app> --python"
