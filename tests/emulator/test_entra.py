"""The emulator's Entra ID model (issue 13): the managed-identity endpoint that azure-identity speaks,
audience-bound tokens, roles per identity, `dataAccessAuthMode` on disks and snapshots, and the
managed-disk data plane that asks a protected resource's readers for a disk token besides the SAS.

Clients are the real SDKs (azure-identity, azure-mgmt-compute, azure-storage-blob) and, for headers
an SDK hides, raw `requests`. Resource groups, accounts and user-assigned client IDs are unique per
test, so the session emulator is shared safely; switches a test flips are set back in `finally`.
"""

from __future__ import annotations

import base64
import json
import os
import stat
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from azure.core.exceptions import ClientAuthenticationError, HttpResponseError
from azure.identity import ManagedIdentityCredential
from azure.mgmt.compute import ComputeManagementClient
from azure.storage.blob import BlobClient
from azure.storage.blob._shared.authentication import StorageHttpChallenge

from replicator.devtools.disk_builder import control
from replicator.emulator.process import EmulatorProcess
from replicator.plumbing.credentials import StaticTokenCredential
from tests.helpers.blob_clients import BlobClients

P = 512
DISK = "https://disk.azure.com/"
DATA_OPERATOR = "Data Operator for Managed Disks"
SNAPSHOT_DOWNLOAD = "Microsoft.Compute/snapshots/download/action"
STORAGE = "Microsoft.Storage/storageAccounts"


# --- helpers ---------------------------------------------------------------------------------


def get_token(
    env: dict[str, str], resource: str, client_id: str | None = None, **extra: str
) -> requests.Response:
    """The managed-identity endpoint asked as App Service's protocol asks it."""
    params = {
        "api-version": "2019-08-01",
        "resource": resource,
        **({"client_id": client_id} if client_id else {}),
    }
    headers = {"X-IDENTITY-HEADER": env["IDENTITY_HEADER"]}
    return requests.get(
        env["IDENTITY_ENDPOINT"], params={**params, **extra}, headers=headers, verify=env["SSL_CERT_FILE"]
    )


def token(env: dict[str, str], resource: str = DISK, client_id: str | None = None) -> str:
    answer = get_token(env, resource, client_id)
    assert answer.status_code == 200, answer.text
    return str(answer.json()["access_token"])


def claims(jwt: str) -> dict[str, Any]:
    part = jwt.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))))


def forged(jwt: str) -> str:
    """The same claims signed with another key: a token this tenant never issued."""
    head, body, _ = jwt.split(".")
    return f"{head}.{body}.{base64.urlsafe_b64encode(os.urandom(32)).rstrip(b'=').decode()}"


def compute(env: dict[str, str], credential: Any = None) -> ComputeManagementClient:
    arm = env["REPLICATOR_ARM_ENDPOINT"]
    return ComputeManagementClient(
        credential=credential or StaticTokenCredential(env["REPLICATOR_ACCESS_TOKEN"]),
        subscription_id=env["AZURE_SUBSCRIPTION_ID"],
        base_url=arm,
        credential_scopes=[f"{arm}/.default"],
        connection_verify=env["SSL_CERT_FILE"],
    )


def disk_body(mode: str | None = None) -> dict[str, Any]:
    props: dict[str, Any] = {"creationData": {"createOption": "Empty"}, "diskSizeGB": 1}
    return {"location": "eastus", "properties": props | ({"dataAccessAuthMode": mode} if mode else {})}


def snapshot_body(disk_id: str, mode: str | None = None) -> dict[str, Any]:
    props: dict[str, Any] = {
        "creationData": {"createOption": "Copy", "sourceResourceId": disk_id},
        "incremental": True,
    }
    return {"location": "eastus", "properties": props | ({"dataAccessAuthMode": mode} if mode else {})}


def arm_json(env: dict[str, str], resource_id: str) -> dict[str, Any]:
    """A resource's JSON as ARM sends it (the SDK's model would hide an omitted property)."""
    answer = requests.get(
        f"{env['REPLICATOR_ARM_ENDPOINT']}{resource_id}?api-version=2025-01-02",
        headers={"Authorization": f"Bearer {env['REPLICATOR_ACCESS_TOKEN']}"},
        verify=env["SSL_CERT_FILE"],
    )
    assert answer.status_code == 200
    return dict(answer.json())


def sas_blob(env: dict[str, str], url: str, bearer: str | None = None) -> BlobClient:
    credential = None if bearer is None else StaticTokenCredential(bearer)
    return BlobClient.from_blob_url(url, credential, connection_verify=env["SSL_CERT_FILE"])


def raw(env: dict[str, str], method: str, url: str, bearer: str | None = None) -> requests.Response:
    headers = {"x-ms-version": "2025-01-05", **({"Authorization": f"Bearer {bearer}"} if bearer else {})}
    return requests.request(method, url, headers=headers, verify=env["SSL_CERT_FILE"])


def new_client_id() -> str:
    return str(uuid.uuid4())


@dataclass
class Family:
    """A protected disk with two protected incremental snapshots (s1, s2) and an unprotected twin of
    each (u1, u2), each with a Read SAS: page 0 = A (before s1, u1), page 2 = B (before s2, u2)."""

    env: dict[str, str]
    rg: str
    disk_id: str
    disk_sas: str
    s1: str
    u1: str
    s2: str
    u2: str


@pytest.fixture(scope="module")
def family(emulator: EmulatorProcess) -> Iterator[Family]:
    env = emulator.env
    client = compute(env)
    rg = f"entra-{uuid.uuid4().hex[:10]}"
    disk = client.disks.begin_create_or_update(rg, "d", disk_body("AzureActiveDirectory")).result()

    def write(offset: int, data: bytes) -> None:
        url = client.disks.begin_grant_access(
            rg, "d", {"access": "Write", "durationInSeconds": 3600}
        ).result()
        sas_blob(env, url.access_sas).upload_page(
            data, offset=offset, length=len(data)
        )  # writes need no token
        client.disks.begin_revoke_access(rg, "d").result()

    def snap(name: str, mode: str | None) -> str:
        client.snapshots.begin_create_or_update(rg, name, snapshot_body(disk.id, mode)).result()
        grant = {"access": "Read", "durationInSeconds": 3600}
        return str(client.snapshots.begin_grant_access(rg, name, grant).result().access_sas)

    write(0, b"A" * P)
    s1, u1 = snap("s1", "AzureActiveDirectory"), snap("u1", None)
    write(2 * P, b"B" * P)
    s2, u2 = snap("s2", "AzureActiveDirectory"), snap("u2", None)
    disk_sas = client.disks.begin_grant_access(
        rg, "d", {"access": "Read", "durationInSeconds": 3600}
    ).result()
    yield Family(env, rg, disk.id, disk_sas.access_sas, s1, u1, s2, u2)
    for kind, name in (
        ("snapshots", "s1"),
        ("snapshots", "u1"),
        ("snapshots", "s2"),
        ("snapshots", "u2"),
        ("disks", "d"),
    ):
        ops = client.disks if kind == "disks" else client.snapshots
        ops.begin_revoke_access(rg, name).result()
    client.close()


# --- the managed-identity endpoint -----------------------------------------------------------

_DAC_SCRIPT = """
import asyncio, base64, json, sys
from azure.identity import DefaultAzureCredential
from azure.identity.aio import DefaultAzureCredential as AsyncDefaultAzureCredential

def claims(jwt):
    part = jwt.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))

async def aio(scope):
    async with AsyncDefaultAzureCredential() as credential:
        return claims((await credential.get_token(scope)).token)

out = {}
for scope in sys.argv[1:]:
    with DefaultAzureCredential() as credential:
        out["sync " + scope] = claims(credential.get_token(scope).token)
    out["aio " + scope] = asyncio.run(aio(scope))
print(json.dumps(out))
"""


def _default_credential_claims(
    env: dict[str, str], tmp_path: Path, **extra: str
) -> dict[str, dict[str, Any]]:
    """Claims of the tokens DefaultAzureCredential (sync and aio) gets in a process whose environment
    holds only the identity endpoint, its header and the CA (no REPLICATOR_ACCESS_TOKEN, no secret)."""
    keys = ("IDENTITY_ENDPOINT", "IDENTITY_HEADER", "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE")
    clean = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), **{k: env[k] for k in keys}, **extra}
    scopes = ["https://disk.azure.com//.default", "https://disk.azure.com/.default"]
    done = subprocess.run(
        [sys.executable, "-c", _DAC_SCRIPT, *scopes], env=clean, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return dict(json.loads(done.stdout))


def test_default_azure_credential_gets_the_system_identity_token_with_the_asked_audience(
    emulator_env: dict[str, str], tmp_path: Path
) -> None:
    got = _default_credential_claims(emulator_env, tmp_path)
    system = requests.get(
        emulator_env["REPLICATOR_BLOB_ENDPOINT"] + "/_emulator/identities",
        headers={"Authorization": f"Bearer {emulator_env['REPLICATOR_ACCESS_TOKEN']}"},
        verify=emulator_env["SSL_CERT_FILE"],
    ).json()["identities"][0]
    assert system["system"] is True and system["roles"] == [DATA_OPERATOR]
    for flavour in ("sync", "aio"):
        # The double slash is what the disk plane needs: the resource is the scope minus "/.default".
        assert got[f"{flavour} https://disk.azure.com//.default"]["aud"] == "https://disk.azure.com/"
        assert got[f"{flavour} https://disk.azure.com/.default"]["aud"] == "https://disk.azure.com"
        assert got[f"{flavour} https://disk.azure.com//.default"]["appid"] == system["client_id"]
        assert got[f"{flavour} https://disk.azure.com//.default"]["oid"] == system["object_id"]


def test_default_azure_credential_with_azure_client_id_gets_that_user_assigned_identity(
    emulator_env: dict[str, str], tmp_path: Path
) -> None:
    client_id = new_client_id()
    got = _default_credential_claims(emulator_env, tmp_path, AZURE_CLIENT_ID=client_id)
    for flavour in ("sync", "aio"):
        disk = got[f"{flavour} https://disk.azure.com//.default"]
        assert (disk["aud"], disk["appid"]) == ("https://disk.azure.com/", client_id)
    assert (
        got["sync https://disk.azure.com//.default"]["oid"]
        == got["aio https://disk.azure.com/.default"]["oid"]
    )


def test_token_answer_and_claims(emulator_env: dict[str, str]) -> None:
    client_id = new_client_id()
    answer = get_token(emulator_env, DISK, client_id)
    assert answer.status_code == 200
    body = answer.json()
    assert set(body) == {"access_token", "expires_on", "resource", "token_type", "client_id"}
    assert (body["resource"], body["token_type"], body["client_id"]) == (DISK, "Bearer", client_id)
    assert isinstance(body["expires_on"], str)  # App Service sends epoch seconds as a string
    got = claims(body["access_token"])
    assert got["exp"] == int(body["expires_on"]) == got["iat"] + 24 * 3600 and got["nbf"] == got["iat"]
    assert got["iss"] == f"https://sts.windows.net/{got['tid']}/"
    assert (got["aud"], got["appid"]) == (DISK, client_id)
    again = claims(token(emulator_env, "https://storage.azure.com", client_id))
    other = claims(token(emulator_env, DISK, new_client_id()))
    assert again["oid"] == got["oid"] != other["oid"]  # stable per identity, distinct between identities
    assert json.loads(base64.urlsafe_b64decode(body["access_token"].split(".")[0] + "=="))["alg"] == "HS256"


@pytest.mark.parametrize(
    ("change", "status"),
    [
        ({"header": "wrong"}, 401),
        ({"api-version": "2017-09-01"}, 400),
        ({"resource": ""}, 400),
        ({"mi_res_id": "/subscriptions/x"}, 400),
    ],
)
def test_token_requests_the_endpoint_refuses(
    emulator_env: dict[str, str], change: dict[str, str], status: int
) -> None:
    params = {"api-version": "2019-08-01", "resource": DISK, **change}
    header = params.pop("header", emulator_env["IDENTITY_HEADER"])
    answer = requests.get(
        emulator_env["IDENTITY_ENDPOINT"],
        params=params,
        headers={"X-IDENTITY-HEADER": header},
        verify=emulator_env["SSL_CERT_FILE"],
    )
    assert answer.status_code == status
    assert answer.json()["statusCode"] == status and "access_token" not in answer.json()
    assert emulator_env["IDENTITY_HEADER"] not in answer.text


# --- dataAccessAuthMode on ARM ---------------------------------------------------------------


def test_data_access_auth_mode_is_stored_returned_and_omitted_when_unset(
    emulator_env: dict[str, str],
) -> None:
    client = compute(emulator_env)
    rg = f"mode-{uuid.uuid4().hex[:10]}"
    plain = client.disks.begin_create_or_update(rg, "plain", disk_body()).result()
    protected = client.disks.begin_create_or_update(rg, "prot", disk_body("AzureActiveDirectory")).result()
    assert plain.data_access_auth_mode is None and protected.data_access_auth_mode == "AzureActiveDirectory"
    assert "dataAccessAuthMode" not in arm_json(emulator_env, plain.id)["properties"]
    assert arm_json(emulator_env, protected.id)["properties"]["dataAccessAuthMode"] == "AzureActiveDirectory"
    none = client.disks.begin_create_or_update(rg, "none", disk_body("none")).result()
    assert none.data_access_auth_mode == "None"  # ARM enums are case-insensitive; the canonical value is kept

    patched = client.disks.begin_update(
        rg, "plain", {"properties": {"dataAccessAuthMode": "AzureActiveDirectory"}}
    )
    assert patched.result().data_access_auth_mode == "AzureActiveDirectory"
    resized = client.disks.begin_update(rg, "plain", {"properties": {"diskSizeGB": 2}}).result()
    assert resized.data_access_auth_mode == "AzureActiveDirectory"  # an update that does not name it keeps it
    assert {d.name: d.data_access_auth_mode for d in client.disks.list_by_resource_group(rg)} == {
        "none": "None",
        "plain": "AzureActiveDirectory",
        "prot": "AzureActiveDirectory",
    }

    # A snapshot keeps what its own PUT says: nothing is inherited from the disk (not documented).
    unset = client.snapshots.begin_create_or_update(rg, "s-unset", snapshot_body(protected.id)).result()
    own = client.snapshots.begin_create_or_update(
        rg, "s-own", snapshot_body(plain.id, "AzureActiveDirectory")
    )
    assert (
        unset.data_access_auth_mode is None and own.result().data_access_auth_mode == "AzureActiveDirectory"
    )
    updated = client.snapshots.begin_create_or_update(
        rg, "s-unset", snapshot_body(protected.id, "None")
    ).result()
    assert (
        client.snapshots.get(rg, "s-unset").data_access_auth_mode == updated.data_access_auth_mode == "None"
    )
    assert {s.name: s.data_access_auth_mode for s in client.snapshots.list_by_resource_group(rg)} == {
        "s-own": "AzureActiveDirectory",
        "s-unset": "None",
    }

    with pytest.raises(HttpResponseError) as bad:
        client.disks.begin_create_or_update(rg, "bad", disk_body("Kerberos")).result()
    assert bad.value.status_code == 400 and bad.value.error.code == "InvalidParameter"
    assert bad.value.error.target == "dataAccessAuthMode"


def test_an_imported_disk_keeps_its_mode(emulator_env: dict[str, str], blob_clients: BlobClients) -> None:
    account = f"src{uuid.uuid4().hex[:10]}"
    service = blob_clients.key(account)
    service.create_container("vhds")
    service.get_blob_client("vhds", "d.vhd").create_page_blob(1024 * 1024 + P)
    body = {
        "location": "eastus",
        "properties": {
            "creationData": {
                "createOption": "Import",
                "sourceUri": f"{blob_clients.url(account)}/vhds/d.vhd",
                "storageAccountId": f"/subscriptions/x/resourceGroups/r/providers/{STORAGE}/{account}",
            },
            "dataAccessAuthMode": "AzureActiveDirectory",
        },
    }
    client = compute(emulator_env)
    rg = f"import-{uuid.uuid4().hex[:10]}"
    assert (
        client.disks.begin_create_or_update(rg, "imp", body).result().data_access_auth_mode
        == "AzureActiveDirectory"
    )
    sas = (
        client.disks.begin_grant_access(rg, "imp", {"access": "Read", "durationInSeconds": 600})
        .result()
        .access_sas
    )
    try:
        assert raw(emulator_env, "HEAD", sas).status_code == 401  # its data is protected too
        assert raw(emulator_env, "HEAD", sas, token(emulator_env)).status_code == 200
    finally:
        client.disks.begin_revoke_access(rg, "imp").result()


# --- the protected data plane ----------------------------------------------------------------


def test_reads_without_a_token_get_the_challenge_a_client_follows(family: Family) -> None:
    env = family.env
    with pytest.raises(ClientAuthenticationError) as refused:
        sas_blob(env, family.s1).download_blob(offset=0, length=P).readall()
    assert (refused.value.status_code, refused.value.error_code) == (401, "NoAuthenticationInformation")
    header = refused.value.response.headers["WWW-Authenticate"]
    parsed = StorageHttpChallenge(header)  # azure-storage-blob's own parser
    assert (parsed.scheme, parsed.resource_id) == ("Bearer", DISK)
    assert (
        parsed.authorization_uri == f"https://login.microsoftonline.com/{parsed.tenant_id}/oauth2/authorize"
    )
    assert claims(token(env))["tid"] == parsed.tenant_id
    assert (
        header.startswith("Bearer authorization_uri=https://login.microsoftonline.com/") and '"' not in header
    )
    assert header.endswith(" resource_id=https://disk.azure.com/")  # AzCopy looks for exactly this resource

    head = raw(env, "HEAD", family.s1)  # what AzCopy probes with: headers only
    assert head.status_code == 401 and head.content == b"" and head.headers["WWW-Authenticate"] == header
    assert head.headers["x-ms-error-code"] == "NoAuthenticationInformation"
    for url in (family.s1, family.disk_sas):
        pages = raw(env, "GET", url + "&comp=pagelist")
        assert pages.status_code == 401 and "<AuthenticationErrorDetail>" in pages.text


def test_a_disk_token_reads_ranges_page_lists_and_diffs(family: Family) -> None:
    env = family.env
    disk = token(env)
    s1, s2 = sas_blob(env, family.s1, disk), sas_blob(env, family.s2, disk)
    assert s2.download_blob(offset=0, length=3 * P).readall() == b"A" * P + bytes(P) + b"B" * P
    assert s1.get_blob_properties().size == 1024**3 + P
    ranges = s2.list_page_ranges(offset=0, length=4 * P)
    assert [(r.start, r.end) for r in ranges] == [(0, P - 1), (2 * P, 3 * P - 1)]
    diff, cleared = s2.get_page_range_diff_for_managed_disk(family.s1, offset=0, length=4 * P)
    assert ([(r["start"], r["end"]) for r in diff], cleared) == ([(2 * P, 3 * P - 1)], [])
    assert sas_blob(env, family.disk_sas, disk).download_blob(offset=2 * P, length=P).readall() == b"B" * P
    assert raw(env, "HEAD", family.s1, disk).status_code == 200


def test_the_sdk_follows_the_challenge_with_a_managed_identity(
    family: Family, emulator_env: dict[str, str]
) -> None:
    """A BlobClient with a SAS URL and ManagedIdentityCredential sends a Storage token first, gets the
    challenge, asks for resource_id + "/.default" (the double slash) and reads."""
    with ManagedIdentityCredential() as credential:
        blob = BlobClient.from_blob_url(
            family.s2, credential, connection_verify=emulator_env["SSL_CERT_FILE"]
        )
        assert blob.download_blob(offset=2 * P, length=P).readall() == b"B" * P


@pytest.mark.parametrize(
    "kind", ["wrong audience", "storage audience", "root token", "forged", "basic scheme"]
)
def test_tokens_the_disk_plane_refuses(family: Family, kind: str) -> None:
    env = family.env
    bearer = {
        "wrong audience": lambda: token(env, "https://disk.azure.com"),
        "storage audience": lambda: token(env, "https://storage.azure.com"),
        "root token": lambda: env["REPLICATOR_ACCESS_TOKEN"],
        "forged": lambda: forged(token(env)),
        "basic scheme": lambda: None,
    }[kind]()
    headers = {"x-ms-version": "2025-01-05", "x-ms-range": f"bytes=0-{P - 1}"}
    headers["Authorization"] = f"Bearer {bearer}" if bearer else "Basic dXNlcjpwYXNz"
    answer = requests.get(family.s1, headers=headers, verify=env["SSL_CERT_FILE"])
    assert (answer.status_code, answer.headers["x-ms-error-code"]) == (401, "InvalidAuthenticationInfo")
    assert answer.headers["WWW-Authenticate"].endswith("resource_id=https://disk.azure.com/")
    if bearer:
        assert bearer not in answer.text
    if kind == "wrong audience":
        assert "Audience validation failed" in answer.text


def test_an_expired_token_is_refused(family: Family) -> None:
    env = family.env
    control(env, "clock", {"offset_seconds": -25 * 3600})
    try:
        old = token(env)
    finally:
        control(env, "clock", {"offset_seconds": 0})
    answer = raw(env, "HEAD", family.s1, old)
    assert (answer.status_code, answer.headers["x-ms-error-code"]) == (401, "InvalidAuthenticationInfo")
    assert "Lifetime validation failed" in raw(env, "GET", family.s1 + "&comp=pagelist", old).text


def test_an_identity_needs_the_download_action_of_the_resource_type(family: Family) -> None:
    env = family.env
    client_id = new_client_id()
    bare = token(env, DISK, client_id)
    with pytest.raises(HttpResponseError) as refused:
        sas_blob(env, family.s1, bare).download_blob(offset=0, length=P).readall()
    assert (refused.value.status_code, refused.value.error_code) == (403, "AuthorizationPermissionMismatch")

    identity = control(env, f"identities/{client_id}", {"actions": [SNAPSHOT_DOWNLOAD]})
    assert identity == {
        "client_id": client_id,
        "object_id": claims(bare)["oid"],
        "system": False,
        "roles": [],
        "actions": [SNAPSHOT_DOWNLOAD],
    }
    assert (
        sas_blob(env, family.s1, bare).download_blob(offset=0, length=P).readall() == b"A" * P
    )  # same token
    assert raw(env, "HEAD", family.disk_sas, bare).status_code == 403  # a disk needs disks/download/action

    control(env, f"identities/{client_id}", {"roles": ["959f8984-c045-4866-89c7-12bf9737be2e"]})  # by ID
    assert raw(env, "HEAD", family.disk_sas, bare).status_code == 200
    assert control(env, f"identities/{client_id}")["roles"] == [DATA_OPERATOR]
    listed = {i["client_id"]: i for i in control(env, "identities")["identities"]}
    assert listed[client_id]["roles"] == [DATA_OPERATOR]


def test_unprotected_managed_resources_ignore_an_authorization_header(family: Family) -> None:
    env = family.env
    for bearer in (None, "not-a-token", env["REPLICATOR_ACCESS_TOKEN"]):
        assert sas_blob(env, family.u2, bearer).download_blob(offset=2 * P, length=P).readall() == b"B" * P


def test_put_page_from_url_needs_the_disk_token_in_copy_source_authorization(
    family: Family, blob_clients: BlobClients
) -> None:
    env = family.env
    account = f"dst{uuid.uuid4().hex[:10]}"
    service = blob_clients.key(account)
    service.create_container("c")
    target = service.get_blob_client("c", "t")
    target.create_page_blob(4 * P)

    def copy(authorization: str | None) -> None:
        extra = {} if authorization is None else {"source_authorization": authorization}
        target.upload_pages_from_url(family.s2, offset=0, length=3 * P, source_offset=0, **extra)

    for authorization, status in (
        (None, 401),
        (f"Bearer {token(env, 'https://storage.azure.com')}", 401),
        (f"Bearer {token(env, DISK, new_client_id())}", 403),
    ):
        with pytest.raises(HttpResponseError) as refused:
            copy(authorization)
        assert (refused.value.status_code, refused.value.error_code) == (status, "CannotVerifyCopySource")
        assert (
            "WWW-Authenticate" not in refused.value.response.headers
        )  # the destination's own credential is fine
    copy(f"Bearer {token(env)}")
    assert target.download_blob(offset=0, length=3 * P).readall() == b"A" * P + bytes(P) + b"B" * P


def test_a_diff_against_a_protected_previous_snapshot_uses_the_requests_token(family: Family) -> None:
    env = family.env
    diff_url = family.u2 + "&comp=pagelist"
    previous = {"x-ms-previous-snapshot-url": family.s1, "x-ms-version": "2025-01-05"}

    def diff(bearer: str | None) -> requests.Response:
        headers = previous | ({"Authorization": f"Bearer {bearer}"} if bearer else {})
        return requests.get(diff_url, headers=headers, verify=env["SSL_CERT_FILE"])

    # The current snapshot (u2) is unprotected; its previous one (s1) is: the request's token reads it.
    assert diff(None).status_code == 401 and diff(None).headers["WWW-Authenticate"].endswith(DISK)
    ok = diff(token(env))
    assert ok.status_code == 200 and "<Start>1024</Start><End>1535</End>" in ok.text
    assert diff(token(env, DISK, new_client_id())).status_code == 403

    before = control(env, "entra")
    assert before == {"refuse_protected_previous": False}
    control(env, "entra", {"refuse_protected_previous": True})
    try:
        refused = diff(token(env))
        assert (refused.status_code, refused.headers["x-ms-error-code"]) == (403, "AuthorizationFailure")
        with pytest.raises(HttpResponseError) as sdk:  # protected current, protected previous, via the SDK
            sas_blob(env, family.s2, token(env)).get_page_range_diff_for_managed_disk(family.s1)
        assert (sdk.value.status_code, sdk.value.error_code) == (403, "AuthorizationFailure")
        unprotected_base, _ = sas_blob(env, family.s2, token(env)).get_page_range_diff_for_managed_disk(
            family.u1
        )
        assert [(r["start"], r["end"]) for r in unprotected_base] == [
            (2 * P, 3 * P - 1)
        ]  # only a protected base is refused
    finally:
        control(env, "entra", {"refuse_protected_previous": False})


# --- the emulator's other planes with Entra tokens -------------------------------------------


def test_arm_accepts_tokens_for_its_audiences_and_names_a_wrong_one(emulator_env: dict[str, str]) -> None:
    rg = f"armtok-{uuid.uuid4().hex[:10]}"
    with ManagedIdentityCredential() as credential:  # asks for the emulator's base URL, as replicate does
        client = compute(emulator_env, credential)
        assert client.disks.begin_create_or_update(rg, "d", disk_body()).result().name == "d"
    for resource in ("https://management.azure.com", "https://management.core.windows.net/"):
        assert (
            compute(emulator_env, StaticTokenCredential(token(emulator_env, resource)))
            .disks.get(rg, "d")
            .name
            == "d"
        )
    with pytest.raises(ClientAuthenticationError) as wrong:
        compute(
            emulator_env, StaticTokenCredential(token(emulator_env, "https://storage.azure.com"))
        ).disks.get(rg, "d")
    assert (wrong.value.status_code, wrong.value.error.code) == (401, "InvalidAuthenticationTokenAudience")
    assert "wrong audience or resource 'https://storage.azure.com'" in wrong.value.error.message
    bad_signature = forged(token(emulator_env, "https://management.azure.com"))
    with pytest.raises(ClientAuthenticationError) as forged_token:
        compute(emulator_env, StaticTokenCredential(bad_signature)).disks.get(rg, "d")
    assert (forged_token.value.status_code, forged_token.value.error.code) == (
        401,
        "InvalidAuthenticationToken",
    )
    control(emulator_env, "clock", {"offset_seconds": -25 * 3600})
    try:
        expired = token(emulator_env, "https://management.azure.com")
    finally:
        control(emulator_env, "clock", {"offset_seconds": 0})
    with pytest.raises(ClientAuthenticationError) as late:
        compute(emulator_env, StaticTokenCredential(expired)).disks.get(rg, "d")
    assert late.value.error.code == "ExpiredAuthenticationToken"


def test_ordinary_accounts_accept_storage_tokens_and_challenge_others(
    emulator_env: dict[str, str], blob_clients: BlobClients
) -> None:
    account = f"ent{uuid.uuid4().hex[:10]}"
    blob_clients.key(account).create_container("c")
    for name, resource in (
        ("no-slash", "https://storage.azure.com"),
        ("slash", "https://storage.azure.com/"),
    ):
        blob_clients.bearer(account, token(emulator_env, resource)).get_blob_client(
            "c", name
        ).create_page_blob(P)
    answer = raw(
        emulator_env, "GET", f"{blob_clients.url(account)}/c/slash", token(emulator_env)
    )  # a disk token
    assert (answer.status_code, answer.headers["x-ms-error-code"]) == (401, "InvalidAuthenticationInfo")
    assert answer.headers["WWW-Authenticate"].endswith(" resource_id=https://storage.azure.com")
    assert "Audience validation failed. Audience did not match." in answer.text


def test_controls_need_the_root_token_and_check_their_bodies(emulator_env: dict[str, str]) -> None:
    base = emulator_env["REPLICATOR_BLOB_ENDPOINT"] + "/_emulator/"
    ca = emulator_env["SSL_CERT_FILE"]
    for path in ("identities", f"identities/{new_client_id()}", "entra"):
        assert requests.get(base + path, verify=ca).status_code == 401
        assert (
            requests.get(
                base + path, headers={"Authorization": f"Bearer {token(emulator_env)}"}, verify=ca
            ).status_code
            == 401
        )
    root = {"Authorization": f"Bearer {emulator_env['REPLICATOR_ACCESS_TOKEN']}"}
    for path, body in (
        (f"identities/{new_client_id()}", {"roles": ["Owner"]}),
        (f"identities/{new_client_id()}", {"roles": "Data Operator for Managed Disks"}),
        (f"identities/{new_client_id()}", {"scope": "/subscriptions/x"}),
        ("entra", {"refuse_protected_previous": "yes"}),
        ("entra", {}),
    ):
        answer = requests.put(base + path, json=body, headers=root, verify=ca)
        assert answer.status_code == 400 and answer.json()["error"]
    assert requests.put(base + "identities", json={}, headers=root, verify=ca).status_code == 405
    assert control(emulator_env, "entra") == {"refuse_protected_previous": False}


# --- persistence -----------------------------------------------------------------------------


def test_modes_roles_and_signing_key_survive_a_restart_and_old_data_dirs_gain_secrets(
    fresh_emulator: Any,
) -> None:
    emu = fresh_emulator()
    secrets_file = emu.data_dir / "secrets.json"
    stored = json.loads(secrets_file.read_text())
    secrets_file.write_text(
        json.dumps({k: stored[k] for k in ("access_token", "account_key")})
    )  # an older emulator's
    emu.restart()
    env = emu.env
    upgraded = json.loads(secrets_file.read_text())
    assert set(upgraded) == {"access_token", "account_key", "identity_header", "signing_key"}
    assert (
        upgraded["access_token"] == stored["access_token"]
        and env["IDENTITY_HEADER"] == upgraded["identity_header"]
    )
    assert stat.S_IMODE(secrets_file.stat().st_mode) == 0o600
    assert env["IDENTITY_ENDPOINT"] == env["REPLICATOR_BLOB_ENDPOINT"] + "/_emulator/identity/token"
    assert "IDENTITY_HEADER=" in emu.env_file.read_text()

    client = compute(env)
    client.disks.begin_create_or_update("rg", "d", disk_body("AzureActiveDirectory")).result()
    client_id = new_client_id()
    control(env, f"identities/{client_id}", {"actions": ["Microsoft.Compute/disks/download/action"]})
    before = token(env, DISK, client_id)
    client.close()
    emu.restart()
    client = compute(emu.env)
    assert client.disks.get("rg", "d").data_access_auth_mode == "AzureActiveDirectory"
    sas = (
        client.disks.begin_grant_access("rg", "d", {"access": "Read", "durationInSeconds": 600})
        .result()
        .access_sas
    )
    assert raw(emu.env, "HEAD", sas).status_code == 401
    assert raw(emu.env, "HEAD", sas, before).status_code == 200  # same key, same roles after the restart
    client.disks.begin_revoke_access("rg", "d").result()
    client.close()


def test_the_tenant_endpoints_are_never_faulted(fresh_emulator: Any) -> None:
    """Fault injection answers as a storage account fails; the identity endpoint is not one."""
    env = fresh_emulator("--fault-rate", "1", "--fault-kinds", "busy").env
    for _ in range(3):
        assert claims(token(env))["aud"] == DISK
    assert control(env, "entra") == {"refuse_protected_previous": False}
    assert raw(env, "GET", env["REPLICATOR_BLOB_ENDPOINT"] + "/acct/c?restype=container").status_code == 503
