"""Several replications at once from one process: the library entry the fleet benchmark needs.

`python -m replicator.devtools.bench.concurrent JOBS.json` where the file holds
`{"jobs": [[source, target], ...], "args": [extra flags for every job]}`; each job is a
`pipeline.replicate(config)` and all run concurrently in one event loop. Prints one JSON document:
`{"runs": [RunResult.to_json(), ...]}`. Exit 1 when any job failed.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from replicator.cli import replicate_cmd
from replicator.core.progress import RunResult
from replicator.engine.pipeline import replicate
from replicator.settings.config import Config


async def replicate_all(configs: list[Config]) -> list[RunResult]:
    """Run every replication concurrently; the first failure propagates after the others finish."""
    return list(await asyncio.gather(*(replicate(c) for c in configs)))


def main(argv: list[str]) -> int:
    spec = json.loads(Path(argv[0]).read_text())
    configs = [
        replicate_cmd.load(["--source", source, "--target", target, *spec.get("args", [])])
        for source, target in spec["jobs"]
    ]
    runs = asyncio.run(replicate_all(configs))
    print(json.dumps({"runs": [r.to_json() for r in runs]}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
