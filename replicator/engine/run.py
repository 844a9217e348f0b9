"""One `replicate` run of any source: a disk or a snapshot (engine.pipeline) or a virtual machine
(engine.vm_run). The one entry the CLI and the fleet call, so both treat a VM ID like a disk ID."""

from __future__ import annotations

from replicator.core import arm_ids
from replicator.core.progress import Progress, RunResult, VmRunResult
from replicator.engine import pipeline
from replicator.engine.time_budget import Budget
from replicator.engine.vm_run import replicate_vm
from replicator.settings.config import Config


def is_vm(config: Config) -> bool:
    """Whether the run's source is a virtual machine (its target then is a prefix)."""
    return arm_ids.parse_source(config.source).kind == "vm"


async def replicate(
    config: Config,
    progress: Progress | None = None,
    budget: Budget | None = None,
    vm_document: VmRunResult | None = None,
) -> RunResult | VmRunResult:
    """Replicate `config.source` into `config.target`; `vm_document` (a VM run only) is filled in as
    the run goes, so a caller has the document of a run that ends with an error too."""
    if is_vm(config):
        return await replicate_vm(config, progress, budget, vm_document)
    return await pipeline.replicate(config, progress, budget)
