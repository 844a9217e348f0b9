"""ARM fault rules (emulator/middleware/arm_faults.py) as the real azure-mgmt-compute client meets them:
Compute's 429, operations that end Failed and what each leaves, the control route and its counts.

On the private emulator `arm_faulty` (tests/conftest.py): the rules are global to an emulator.
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
from azure.storage.blob import BlobClient

from replicator.devtools.disk_builder import DiskBuilder, control
from replicator.emulator.middleware.arm_faults import ArmFaultPlan
from tests.helpers.arm_faults import FAILURE, fail, fired, requests, rules, throttle

GiB = 1 << 30


@pytest.fixture
def builder(arm_faulty_env: dict[str, str]) -> Iterator[DiskBuilder]:
    """A resource group with a disk `d` and its incremental snapshot `s1`, made before any rule."""
    built = DiskBuilder(arm_faulty_env, f"rg-{uuid.uuid4().hex[:8]}")
    built.snapshot(built.create_disk("d", GiB, "Standard_LRS"), "s1")
    yield built
    built.close()


def grant(builder: DiskBuilder, name: str = "s1") -> Any:
    return builder.compute.snapshots.begin_grant_access(
        builder.group, name, {"access": "Read", "durationInSeconds": 60}
    )


def state(builder: DiskBuilder, name: str = "s1") -> tuple[str, str]:
    """The snapshot's diskState (ActiveSAS while a grant is out) and provisioningState."""
    snap = builder.compute.snapshots.get(builder.group, name)
    return snap.disk_state, snap.provisioning_state


def test_a_plan_fires_its_rules_in_order_and_counts_every_request() -> None:
    plan = ArmFaultPlan()
    plan.set({"rules": [throttle("grant", 2), fail("grant")]})
    answers = [plan.fire("grant") for _ in range(4)] + [plan.fire("poll")]
    assert [r and (r.failure is None) for r in answers] == [True, True, False, None, None]
    assert plan.to_json()["requests"] == {"grant": 4, "poll": 1}
    assert [r["fired"] for r in plan.to_json()["rules"]] == [2, 1]


@pytest.mark.parametrize(
    "bad",
    [
        {"on": "resize", "status": 429},
        {"on": "grant"},
        {"on": "grant", "status": 503},
        {**throttle("grant", 1), "fail_operation": FAILURE},
        throttle("grant", 0),
        {**throttle("grant", 1), "retry_after": "soon"},
        fail("poll"),
        fail("grant", {"code": "X"}),
        {**throttle("grant", 1), "colour": "red"},
    ],
)
def test_impossible_rules_are_refused_with_a_sentence(bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=r"^\S.*\S$"):
        ArmFaultPlan().set({"rules": [bad]})


def test_the_control_route_refuses_bad_rules_and_strangers(arm_faulty_env: dict[str, str]) -> None:
    with pytest.raises(urllib.error.HTTPError) as refused:
        rules(arm_faulty_env, {"on": "grant"})
    assert refused.value.code == 400 and "status" in json.loads(refused.value.read())["error"]
    with pytest.raises(urllib.error.HTTPError) as stranger:
        control({**arm_faulty_env, "REPLICATOR_ACCESS_TOKEN": "wrong"}, "arm-faults")
    assert stranger.value.code == 401


def test_a_throttled_grant_answers_as_compute_throttles(
    arm_faulty_env: dict[str, str], builder: DiskBuilder
) -> None:
    rules(arm_faulty_env, throttle("grant", 1, retry_after=7))
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
    assert detail["code"] == "TooManyRequests"
    assert json.loads(detail["message"])["operationGroup"] == detail["target"] == "DiskAccess3Min"
    assert state(builder) == ("Unattached", "Succeeded")  # nothing was granted


def test_the_sdk_waits_out_throttled_grants_and_polls(
    arm_faulty_env: dict[str, str], builder: DiskBuilder
) -> None:
    rules(arm_faulty_env, throttle("grant", 2), throttle("poll", 2))
    assert grant(builder).result().access_sas
    assert requests(arm_faulty_env)["grant"] == 3 and fired(arm_faulty_env) == [2, 2]
    builder.compute.snapshots.begin_revoke_access(builder.group, "s1").result()


def test_a_failed_grant_hands_out_no_sas(arm_faulty_env: dict[str, str], builder: DiskBuilder) -> None:
    rules(arm_faulty_env, fail("grant"))
    poller = grant(builder)
    with pytest.raises(HttpResponseError) as failed:
        poller.result()
    assert (failed.value.error.code, failed.value.error.message) == (FAILURE["code"], FAILURE["message"])
    assert state(builder) == ("Unattached", "Succeeded")
    status = poller.polling_method()._pipeline_response.http_response.json()
    assert status["status"] == "Failed" and status["error"] == FAILURE
    location = poller.polling_method()._initial_response.http_response.headers["Location"]
    final = builder.compute.send_request(HttpRequest("GET", location))
    assert final.status_code == 400 and final.json()["error"] == FAILURE
    assert grant(builder).result().access_sas  # the rule fired once: the next grant succeeds
    builder.compute.snapshots.begin_revoke_access(builder.group, "s1").result()


def test_a_failed_revoke_or_delete_changes_nothing(
    arm_faulty_env: dict[str, str], builder: DiskBuilder
) -> None:
    assert grant(builder).result().access_sas
    rules(arm_faulty_env, fail("revoke"), fail("snapshot-delete"))
    with pytest.raises(HttpResponseError):
        builder.compute.snapshots.begin_revoke_access(builder.group, "s1").result()
    assert state(builder) == ("ActiveSAS", "Succeeded")
    builder.compute.snapshots.begin_revoke_access(builder.group, "s1").result()
    with pytest.raises(HttpResponseError):
        builder.compute.snapshots.begin_delete(builder.group, "s1").result()
    assert state(builder) == ("Unattached", "Succeeded")


def test_a_failed_snapshot_create_leaves_a_failed_snapshot(
    arm_faulty_env: dict[str, str], builder: DiskBuilder
) -> None:
    disk = builder.compute.disks.get(builder.group, "d")
    rules(arm_faulty_env, fail("snapshot-create"))
    with pytest.raises(HttpResponseError) as failed:
        builder.snapshot(disk.id, "s2")
    assert failed.value.error.code == FAILURE["code"]
    assert state(builder, "s2") == ("Unattached", "Failed")
    listed = builder.compute.snapshots.list_by_resource_group(builder.group)
    assert {s.name: s.provisioning_state for s in listed} == {"s1": "Succeeded", "s2": "Failed"}
    with pytest.raises(HttpResponseError) as refused:
        grant(builder, "s2")
    assert refused.value.status_code == 409 and refused.value.error.code == "OperationNotAllowed"
    builder.compute.snapshots.begin_delete(builder.group, "s2").result()
    assert [s.name for s in builder.compute.snapshots.list_by_resource_group(builder.group)] == ["s1"]
    counted = requests(arm_faulty_env)
    assert counted == {"snapshot-create": 1, "poll": 2, "grant": 1, "snapshot-delete": 1}


def test_a_corrupt_revoke_changes_one_byte_of_the_upload_it_ends(
    arm_faulty_env: dict[str, str], builder: DiskBuilder
) -> None:
    """`{"on": "revoke", "corrupt_import": N}`: the revoke that ends an upload inverts byte N of the disk
    (a drill's read-back then differs: tests/e2e/test_striped_drill.py); a revoke rule with that key on
    any other operation is refused."""
    size = 20 * 1024**2 + 512
    body = {
        "location": "westeurope",
        "properties": {"creationData": {"createOption": "Upload", "uploadSizeBytes": size}},
    }
    builder.compute.disks.begin_create_or_update(builder.group, "up", body).result()
    write = {"access": "Write", "durationInSeconds": 60}
    url = builder.compute.disks.begin_grant_access(builder.group, "up", write).result().access_sas
    with BlobClient.from_blob_url(url) as disk:
        disk.upload_page(b"a" * 512, offset=0, length=512)
    rules(arm_faulty_env, {"on": "revoke", "corrupt_import": 7})
    builder.compute.disks.begin_revoke_access(builder.group, "up").result()
    assert fired(arm_faulty_env) == [1]
    with builder.sas("disks", "up", "Read") as read, BlobClient.from_blob_url(read) as disk:
        assert disk.download_blob(0, 512).readall() == b"a" * 7 + bytes([ord("a") ^ 0xFF]) + b"a" * 504
    with pytest.raises(ValueError, match="goes on a disk-create rule"):
        ArmFaultPlan().set({"rules": [{"on": "grant", "corrupt_import": 7}]})
