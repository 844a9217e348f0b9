"""ARM fault rules (emulator/middleware/arm_faults.py) as the real azure-mgmt-compute client meets them:
Compute's 429, operations that end Failed and what each leaves, the control route and its counts.

A private emulator: the rules are global to it, so they never reach tests on the session emulator.
"""

from __future__ import annotations

import json
import urllib.error
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError
from azure.core.rest import HttpRequest

from replicator.devtools.disk_builder import DiskBuilder, control
from replicator.emulator.middleware.arm_faults import ArmFaultPlan
from replicator.emulator.process import EmulatorProcess

GiB = 1 << 30
FAILURE = {"code": "InternalDiskManagementError", "message": "An internal error occurred."}


@pytest.fixture(scope="module")
def faulty(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorProcess]:
    proc = EmulatorProcess(tmp_path_factory.mktemp("arm-faults"))
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture
def builder(faulty: EmulatorProcess, monkeypatch: pytest.MonkeyPatch) -> Iterator[DiskBuilder]:
    """A resource group with a disk `d` and its incremental snapshot `s1`, made before any rule."""
    for key, value in faulty.env.items():
        monkeypatch.setenv(key, value)
    rules(faulty.env)
    built = DiskBuilder(faulty.env, f"rg-{uuid.uuid4().hex[:8]}")
    built.snapshot(built.create_disk("d", GiB, "Standard_LRS"), "s1")
    yield built
    rules(faulty.env)
    built.close()


def rules(env: dict[str, str], *given: dict[str, Any]) -> dict[str, Any]:
    return control(env, "arm-faults", {"rules": list(given)})


def counts(env: dict[str, str]) -> dict[str, Any]:
    return control(env, "arm-faults")


def grant(builder: DiskBuilder, name: str = "s1") -> Any:
    return builder.compute.snapshots.begin_grant_access(
        builder.group, name, {"access": "Read", "durationInSeconds": 60}
    )


def test_a_plan_fires_its_rules_in_order_and_counts_every_request() -> None:
    plan = ArmFaultPlan()
    plan.set(
        {"rules": [{"on": "grant", "status": 429, "times": 2}, {"on": "grant", "fail_operation": FAILURE}]}
    )
    fired = [plan.fire("grant") for _ in range(4)] + [plan.fire("poll")]
    assert [r and (r.failure is None) for r in fired] == [True, True, False, None, None]
    assert plan.to_json()["requests"] == {"grant": 4, "poll": 1}
    assert [r["fired"] for r in plan.to_json()["rules"]] == [2, 1]


@pytest.mark.parametrize(
    "bad",
    [
        {"on": "resize", "status": 429},
        {"on": "grant"},
        {"on": "grant", "status": 503},
        {"on": "grant", "status": 429, "fail_operation": FAILURE},
        {"on": "grant", "status": 429, "times": 0},
        {"on": "grant", "status": 429, "retry_after": "soon"},
        {"on": "poll", "fail_operation": FAILURE},
        {"on": "grant", "fail_operation": {"code": "X"}},
        {"on": "grant", "status": 429, "colour": "red"},
    ],
)
def test_impossible_rules_are_refused_with_a_sentence(faulty: EmulatorProcess, bad: dict[str, Any]) -> None:
    with pytest.raises(urllib.error.HTTPError) as refused:
        rules(faulty.env, bad)
    assert refused.value.code == 400
    assert json.loads(refused.value.read())["error"]


def test_the_control_route_needs_the_token(faulty: EmulatorProcess) -> None:
    with pytest.raises(urllib.error.HTTPError) as refused:
        control({**faulty.env, "REPLICATOR_ACCESS_TOKEN": "wrong"}, "arm-faults")
    assert refused.value.code == 401


def test_a_throttled_grant_answers_as_compute_throttles(
    faulty: EmulatorProcess, builder: DiskBuilder
) -> None:
    rules(faulty.env, {"on": "grant", "status": 429, "retry_after": 7})
    path = (
        f"/subscriptions/{builder.subscription}/resourceGroups/{builder.group}/providers/Microsoft.Compute"
        "/snapshots/s1/beginGetAccess?api-version=2026-03-02"
    )
    request = HttpRequest("POST", path, json={"access": "Read", "durationInSeconds": 60})
    answer = builder.compute.send_request(request, retry_total=0)
    assert answer.status_code == 429 and answer.headers["Retry-After"] == "7"
    assert "Microsoft.Compute/DiskAccess3Min;0" in answer.headers["x-ms-ratelimit-remaining-resource"]
    error = answer.json()["error"]
    assert error["code"] == "OperationNotAllowed" and "too many requests" in error["message"]
    (detail,) = error["details"]
    assert (
        detail["code"] == "TooManyRequests"
        and json.loads(detail["message"])["operationGroup"] == detail["target"]
    )
    assert builder.compute.snapshots.get(builder.group, "s1").disk_state == "Unattached"  # nothing granted


def test_the_sdk_waits_out_throttled_grants_and_polls(faulty: EmulatorProcess, builder: DiskBuilder) -> None:
    rules(faulty.env, {"on": "grant", "status": 429, "times": 2}, {"on": "poll", "status": 429, "times": 2})
    assert grant(builder).result().access_sas
    seen = counts(faulty.env)
    assert seen["requests"]["grant"] == 3 and seen["requests"]["poll"] >= 3
    assert [r["fired"] for r in seen["rules"]] == [2, 2]
    builder.compute.snapshots.begin_revoke_access(builder.group, "s1").result()


def test_a_failed_grant_hands_out_no_sas(faulty: EmulatorProcess, builder: DiskBuilder) -> None:
    rules(faulty.env, {"on": "grant", "fail_operation": FAILURE})
    poller = grant(builder)
    with pytest.raises(HttpResponseError) as failed:
        poller.result()
    assert (failed.value.error.code, failed.value.error.message) == tuple(FAILURE.values())
    assert builder.compute.snapshots.get(builder.group, "s1").disk_state == "Unattached"
    status = poller.polling_method()._pipeline_response.http_response.json()
    assert status["status"] == "Failed" and status["error"] == FAILURE
    location = poller.polling_method()._initial_response.http_response.headers["Location"]
    final = builder.compute.send_request(HttpRequest("GET", location))
    assert final.status_code == 400 and final.json()["error"] == FAILURE
    assert grant(builder).result().access_sas  # the rule fired once: the next grant succeeds
    builder.compute.snapshots.begin_revoke_access(builder.group, "s1").result()


def test_a_failed_revoke_and_delete_leave_everything(faulty: EmulatorProcess, builder: DiskBuilder) -> None:
    assert grant(builder).result().access_sas
    rules(
        faulty.env,
        {"on": "revoke", "fail_operation": FAILURE},
        {"on": "snapshot-delete", "fail_operation": FAILURE},
    )
    with pytest.raises(HttpResponseError):
        builder.compute.snapshots.begin_revoke_access(builder.group, "s1").result()
    assert builder.compute.snapshots.get(builder.group, "s1").disk_state == "ActiveSAS"
    builder.compute.snapshots.begin_revoke_access(builder.group, "s1").result()
    with pytest.raises(HttpResponseError):
        builder.compute.snapshots.begin_delete(builder.group, "s1").result()
    assert builder.compute.snapshots.get(builder.group, "s1").provisioning_state == "Succeeded"


def test_a_failed_snapshot_create_leaves_a_failed_snapshot(
    faulty: EmulatorProcess, builder: DiskBuilder
) -> None:
    disk = builder.compute.disks.get(builder.group, "d")
    rules(faulty.env, {"on": "snapshot-create", "fail_operation": FAILURE})
    with pytest.raises(HttpResponseError) as failed:
        builder.snapshot(disk.id, "s2")
    assert failed.value.error.code == FAILURE["code"]
    left = builder.compute.snapshots.get(builder.group, "s2")
    assert left.provisioning_state == "Failed"
    listed = {
        s.name: s.provisioning_state for s in builder.compute.snapshots.list_by_resource_group(builder.group)
    }
    assert listed == {"s1": "Succeeded", "s2": "Failed"}
    with pytest.raises(HttpResponseError) as refused:
        grant(builder, "s2")
    assert refused.value.status_code == 409 and refused.value.error.code == "OperationNotAllowed"
    builder.compute.snapshots.begin_delete(builder.group, "s2").result()
    assert [s.name for s in builder.compute.snapshots.list_by_resource_group(builder.group)] == ["s1"]
    assert counts(faulty.env)["requests"] == {
        "snapshot-create": 1,
        "poll": 2,
        "grant": 1,
        "snapshot-delete": 1,
    }
