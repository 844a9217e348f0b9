"""Jobs from the app settings: REPLICATOR_JOBS, the discovery scope, tag targets, queue messages."""

from __future__ import annotations

import json

import pytest

from replicator.core.errors import UserError
from replicator.fleet.jobs import (
    JobSpec,
    _scope,
    discover,
    jobs_from_setting,
    load_jobs,
    target_for,
    vm_target_for,
)

DISK = "/subscriptions/s/resourceGroups/g/providers/Microsoft.Compute/disks/d"


def test_jobs_setting_is_a_json_array_of_source_target_objects() -> None:
    text = json.dumps([{"source": DISK, "target": "https://a/c/b1"}, {"source": DISK + "2", "target": "x"}])
    assert jobs_from_setting(text) == [JobSpec(DISK, "https://a/c/b1"), JobSpec(DISK + "2", "x")]
    assert jobs_from_setting("[]") == []


@pytest.mark.parametrize(
    "text",
    [
        "not json",
        json.dumps({"source": DISK, "target": "t"}),  # an object, not an array
        json.dumps([{"source": DISK}]),
        json.dumps([{"source": DISK, "target": 3}]),
        json.dumps(["x"]),
    ],
)
def test_a_malformed_jobs_setting_is_bad_input_naming_the_setting(text: str) -> None:
    with pytest.raises(UserError, match="REPLICATOR_JOBS"):
        jobs_from_setting(text)


def test_a_message_round_trips_and_ignores_bookkeeping_fields() -> None:
    job = JobSpec(DISK, "https://a/c/b")
    assert JobSpec.from_json(job.to_json()) == job
    doc = json.loads(job.to_json()) | {"stalls": 2, "position": "before s1", "deferrals": 1}
    assert JobSpec.from_json(json.dumps(doc)) == job
    for bad in ("not json", "[]", '{"source": 1, "target": "t"}'):
        with pytest.raises(UserError, match="not a replication job"):
            JobSpec.from_json(bad)


@pytest.mark.parametrize(
    ("scope", "parsed"),
    [
        ("/subscriptions/abc", ("abc", None)),
        ("/subscriptions/abc/", ("abc", None)),
        ("/SUBSCRIPTIONS/abc/resourcegroups/rg-1", ("abc", "rg-1")),
        (" /subscriptions/abc/resourceGroups/rg ", ("abc", "rg")),
    ],
)
def test_discovery_scope_is_a_subscription_or_a_resource_group(scope: str, parsed: tuple) -> None:
    assert _scope(scope) == parsed


@pytest.mark.parametrize(
    "scope", ["", "abc", "/subscriptions", "/subscriptions/abc/resourceGroups", DISK, "/tenants/x/y/z"]
)
def test_a_bad_discovery_scope_is_bad_input(scope: str) -> None:
    with pytest.raises(UserError, match="REPLICATOR_DISCOVER"):
        _scope(scope)


def test_a_tag_names_a_blob_or_a_container() -> None:
    assert target_for("d1", "https://a/c/x.vhd") == "https://a/c/x.vhd"
    assert target_for("d1", " https://a/c/ ") == "https://a/c/d1.vhd"


def test_a_vms_tag_names_its_prefix_or_a_folder_of_its_name() -> None:
    assert vm_target_for("vm1", "https://a/c/vms/db") == "https://a/c/vms/db"
    assert vm_target_for("vm1", " https://a/c/vms/ ") == "https://a/c/vms/vm1"


class _Pager:
    """An ARM list that yields `items`, or fails with `error` when iterated."""

    def __init__(self, items: list[object], error: Exception | None = None) -> None:
        self.items, self.error = items, error

    def __aiter__(self):  # type: ignore[no-untyped-def]
        return self._each()

    async def _each(self):  # type: ignore[no-untyped-def]
        if self.error is not None:
            raise self.error
        for item in self.items:
            yield item


async def test_an_identity_that_may_not_list_vms_still_discovers_its_disks(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from types import SimpleNamespace

    import azure.mgmt.compute.aio
    from azure.core.exceptions import HttpResponseError

    denied = HttpResponseError(message="AuthorizationFailed")
    denied.status_code = 403
    disk = SimpleNamespace(id=DISK, name="d", tags={"Replicator-Target": "https://a/c/"})

    class Compute:
        def __init__(self, *args: object, **kwargs: object) -> None:
            self.disks = SimpleNamespace(list_by_resource_group=lambda group: _Pager([disk]))
            self.virtual_machines = SimpleNamespace(list=lambda group: _Pager([], denied))

        async def __aenter__(self) -> Compute:
            return self

        async def __aexit__(self, *exc: object) -> None:
            return None

    monkeypatch.setattr(azure.mgmt.compute.aio, "ComputeManagementClient", Compute)
    env = {"REPLICATOR_ACCESS_TOKEN": "t"}
    jobs = await discover("/subscriptions/s/resourceGroups/g", "replicator-target", env)
    assert jobs == [JobSpec(DISK, "https://a/c/d.vhd")]
    assert "tagged VMs are not discovered" in caplog.text


async def test_load_jobs_needs_a_setting_and_reads_the_explicit_list() -> None:
    with pytest.raises(UserError, match="no jobs configured"):
        await load_jobs({})
    text = json.dumps([{"source": DISK, "target": "t"}])
    assert await load_jobs({"REPLICATOR_JOBS": text}) == [JobSpec(DISK, "t")]
    with pytest.raises(UserError, match="REPLICATOR_DISCOVER"):  # scope checked before any ARM call
        await load_jobs({"REPLICATOR_JOBS": text, "REPLICATOR_DISCOVER": "/nope"})
