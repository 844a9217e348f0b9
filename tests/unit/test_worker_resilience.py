"""An unattended worker survives transient queue failures (receive, extend, settle), with fakes."""

from __future__ import annotations

import asyncio
import json
import logging
from types import SimpleNamespace
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError, ServiceRequestError, ServiceResponseError

from replicator.core.errors import EXIT_OK, ReplicationError, UserError
from replicator.fleet import queue as fleet_queue
from replicator.fleet import worker
from replicator.fleet.jobs import JobSpec, Outcome
from replicator.fleet.queue import FleetQueue

SUBSCRIPTION = "/subscriptions/00000000-0000-0000-0000-000000000001"
DISK = f"{SUBSCRIPTION}/resourceGroups/rg/providers/Microsoft.Compute/disks/d"
TARGET = "https://acct.blob.core.windows.net/c/d.vhd"


def http_error(status: int) -> HttpResponseError:
    exc = HttpResponseError(f"status {status}")
    exc.status_code = status
    return exc


class FakeQueueClient:
    """A QueueClient whose calls fail as scripted: each name maps to exceptions raised before success."""

    def __init__(self, messages: list[Any], failures: dict[str, list[BaseException]] | None = None) -> None:
        self.messages = messages
        self.failures = failures or {}
        self.calls: dict[str, int] = {}
        self.sent: list[str] = []

    def _call(self, name: str) -> None:
        self.calls[name] = self.calls.get(name, 0) + 1
        script = self.failures.get(name)
        if script:
            raise script.pop(0)

    async def receive_message(self, **_: Any) -> Any:
        self._call("receive_message")
        return self.messages.pop(0) if self.messages else None

    async def update_message(self, message: Any, **_: Any) -> Any:
        self._call("update_message")
        return message

    async def delete_message(self, message: Any, **_: Any) -> None:
        self._call("delete_message")

    async def send_message(self, body: str, **_: Any) -> None:
        self._call("send_message")
        self.sent.append(body)


def message(target: str = TARGET) -> SimpleNamespace:
    body = json.dumps({"source": DISK, "target": target})
    return SimpleNamespace(id="m1", content=body, dequeue_count=1, pop_receipt="p")


def make_worker(jobs: FakeQueueClient, *, visibility: int = 120) -> tuple[worker.Worker, FakeQueueClient]:
    queue = FleetQueue("https://acct.queue.core.windows.net/jobs?sv=1&sig=x")
    queue.jobs, queue.poison = jobs, FakeQueueClient([])  # type: ignore[assignment]
    return worker.Worker(queue, {}, visibility=visibility), queue.poison  # type: ignore[return-value]


@pytest.fixture(autouse=True)
def fast_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fleet_queue, "QUEUE_BACKOFF_SECONDS", 0.001)


class Jobs(list[JobSpec]):
    """The jobs the fake run_job ran; each takes `seconds`."""

    seconds = 0.0


@pytest.fixture
def ran(monkeypatch: pytest.MonkeyPatch) -> Jobs:
    """run_job replaced by a job that takes `ran.seconds` and succeeds."""
    done = Jobs()

    async def run_job(job: JobSpec, env: Any, *, budget: Any, command: str) -> Outcome:
        assert command == "worker"  # the runner's name in the run's metrics
        await asyncio.sleep(done.seconds)
        done.append(job)
        return Outcome(job, "run", "replicated", EXIT_OK)

    monkeypatch.setattr(worker, "run_job", run_job)
    return done


def events(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    return [json.loads(r.getMessage()) for r in caplog.records if r.name == "replicator.events"]


async def test_transient_receive_errors_are_retried_and_logged(ran, caplog) -> None:
    caplog.set_level(logging.INFO, "replicator")
    errors = [ServiceRequestError("reset"), ServiceResponseError("cut"), TimeoutError(), http_error(503)]
    jobs = FakeQueueClient([message()], {"receive_message": [*errors, None]})
    jobs.failures["receive_message"].pop()  # the fifth receive succeeds
    w, _ = make_worker(jobs)
    await w.run(idle_exit=0, max_jobs=None)
    assert [j.source for j in ran] == [DISK] and jobs.calls["delete_message"] == 1
    retries = [e for e in events(caplog) if e["event"] == "queue_retry"]
    assert [(e["operation"], e["error"]) for e in retries] == [
        ("receive", "ServiceRequestError"),
        ("receive", "ServiceResponseError"),
        ("receive", "TimeoutError"),
        ("receive", "HttpResponseError"),
    ]
    assert all(e["retry_in"] <= fleet_queue.QUEUE_BACKOFF_MAX_SECONDS for e in retries)


async def test_a_refusing_queue_is_one_sentence(ran) -> None:
    w, _ = make_worker(FakeQueueClient([], {"receive_message": [http_error(403)]}))
    with pytest.raises(ReplicationError, match=r"the queue jobs refused to hand out messages \(403"):
        await w.run(idle_exit=0, max_jobs=None)


async def test_failing_visibility_extension_does_not_stop_the_job(ran, caplog) -> None:
    caplog.set_level(logging.INFO, "replicator")
    ran.seconds = 0.5
    jobs = FakeQueueClient([message()], {"update_message": [ServiceRequestError("down")] * 100})
    w, _ = make_worker(jobs, visibility=1)
    await w.run(idle_exit=0, max_jobs=1)
    assert len(ran) == 1 and jobs.calls["delete_message"] == 1
    assert jobs.calls["update_message"] >= 2  # kept trying while the job ran
    assert {(e["operation"], e["error"]) for e in events(caplog) if e["event"] == "queue_retry"} == {
        ("extend", "ServiceRequestError")
    }


async def test_lost_visibility_is_logged_and_the_job_runs_on(ran, caplog) -> None:
    caplog.set_level(logging.INFO, "replicator")
    ran.seconds = 0.5
    jobs = FakeQueueClient([message()], {"update_message": [http_error(404)]})
    w, _ = make_worker(jobs, visibility=1)
    await w.run(idle_exit=0, max_jobs=1)
    assert len(ran) == 1 and jobs.calls["update_message"] == 1
    assert [e["status"] for e in events(caplog) if e["event"] == "visibility_lost"] == [404]


async def test_settling_that_keeps_failing_leaves_the_message_and_goes_on(ran, caplog) -> None:
    caplog.set_level(logging.INFO, "replicator")
    jobs = FakeQueueClient([message(), message()], {"delete_message": [ServiceResponseError("cut")] * 100})
    w, _ = make_worker(jobs)
    await w.run(idle_exit=0, max_jobs=None)
    assert len(ran) == 2 and jobs.calls["delete_message"] == 2 * fleet_queue.SETTLE_ATTEMPTS
    unsettled = [e for e in events(caplog) if e["event"] == "message_unsettled"]
    assert [(e["action"], e["error"]) for e in unsettled] == [("delete", "ServiceResponseError")] * 2


async def test_a_queued_sas_target_is_poisoned_masked_and_never_run(ran) -> None:
    secret = "c2VjcmV0LXNpZw%3D%3D"
    jobs = FakeQueueClient([message(f"{TARGET}?sv=2025-01-05&sr=b&sp=rcw&sig={secret}")])
    w, poison = make_worker(jobs)
    await w.run(idle_exit=0, max_jobs=None)
    assert ran == [] and jobs.calls["delete_message"] == 1 and jobs.sent == []
    [parked] = [json.loads(body) for body in poison.sent]
    assert secret not in json.dumps(parked) and parked["job"]["target"].startswith(TARGET)
    assert "carries a SAS" in parked["error"]


async def test_enqueue_refuses_sas_targets_before_sending_anything() -> None:
    queue = FleetQueue("https://acct.queue.core.windows.net/jobs?sv=1&sig=x")
    queue.jobs = sent = FakeQueueClient([])  # type: ignore[assignment]
    jobs = [JobSpec(DISK, TARGET), JobSpec(DISK, f"{TARGET}?sv=1&sig=s3cr3t")]
    with pytest.raises(UserError, match="carries a SAS") as err:
        await fleet_queue.enqueue(queue, jobs)
    assert "s3cr3t" not in str(err.value) and sent.sent == [] and "receive_message" not in sent.calls
