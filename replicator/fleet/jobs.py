"""Jobs of unattended runs: which source/target pairs to replicate, and running one of them.

A job is one `replicate --source S --target T`; every other knob comes from the environment (the
Functions app settings, or a worker's environment), exactly as for the command line
(replicator.settings.knobs.KNOBS, read by replicator.settings.config.read).

Where the jobs come from (`load_jobs`), both may be set and are concatenated:

- `REPLICATOR_JOBS`: an explicit list, a JSON array of `{"source": ..., "target": ...}` objects; a
  source may be a disk, a snapshot or a virtual machine (whose target is a prefix:
  replicator.engine.vm_run).
- `REPLICATOR_DISCOVER`: a subscription (`/subscriptions/<id>`) or resource group
  (`/subscriptions/<id>/resourceGroups/<rg>`) whose managed disks and virtual machines are listed;
  every one carrying the tag `REPLICATOR_TARGET_TAG` (default `replicator-target`) is a job whose
  target is the tag's value. For a disk, a value ending in `/` names a container: the blob is
  `<disk name>.vhd` in it; for a VM, the value is its prefix, and one ending in `/` gets the VM's
  name as a folder (`<value><vm name>`), so one tag value serves many VMs. A disk of a tagged VM is
  replicated with the VM; tagging the disk too replicates it twice, into two targets.

`run_job` runs one job and turns every way it can end into an `Outcome` (never raises for a
ReplicatorError): a fleet needs to know whether to delete a message, retry it, defer it or poison it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from azure.core.exceptions import HttpResponseError

from replicator.core.errors import (
    EXIT_FAILED,
    EXIT_OK,
    ReplicatorError,
    UserError,
    status_of,
)
from replicator.core.messages import describe
from replicator.core.progress import Fanout, SnapshotResult
from replicator.engine.run import replicate
from replicator.engine.time_budget import Budget, BudgetSpent
from replicator.observe import metrics
from replicator.observe.jsonlog import event
from replicator.observe.progress_log import LogProgress, reported
from replicator.plumbing import credentials
from replicator.settings.config import PUBLIC_ARM_ENDPOINT, read

log = logging.getLogger(__name__)

JOBS_ENV = "REPLICATOR_JOBS"
DISCOVER_ENV = "REPLICATOR_DISCOVER"
TARGET_TAG_ENV = "REPLICATOR_TARGET_TAG"
DEFAULT_TARGET_TAG = "replicator-target"


@dataclass(frozen=True)
class JobSpec:
    """One source (disk, snapshot or VM ID) and its target (a page blob URL; a VM's: a prefix)."""

    source: str
    target: str

    def to_json(self) -> str:
        return json.dumps({"source": self.source, "target": self.target}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str | bytes) -> JobSpec:
        """Parse a queue message or a list entry; UserError (never retried) when it is not a job."""
        try:
            doc = json.loads(text)
            return cls._from(doc)
        except (ValueError, TypeError) as exc:
            raise UserError(f"not a replication job: {str(exc)[:200]}") from None

    @classmethod
    def _from(cls, doc: Any) -> JobSpec:
        if not (
            isinstance(doc, dict)
            and isinstance(doc.get("source"), str)
            and isinstance(doc.get("target"), str)
        ):
            raise ValueError('expected {"source": "<disk ID>", "target": "<page blob URL>"}')
        return cls(doc["source"], doc["target"])


def jobs_from_setting(text: str) -> list[JobSpec]:
    """`REPLICATOR_JOBS`: a JSON array of {"source", "target"} objects."""
    try:
        doc = json.loads(text)
        if not isinstance(doc, list):
            raise ValueError("expected a JSON array")
        return [JobSpec._from(item) for item in doc]
    except (ValueError, TypeError) as exc:
        raise UserError(
            f"{JOBS_ENV} is not a JSON array of source/target objects: {str(exc)[:200]}"
        ) from None


def _scope(text: str) -> tuple[str, str | None]:
    parts = [p for p in text.strip().split("/") if p]
    if len(parts) == 2 and parts[0].lower() == "subscriptions":
        return parts[1], None
    if len(parts) == 4 and parts[0].lower() == "subscriptions" and parts[2].lower() == "resourcegroups":
        return parts[1], parts[3]
    raise UserError(
        f"{DISCOVER_ENV} must be /subscriptions/<id> or /subscriptions/<id>/resourceGroups/<name>; "
        f"got {text!r}."
    )


def target_for(disk_name: str, tag_value: str) -> str:
    """The target named by a disk's tag: a blob URL, or a container URL (ending in /) + <disk>.vhd."""
    value = tag_value.strip()
    return f"{value}{disk_name}.vhd" if value.endswith("/") else value


def vm_target_for(vm_name: str, tag_value: str) -> str:
    """The target prefix named by a VM's tag: the value, or (ending in /) a folder of the VM's name."""
    value = tag_value.strip()
    return f"{value}{vm_name}" if value.endswith("/") else value


async def discover(scope: str, tag: str, env: Mapping[str, str]) -> list[JobSpec]:
    """The disks and VMs of `scope` (subscription or resource group) tagged `tag`, each a job to its
    tag's target."""
    from azure.mgmt.compute.aio import ComputeManagementClient

    subscription, group = _scope(scope)
    endpoint = credentials.check_arm_endpoint(
        env.get("REPLICATOR_ARM_ENDPOINT", PUBLIC_ARM_ENDPOINT), allow_http=False
    )
    # The token comes from `env` like the endpoint: both from one place (the app settings).
    settings = SimpleNamespace(allow_http=False, access_token=env.get(credentials.ACCESS_TOKEN_ENV) or None)
    jobs: list[JobSpec] = []
    async with (
        credentials.async_credential(settings) as credential,
        ComputeManagementClient(
            credential,
            subscription,
            base_url=endpoint,
            credential_scopes=[credentials.arm_scope(endpoint)],
            **credentials.transport_kwargs(),
        ) as compute,
    ):
        disks = compute.disks.list_by_resource_group(group) if group else compute.disks.list()
        async for disk in disks:
            if wanted := _tagged(disk.tags, tag):
                jobs.append(JobSpec(disk.id, target_for(disk.name, wanted)))
        vms = compute.virtual_machines.list(group) if group else compute.virtual_machines.list_all()
        try:
            async for vm in vms:
                if wanted := _tagged(vm.tags, tag):
                    jobs.append(JobSpec(vm.id, vm_target_for(vm.name, wanted)))
        except HttpResponseError as err:
            if err.status_code != 403:
                raise
            # An identity made for disks only (disks/read): its disk jobs go on, and it is told why
            # no VM is found.
            log.warning(
                "%s: the identity may not list virtual machines (%s); tagged VMs are not discovered: "
                "give it Microsoft.Compute/virtualMachines/read there",
                scope,
                describe(err),
            )
    return jobs


def _tagged(tags: Mapping[str, str] | None, tag: str) -> str | None:
    """The value of the tag `tag` (ARM tag names ignore case)."""
    return {k.lower(): v for k, v in (tags or {}).items()}.get(tag.lower())


async def load_jobs(env: Mapping[str, str] | None = None) -> list[JobSpec]:
    """The jobs the app settings name: the explicit list, then the discovered disks."""
    env = os.environ if env is None else env
    jobs = jobs_from_setting(env[JOBS_ENV]) if env.get(JOBS_ENV) else []
    if env.get(DISCOVER_ENV):
        jobs += await discover(env[DISCOVER_ENV], env.get(TARGET_TAG_ENV) or DEFAULT_TARGET_TAG, env)
    if not env.get(JOBS_ENV) and not env.get(DISCOVER_ENV):
        raise UserError(f"no jobs configured: set {JOBS_ENV} or {DISCOVER_ENV}.")
    return jobs


@dataclass
class Outcome:
    """How one job ended: replicated, nothing new, incomplete, locked, limited, bad input or failed."""

    job: JobSpec
    run_id: str
    status: str
    exit_code: int
    seconds: float = 0.0
    copied_bytes: int = 0
    snapshots: list[SnapshotResult] = field(default_factory=list)
    error: str | None = None
    position: str | None = None  # where an incomplete run stopped (BudgetSpent.position)

    @property
    def done(self) -> bool:
        """Nothing left to do for this job until the source gets a new snapshot."""
        return self.exit_code == EXIT_OK


async def run_job(
    job: JobSpec,
    env: Mapping[str, str] | None = None,
    *,
    budget: Budget | None = None,
    run_id: str | None = None,
    command: str,
) -> Outcome:
    """Replicate one job with the knobs of `env` (default os.environ); every ending becomes an Outcome.

    `command` names the runner (`worker`, `timer`, `queue`) in the run's metrics (replicator.observe.metrics),
    which are recorded and flushed on every ending.
    """
    env = os.environ if env is None else env
    run_id = run_id or uuid.uuid4().hex
    progress = LogProgress(run_id=run_id, disk=job.source, target=job.target)
    meter = metrics.RunMeter(command, job.source, job.target)
    started = time.monotonic()
    event("job_start", run_id=run_id, disk=job.source, target=job.target)
    try:
        config = read({"source": job.source, "target": job.target}, env)
        work = replicate(config, Fanout(progress, meter), budget or Budget(config.time_budget_seconds))
        result = await reported(work, progress, config.progress_seconds)
        outcome = Outcome(job, run_id, result.status, EXIT_OK)
    except ReplicatorError as err:
        status = status_of(err)
        outcome = Outcome(job, run_id, status, err.exit_code, error=describe(err))
        outcome.position = err.position if isinstance(err, BudgetSpent) else None
    except Exception as err:  # a fleet must survive one job's surprise, and report it
        log.debug("unexpected failure", exc_info=True)
        outcome = Outcome(job, run_id, "failed", EXIT_FAILED, error=describe(err))
    outcome.seconds = round(time.monotonic() - started, 3)
    outcome.snapshots = progress.committed()
    outcome.copied_bytes = sum(s.copied_bytes for s in outcome.snapshots)
    event(
        "job_done",
        logging.WARNING if outcome.status == "failed" else logging.INFO,
        run_id=run_id,
        disk=job.source,
        target=job.target,
        snapshots=[s.snapshot_id for s in outcome.snapshots],
        bytes=outcome.copied_bytes,
        seconds=outcome.seconds,
        outcome=outcome.status,
        exit_code=outcome.exit_code,
        error=outcome.error,
    )
    await asyncio.to_thread(meter.finish, outcome.status)  # a bounded wait, off the event loop
    return outcome
