"""The ARM pipeline's retry (source.arm_retry): azure-core's policy with the project's budget, and each
wait said in one `arm_retry` event, with an answer or without one."""

from __future__ import annotations

import json
import logging

import pytest
from azure.core.exceptions import ServiceRequestError
from azure.core.pipeline.policies import RequestHistory
from azure.core.rest import HttpRequest

from replicator.source.arm_retry import ARM_RETRIES, LoggedArmRetry


class Transport:
    """Records the waits instead of sleeping."""

    def __init__(self) -> None:
        self.slept: list[float] = []

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)


def test_every_cause_has_the_budget_the_runbook_states() -> None:
    settings = LoggedArmRetry().configure_retries({})
    assert (settings["status"], settings["connect"], settings["read"]) == (ARM_RETRIES,) * 3


async def test_a_wait_after_no_answer_is_said(caplog: pytest.LogCaptureFixture) -> None:
    policy, transport = LoggedArmRetry(), Transport()
    settings = policy.configure_retries({})
    url = "https://management.example/subscriptions/s/providers/Microsoft.Compute/disks?api-version=1"
    for _ in range(2):
        settings["history"].append(
            RequestHistory(HttpRequest("GET", url), error=ServiceRequestError("refused"))
        )
    with caplog.at_level(logging.WARNING, logger="replicator.events"):
        await policy.sleep(settings, transport)
    (record,) = [json.loads(r.getMessage()) for r in caplog.records if r.name == "replicator.events"]
    assert record["event"] == "arm_retry" and "status" not in record
    assert record["request"] == "GET /subscriptions/s/providers/Microsoft.Compute/disks"
    assert (record["retry"], record["delay_seconds"]) == (2, 1.6)  # azure-core's 0.8 s doubling
    assert "no answer from ARM (ServiceRequestError: refused)" in record["message"]
    assert transport.slept == [1.6]
