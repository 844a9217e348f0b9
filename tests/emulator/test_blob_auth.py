"""Blob-plane authentication and authorization: bearer, Shared Key, service/account/snapshot SAS."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from azure.core.exceptions import ClientAuthenticationError, HttpResponseError
from azure.storage.blob import (
    AccessPolicy,
    AccountSasPermissions,
    BlobLeaseClient,
    BlobServiceClient,
    ResourceTypes,
    generate_account_sas,
    generate_blob_sas,
    generate_container_sas,
)

from tests.helpers.blob_clients import BlobClients

P = 512


@pytest.fixture
def account(blob_clients: BlobClients, unique_name) -> str:
    """An account with container c holding page blob b (one page of data) and one snapshot."""
    name = unique_name("acct")
    service = blob_clients.key(name)
    service.create_container("c")
    blob = service.get_blob_client("c", "b")
    blob.create_page_blob(4 * P)
    blob.upload_page(b"d" * P, offset=0, length=P)
    return name


def later(hours: float = 1) -> datetime:
    return datetime.now(UTC) + timedelta(hours=hours)


def test_bearer_token(blob_clients: BlobClients, account: str) -> None:
    blob = blob_clients.bearer(account).get_blob_client("c", "b")
    assert blob.download_blob(offset=0, length=P).readall() == b"d" * P
    blob.upload_page(b"e" * P, offset=P, length=P)
    with pytest.raises(ClientAuthenticationError) as exc:
        blob_clients.bearer(account, "not-the-token").get_blob_client("c", "b").get_blob_properties()
    assert exc.value.status_code == 401


def test_shared_key_wrong_key_and_wrong_account(blob_clients: BlobClients, account: str) -> None:
    wrong = BlobServiceClient(
        blob_clients.url(account),
        {"account_name": account, "account_key": "d3Jvbmcga2V5IHdyb25nIGtleSB3cm9uZyBrZXk="},
        connection_verify=blob_clients.env["SSL_CERT_FILE"],
    )
    with pytest.raises(ClientAuthenticationError) as exc:
        wrong.get_blob_client("c", "b").download_blob(offset=0, length=P)
    assert exc.value.error_code == "AuthenticationFailed"
    with pytest.raises(HttpResponseError) as exc:
        wrong.get_container_client("c").create_container()
    assert exc.value.status_code == 403


def test_blob_sas_valid_expired_and_wrong_permission(blob_clients: BlobClients, account: str) -> None:
    key = blob_clients.env["REPLICATOR_ACCOUNT_KEY"]
    url = f"{blob_clients.url(account)}/c/b"
    read = generate_blob_sas(account, "c", "b", account_key=key, permission="r", expiry=later())
    blob = blob_clients.blob_from_url(f"{url}?{read}")
    assert blob.download_blob(offset=0, length=P).readall() == b"d" * P
    with pytest.raises(HttpResponseError) as exc:
        blob.upload_page(b"x" * P, offset=0, length=P)
    assert (exc.value.status_code, exc.value.error_code) == (403, "AuthorizationPermissionMismatch")
    expired = generate_blob_sas(account, "c", "b", account_key=key, permission="r", expiry=later(-1))
    with pytest.raises(ClientAuthenticationError) as exc:
        blob_clients.blob_from_url(f"{url}?{expired}").get_blob_properties()
    assert exc.value.error_code == "AuthenticationFailed"
    not_yet = generate_blob_sas(
        account, "c", "b", account_key=key, permission="r", expiry=later(2), start=later(1)
    )
    with pytest.raises(ClientAuthenticationError):
        blob_clients.blob_from_url(f"{url}?{not_yet}").get_blob_properties()
    other_blob = generate_blob_sas(account, "c", "other", account_key=key, permission="r", expiry=later())
    with pytest.raises(ClientAuthenticationError):  # signed for another blob: the signature does not match
        blob_clients.blob_from_url(f"{url}?{other_blob}").get_blob_properties()
    tampered = read.replace("sp=r", "sp=rw")
    with pytest.raises(ClientAuthenticationError):
        blob_clients.blob_from_url(f"{url}?{tampered}").upload_page(b"x" * P, offset=0, length=P)


def test_snapshot_sas(blob_clients: BlobClients, account: str) -> None:
    key = blob_clients.env["REPLICATOR_ACCOUNT_KEY"]
    snap = blob_clients.key(account).get_blob_client("c", "b").create_snapshot()["snapshot"]
    sas = generate_blob_sas(account, "c", "b", snapshot=snap, account_key=key, permission="r", expiry=later())
    url = f"{blob_clients.url(account)}/c/b"
    assert blob_clients.blob_from_url(f"{url}?snapshot={snap}&{sas}").get_blob_properties().snapshot == snap
    with pytest.raises(ClientAuthenticationError):  # a snapshot SAS does not open the base blob
        blob_clients.blob_from_url(f"{url}?{sas}").get_blob_properties()


def test_container_sas(blob_clients: BlobClients, account: str) -> None:
    key = blob_clients.env["REPLICATOR_ACCOUNT_KEY"]
    sas = generate_container_sas(account, "c", account_key=key, permission="rwl", expiry=later())
    service = BlobServiceClient(
        blob_clients.url(account), sas, connection_verify=blob_clients.env["SSL_CERT_FILE"]
    )
    container = service.get_container_client("c")
    assert [b.name for b in container.list_blobs()] == ["b"]
    container.get_blob_client("b").upload_page(b"z" * P, offset=2 * P, length=P)
    with pytest.raises(HttpResponseError) as exc:
        container.get_blob_client("b").delete_blob(delete_snapshots="include")
    assert exc.value.error_code == "AuthorizationPermissionMismatch"


def test_account_sas(blob_clients: BlobClients, account: str) -> None:
    key = blob_clients.env["REPLICATOR_ACCOUNT_KEY"]
    sas = generate_account_sas(
        account,
        key,
        ResourceTypes(container=True, object=True),
        AccountSasPermissions(read=True, list=True),
        expiry=later(),
    )
    service = BlobServiceClient(
        blob_clients.url(account), sas, connection_verify=blob_clients.env["SSL_CERT_FILE"]
    )
    assert service.get_blob_client("c", "b").download_blob(offset=0, length=P).readall() == b"d" * P
    assert [b.name for b in service.get_container_client("c").list_blobs()] == ["b"]
    with pytest.raises(HttpResponseError) as exc:
        service.get_blob_client("c", "b").upload_page(b"x" * P, offset=0, length=P)
    assert exc.value.error_code == "AuthorizationPermissionMismatch"
    objects_only = generate_account_sas(
        account, key, ResourceTypes(object=True), AccountSasPermissions(read=True, list=True), expiry=later()
    )
    service = BlobServiceClient(
        blob_clients.url(account), objects_only, connection_verify=blob_clients.env["SSL_CERT_FILE"]
    )
    with pytest.raises(HttpResponseError) as exc:
        list(service.get_container_client("c").list_blobs())
    assert exc.value.error_code == "AuthorizationResourceTypeMismatch"


def test_no_credential_is_refused(blob_clients: BlobClients, account: str) -> None:
    anonymous = blob_clients.blob_from_url(f"{blob_clients.url(account)}/c/b")
    with pytest.raises(HttpResponseError) as exc:
        anonymous.download_blob(offset=0, length=P)
    assert exc.value.status_code == 401


def test_only_an_account_sas_creates_or_deletes_containers(blob_clients: BlobClients, account: str) -> None:
    """Azure: Create/Delete Container take an account SAS (srt with c); no service SAS grants them, and
    calling an operation a SAS kind cannot grant is 403 AuthorizationFailure ("SAS error codes")."""
    key = blob_clients.env["REPLICATOR_ACCOUNT_KEY"]
    verify = blob_clients.env["SSL_CERT_FILE"]
    for name in ("new", "c"):  # a missing container and an existing one alike
        container_sas = generate_container_sas(
            account, name, account_key=key, permission="racwdl", expiry=later()
        )
        container = BlobServiceClient(blob_clients.url(account), container_sas, connection_verify=verify)
        for call in (container.create_container, container.delete_container):
            with pytest.raises(HttpResponseError) as exc:
                call(name)
            assert (exc.value.status_code, exc.value.error_code) == (403, "AuthorizationFailure")
    blob_sas = generate_blob_sas(account, "new", "b", account_key=key, permission="racwd", expiry=later())
    with pytest.raises(HttpResponseError) as exc:
        BlobServiceClient(blob_clients.url(account), blob_sas, connection_verify=verify).create_container(
            "new"
        )
    assert exc.value.status_code == 403
    account_sas = generate_account_sas(
        account,
        key,
        ResourceTypes(container=True, object=True),
        AccountSasPermissions(create=True, delete=True, read=True),
        expiry=later(),
    )
    service = BlobServiceClient(blob_clients.url(account), account_sas, connection_verify=verify)
    service.create_container("new")
    service.delete_container("new")
    write_only = generate_account_sas(
        account, key, ResourceTypes(container=True), AccountSasPermissions(write=True), expiry=later()
    )  # Azure: Create Container takes create (c) or write (w)
    BlobServiceClient(blob_clients.url(account), write_only, connection_verify=verify).create_container("new")


def test_account_sas_for_another_service(blob_clients: BlobClients, account: str) -> None:
    """Azure's "SAS error codes": an account SAS whose `ss` lacks the blob service is
    403 AuthorizationServiceMismatch."""
    key = blob_clients.env["REPLICATOR_ACCOUNT_KEY"]
    queue_only = generate_account_sas(
        account,
        key,
        ResourceTypes(object=True),
        AccountSasPermissions(read=True),
        expiry=later(),
        services="q",
    )
    service = BlobServiceClient(
        blob_clients.url(account), queue_only, connection_verify=blob_clients.env["SSL_CERT_FILE"]
    )
    with pytest.raises(HttpResponseError) as exc:
        service.get_blob_client("c", "b").get_blob_properties()
    assert (exc.value.status_code, exc.value.error_code) == (403, "AuthorizationServiceMismatch")


def test_a_container_sas_reads_no_container_properties(blob_clients: BlobClients, account: str) -> None:
    """Azure: a service SAS cannot read or write container properties or metadata (AuthorizationFailure);
    List Blobs is the only container operation it grants."""
    key = blob_clients.env["REPLICATOR_ACCOUNT_KEY"]
    sas = generate_container_sas(account, "c", account_key=key, permission="racwdl", expiry=later())
    service = BlobServiceClient(
        blob_clients.url(account), sas, connection_verify=blob_clients.env["SSL_CERT_FILE"]
    )
    with pytest.raises(HttpResponseError) as exc:
        service.get_container_client("c").get_container_properties()
    assert (exc.value.status_code, exc.value.error_code) == (403, "AuthorizationFailure")
    assert [b.name for b in service.get_container_client("c").list_blobs()] == ["b"]


def test_delete_breaks_a_lease(blob_clients: BlobClients, account: str) -> None:
    """Azure: Lease Blob takes write (w); delete (d) also breaks a lease (2017-07-29 and later)."""
    key = blob_clients.env["REPLICATOR_ACCOUNT_KEY"]
    blob_clients.key(account).get_blob_client("c", "b").acquire_lease(lease_duration=60)
    sas = generate_blob_sas(account, "c", "b", account_key=key, permission="d", expiry=later())
    blob = blob_clients.blob_from_url(f"{blob_clients.url(account)}/c/b?{sas}")
    with pytest.raises(HttpResponseError) as exc:
        BlobLeaseClient(blob).acquire(lease_duration=15)
    assert exc.value.error_code == "AuthorizationPermissionMismatch"
    BlobLeaseClient(blob).break_lease(lease_break_period=0)
    assert blob_clients.key(account).get_blob_client("c", "b").get_blob_properties().lease.state == "broken"


def test_stored_access_policy_from_set_container_acl(blob_clients: BlobClients, account: str) -> None:
    """Set Container ACL stores the policies a SAS names with `si=`; its letters are the SAS's, a
    new ACL replaces the old one (revoking its SASes), and no SAS may set an ACL (AuthorizationFailure)."""
    key = blob_clients.env["REPLICATOR_ACCOUNT_KEY"]
    verify = blob_clients.env["SSL_CERT_FILE"]
    owner = blob_clients.key(account).get_container_client("c")
    owner.set_container_access_policy(
        {"reader": AccessPolicy(permission="rl", expiry=later(), start=later(-1))}
    )
    sas = generate_container_sas(account, "c", account_key=key, policy_id="reader")
    container = BlobServiceClient(
        blob_clients.url(account), sas, connection_verify=verify
    ).get_container_client("c")
    assert [b.name for b in container.list_blobs()] == ["b"]
    with pytest.raises(HttpResponseError) as exc:
        container.get_blob_client("b").delete_blob()
    assert exc.value.error_code == "AuthorizationPermissionMismatch"
    with pytest.raises(HttpResponseError) as exc:
        container.set_container_access_policy({})
    assert (exc.value.status_code, exc.value.error_code) == (403, "AuthorizationFailure")
    owner.set_container_access_policy({})
    with pytest.raises(ClientAuthenticationError):  # the policy is gone: its SAS is revoked
        list(container.list_blobs())
