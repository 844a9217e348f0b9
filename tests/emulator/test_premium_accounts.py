"""Premium page-blob accounts (emulator/blob/accounts.py) through the real SDK: the control, Get Account
Information, the inferred tier, page blobs only, the 100-snapshot limit and the ten-minute rate, each
answered with Azure's status and code ("Perform REST operations against page blobs with premium
storage"); and the tier's limits in the link model, counted in served and refused requests."""

from __future__ import annotations

import asyncio
import urllib.error
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from azure.core.exceptions import HttpResponseError
from azure.storage.blob import AccountSasPermissions, BlobClient, ResourceTypes, generate_account_sas

from replicator.devtools.disk_builder import control
from replicator.emulator.blob.accounts import Accounts, GiB, tier_of
from replicator.emulator.middleware.linkmodel import LinkOptions, install
from tests.helpers.blob_clients import BlobClients

P = 512


def premium(env: dict[str, str], account: str, **extra: object) -> dict[str, object]:
    return control(env, "accounts", {"account": account, "premium": True, **extra})


@pytest.fixture
def account(unique_name) -> str:
    return unique_name("prem")


def _blob(blob_clients: BlobClients, account: str, size: int = 64 * P) -> BlobClient:
    container = blob_clients.key(account).get_container_client(f"c{uuid.uuid4().hex[:8]}")
    container.create_container()
    blob = container.get_blob_client("disk.vhd")
    blob.create_page_blob(size)
    return blob


def test_account_information_says_standard_then_premium(emulator_env, blob_clients, account) -> None:
    service = blob_clients.key(account)
    info = service.get_account_information()
    assert (info["sku_name"], info["account_kind"]) == ("Standard_LRS", "StorageV2")
    answer = premium(emulator_env, account)
    assert answer["premium"][account] == {"snapshot_interval_seconds": 600.0}
    info = _blob(blob_clients, account).get_account_information()  # on a blob's path, as the replicator asks
    assert (info["sku_name"], info["account_kind"]) == ("Premium_LRS", "StorageV2")
    control(emulator_env, "accounts", {"account": account, "premium": False})
    assert service.get_account_information()["sku_name"] == "Standard_LRS"


def test_account_information_with_an_account_sas_of_any_permission(
    emulator_env, blob_clients, account
) -> None:
    premium(emulator_env, account)
    blob = _blob(blob_clients, account)
    sas = generate_account_sas(
        account,
        emulator_env["REPLICATOR_ACCOUNT_KEY"],
        ResourceTypes(object=True),
        AccountSasPermissions(write=True),  # write only: Get Account Information takes any permission
        expiry=datetime.now(UTC) + timedelta(hours=1),
    )
    with blob_clients.blob_from_url(f"{blob.url}?{sas}") as client:
        assert client.get_account_information()["sku_name"] == "Premium_LRS"


def test_bad_control_bodies_are_refused(emulator_env) -> None:
    for body in ({"account": "a"}, {"account": "a", "premium": "yes"}, {"premium": True, "x": 1}):
        with pytest.raises(urllib.error.HTTPError) as exc:
            control(emulator_env, "accounts", body)
        assert exc.value.code == 400
    with pytest.raises(urllib.error.HTTPError):
        control(emulator_env, "accounts", {"account": "a", "premium": True, "snapshot_interval_seconds": -1})


def test_the_tier_is_inferred_from_the_size(emulator_env, blob_clients, account) -> None:
    standard = _blob(blob_clients, account, 1024 * GiB)
    assert standard.get_blob_properties().blob_tier is None  # a standard page blob has no tier
    premium(emulator_env, account)
    props = standard.get_blob_properties()
    assert (props.blob_tier, props.blob_tier_inferred) == ("P30", True)
    standard.resize_blob(1024 * GiB + P)
    assert standard.get_blob_properties().blob_tier == "P40"


def test_block_blobs_are_refused(emulator_env, blob_clients, account) -> None:
    premium(emulator_env, account)
    blob = _blob(blob_clients, account)
    manifest = blob_clients.key(account).get_blob_client(blob.container_name, "manifest.json")
    with pytest.raises(HttpResponseError) as exc:
        manifest.upload_blob(b"{}")
    assert (exc.value.status_code, exc.value.error_code) == (400, "BlobTypeNotSupported")


def test_the_101st_snapshot_is_refused(emulator_env, blob_clients, account) -> None:
    premium(emulator_env, account, snapshot_interval_seconds=0)
    blob = _blob(blob_clients, account)
    for _ in range(100):
        blob.create_snapshot()
    with pytest.raises(HttpResponseError) as exc:
        blob.create_snapshot()
    assert (exc.value.status_code, exc.value.error_code) == (409, "SnapshotCountExceeded")
    container = blob_clients.key(account).get_container_client(blob.container_name)
    oldest = min(b.snapshot for b in container.list_blobs(include=["snapshots"]) if b.snapshot)
    container.get_blob_client(blob.blob_name, snapshot=oldest).delete_blob()
    blob.create_snapshot()  # one deleted: room for one


def test_one_snapshot_per_interval(emulator_env, blob_clients, account) -> None:
    premium(emulator_env, account)  # Azure's ten minutes
    blob = _blob(blob_clients, account)
    blob.create_snapshot()
    with pytest.raises(HttpResponseError) as exc:
        blob.create_snapshot()
    assert (exc.value.status_code, exc.value.error_code) == (409, "SnapshotOperationRateExceeded")
    premium(emulator_env, account, snapshot_interval_seconds=0)
    blob.create_snapshot()


def test_a_standard_account_keeps_no_count(blob_clients, account) -> None:
    blob = _blob(blob_clients, account)
    for _ in range(3):
        blob.create_snapshot()  # no interval either


def test_snapshot_rules_pure() -> None:
    accounts = Accounts({"p": 600.0})
    accounts.check_snapshot("s", ["2026-01-01T00:00:00.0000000Z"] * 200, 0.0)  # standard: nothing
    now = datetime(2026, 1, 1, 0, 10, tzinfo=UTC).timestamp()
    accounts.check_snapshot("p", ["2026-01-01T00:00:00.0000000Z"], now)  # ten minutes later: allowed
    with pytest.raises(Exception, match="rate"):
        accounts.check_snapshot("p", ["2026-01-01T00:00:01.5000000Z"], now)
    assert tier_of(0).name == "P4" and tier_of(8192 * GiB).name == "P60"


def test_the_link_model_holds_a_premium_blob_to_its_tier() -> None:
    """A burst of 40 requests with one second of backlog: held to 10 requests/s, a standard blob admits
    about 10 and answers the rest 503; the same blob in a premium account runs at its tier's (P10:
    500/s) and admits all 40. Counted in 503s, not measured in time."""

    async def run() -> tuple[int, int]:
        accounts = Accounts()
        sizes = {"std/c/b": 100 * GiB, "prem/c/b": 100 * GiB}

        def size_of(account: str, container: str, name: str) -> int | None:
            return sizes.get(f"{account}/{container}/{name}")

        def limits(key: str) -> tuple[float, float] | None:
            return accounts.tier_limits(key, size_of)

        accounts.premium["prem"] = 0.0
        app = web.Application()
        options = LinkOptions(blob_limits=True, blob_iops=10, burst_seconds=1.0)
        install(app, options, "t", limits)

        async def ok(request: web.Request) -> web.Response:
            return web.Response(status=201)

        app.router.add_route("*", "/{tail:.*}", ok)
        async with TestClient(TestServer(app)) as client:
            refused = {}
            for account in ("std", "prem"):
                page = {"x-ms-range": "bytes=0-511"}
                answers = await asyncio.gather(
                    *(client.put(f"/{account}/c/b?comp=page", headers=page) for _ in range(40))
                )
                refused[account] = sum(a.status == 503 for a in answers)
        return refused["std"], refused["prem"]

    standard_refused, premium_refused = asyncio.run(run())
    assert standard_refused >= 40 - 11  # 10/s and one second of backlog: about 10 admitted
    assert premium_refused == 0  # P10: 500/s, the 40 fit in 80 ms


@pytest.mark.parametrize(("sources_limited", "refused_at_least"), [(True, 29), (False, 0)])
def test_copy_sources_are_charged_unless_switched_off(sources_limited: bool, refused_at_least: int) -> None:
    """40 Put Page From URL from one standard source (10/s, 1 s of backlog) into a premium blob: the
    source refuses about 30 of them for itself; with `limit_copy_sources` off only the target's tier
    counts, and it admits all 40."""

    async def run() -> int:
        accounts = Accounts({"prem": 0.0})

        def limits(key: str) -> tuple[float, float] | None:
            return accounts.tier_limits(key, lambda *_: 100 * GiB)

        app = web.Application()
        options = LinkOptions(blob_limits=True, blob_iops=10, limit_copy_sources=sources_limited)
        install(app, options, "t", limits)

        async def ok(request: web.Request) -> web.Response:
            return web.Response(status=201)

        app.router.add_route("*", "/{tail:.*}", ok)
        copy = {"x-ms-range": "bytes=0-511", "x-ms-copy-source": "https://h/std/c/snap?snapshot=1"}
        async with TestClient(TestServer(app)) as client:
            answers = await asyncio.gather(
                *(client.put("/prem/c/b?comp=page", headers=copy) for _ in range(40))
            )
        return sum(a.status == 503 for a in answers)

    refused = asyncio.run(run())
    assert refused >= refused_at_least if sources_limited else refused == 0
