"""Containers, page and block blobs, snapshots, leases and conditions through the real (sync) SDK."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
import requests
from azure.core import MatchConditions
from azure.core.exceptions import (
    HttpResponseError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)
from azure.storage.blob import BlobClient, ContainerClient

from tests.helpers.blob_clients import BlobClients

P = 512


@pytest.fixture
def container(blob_clients: BlobClients, unique_name) -> ContainerClient:
    client = blob_clients.key(unique_name("acct")).get_container_client(unique_name("c"))
    client.create_container(metadata={"purpose": "test"})
    return client


@pytest.fixture
def page_blob(container: ContainerClient) -> BlobClient:
    blob = container.get_blob_client(f"disk-{uuid.uuid4().hex[:8]}.vhd")
    blob.create_page_blob(64 * P)
    return blob


def error_code(exc: pytest.ExceptionInfo[HttpResponseError]) -> str | None:
    return exc.value.error_code


def test_container_lifecycle(blob_clients: BlobClients, unique_name) -> None:
    client = blob_clients.key(unique_name("acct")).get_container_client("c1")
    with pytest.raises(ResourceNotFoundError) as exc:
        client.get_container_properties()
    assert error_code(exc) == "ContainerNotFound"
    client.create_container(metadata={"k": "v"})
    with pytest.raises(ResourceExistsError) as exc:
        client.create_container()
    assert error_code(exc) == "ContainerAlreadyExists"
    props = client.get_container_properties()
    assert props.metadata == {"k": "v"} and props.etag
    client.delete_container()
    assert not client.exists()


def test_blob_in_missing_container(blob_clients: BlobClients, unique_name) -> None:
    blob = blob_clients.key(unique_name("acct")).get_blob_client("nope", "b")
    with pytest.raises(ResourceNotFoundError) as exc:
        blob.create_page_blob(P)
    assert error_code(exc) == "ContainerNotFound"


def test_page_blob_write_read_clear(page_blob: BlobClient) -> None:
    page_blob.upload_page(b"a" * 2 * P, offset=P, length=2 * P)
    page_blob.upload_page(b"b" * P, offset=4 * P, length=P, validate_content=True)
    data = page_blob.download_blob().readall()
    assert data == bytes(P) + b"a" * 2 * P + bytes(P) + b"b" * P + bytes(59 * P)
    assert page_blob.download_blob(offset=P, length=P).readall() == b"a" * P
    page_blob.clear_page(offset=P, length=P)
    assert page_blob.download_blob(offset=0, length=3 * P).readall() == bytes(2 * P) + b"a" * P
    props = page_blob.get_blob_properties()
    assert (props.size, props.blob_type) == (64 * P, "PageBlob")
    assert props.etag and props.last_modified


def raw_put_page(blob: BlobClient, env: dict[str, str], data: bytes, byte_range: str, **headers: str):
    """A Put Page the SDK would refuse to send (it validates alignment and computes MD5 itself)."""
    return requests.put(
        blob.url + "?comp=page",
        data=data,
        headers={
            "Authorization": f"Bearer {env['REPLICATOR_ACCESS_TOKEN']}",
            "x-ms-page-write": "update",
            "x-ms-range": byte_range,
            "x-ms-version": "2026-10-06",
            **headers,
        },
        verify=env["SSL_CERT_FILE"],
        timeout=10,
    )


def test_page_write_validation(page_blob: BlobClient, emulator_env: dict[str, str]) -> None:
    response = raw_put_page(page_blob, emulator_env, b"a" * 100, "bytes=0-99")
    assert (response.status_code, response.headers["x-ms-error-code"]) == (400, "InvalidHeaderValue")
    with pytest.raises(HttpResponseError) as exc:
        page_blob.upload_page(b"a" * P, offset=64 * P, length=P)
    assert (exc.value.status_code, error_code(exc)) == (416, "InvalidPageRange")
    response = raw_put_page(
        page_blob, emulator_env, b"a" * P, "bytes=0-511", **{"Content-MD5": "A" * 22 + "=="}
    )
    assert (response.status_code, response.headers["x-ms-error-code"]) == (400, "Md5Mismatch")
    assert "<Code>Md5Mismatch</Code>" in response.text
    assert (
        response.headers["x-ms-request-id"] and response.headers["x-ms-version"] and response.headers["Date"]
    )
    big = 4 * 1024 * 1024 + P
    response = raw_put_page(page_blob, emulator_env, b"a" * big, f"bytes=0-{big - 1}")
    assert response.status_code == 413


def test_page_blob_size_limits(container: ContainerClient) -> None:
    with pytest.raises(HttpResponseError) as exc:
        container.get_blob_client("unaligned").create_page_blob(1000)
    assert error_code(exc) == "InvalidHeaderValue"
    with pytest.raises(HttpResponseError) as exc:
        container.get_blob_client("huge").create_page_blob(8 * 1024**4 + P)
    assert error_code(exc) == "InvalidHeaderValue"
    container.get_blob_client("max").create_page_blob(8 * 1024**4)


def test_metadata_resize_and_content_settings(page_blob: BlobClient) -> None:
    page_blob.upload_page(b"x" * P, offset=63 * P, length=P)
    page_blob.set_blob_metadata({"state": "busy", "Offset": "42"})
    assert page_blob.get_blob_properties().metadata == {"state": "busy", "Offset": "42"}
    page_blob.resize_blob(32 * P)
    assert page_blob.get_blob_properties().size == 32 * P
    page_blob.resize_blob(64 * P)
    assert page_blob.download_blob(offset=63 * P, length=P).readall() == bytes(P)


def test_snapshots_list_and_delete(container: ContainerClient, page_blob: BlobClient) -> None:
    page_blob.set_blob_metadata({"v": "1"})
    page_blob.upload_page(b"1" * P, offset=0, length=P)
    snap1 = page_blob.create_snapshot(metadata={"restore": "point1"})["snapshot"]
    page_blob.upload_page(b"2" * P, offset=0, length=P)
    snap2 = page_blob.create_snapshot()["snapshot"]
    page_blob.upload_page(b"3" * P, offset=0, length=P)
    old = container.get_blob_client(page_blob.blob_name, snapshot=snap1)
    assert old.download_blob(offset=0, length=P).readall() == b"1" * P
    assert old.get_blob_properties().metadata == {"restore": "point1"}
    assert container.get_blob_client(page_blob.blob_name, snapshot=snap2).get_blob_properties().metadata == {
        "v": "1"
    }
    listed = [
        (b.name, b.snapshot, b.metadata) for b in container.list_blobs(include=["snapshots", "metadata"])
    ]
    assert listed == [
        (page_blob.blob_name, snap1, {"restore": "point1"}),
        (page_blob.blob_name, snap2, {"v": "1"}),
        (page_blob.blob_name, None, {"v": "1"}),
    ]
    with pytest.raises(ResourceExistsError) as exc:
        page_blob.delete_blob()
    assert error_code(exc) == "SnapshotsPresent"
    old.delete_blob()
    with pytest.raises(ResourceNotFoundError):
        old.get_blob_properties()
    page_blob.delete_blob(delete_snapshots="only")
    assert [b.snapshot for b in container.list_blobs(include=["snapshots"])] == [None]
    page_blob.create_snapshot()
    page_blob.delete_blob(delete_snapshots="include")
    assert list(container.list_blobs(include=["snapshots"])) == []


def test_list_blobs_prefix_and_paging(container: ContainerClient) -> None:
    names = [f"p/{i:02d}" for i in range(7)] + ["q/0"]
    for name in names:
        container.get_blob_client(name).create_page_blob(P)
    pages = container.list_blobs(name_starts_with="p/", results_per_page=3).by_page()
    seen = [[b.name for b in page] for page in pages]
    assert seen == [names[0:3], names[3:6], names[6:7]]


def test_block_blob_is_detected_and_refuses_pages(container: ContainerClient) -> None:
    blob = container.get_blob_client("block")
    blob.upload_blob(b"hello")
    props = blob.get_blob_properties()
    assert (props.blob_type, props.size) == ("BlockBlob", 5)
    assert blob.download_blob().readall() == b"hello"
    with pytest.raises(HttpResponseError) as exc:
        blob.upload_page(b"a" * P, offset=0, length=P)
    assert (exc.value.status_code, error_code(exc)) == (409, "InvalidBlobType")


def test_leases(page_blob: BlobClient) -> None:
    lease = page_blob.acquire_lease(lease_duration=15)
    with pytest.raises(ResourceExistsError) as exc:
        page_blob.acquire_lease(lease_duration=15)
    assert error_code(exc) == "LeaseAlreadyPresent"
    with pytest.raises(HttpResponseError) as exc:
        page_blob.upload_page(b"a" * P, offset=0, length=P)
    assert (exc.value.status_code, error_code(exc)) == (412, "LeaseIdMissing")
    with pytest.raises(HttpResponseError) as exc:
        page_blob.upload_page(b"a" * P, offset=0, length=P, lease=str(uuid.uuid4()))
    assert error_code(exc) == "LeaseIdMismatchWithBlobOperation"
    for refused in (
        lambda: page_blob.set_blob_metadata({"a": "b"}),
        lambda: page_blob.resize_blob(P),
        page_blob.delete_blob,
        lambda: page_blob.clear_page(offset=0, length=P),
    ):
        with pytest.raises(HttpResponseError) as exc:
            refused()
        assert error_code(exc) == "LeaseIdMissing"
    page_blob.upload_page(b"a" * P, offset=0, length=P, lease=lease)
    page_blob.set_blob_metadata({"a": "b"}, lease=lease)
    assert page_blob.get_blob_properties().lease.state == "leased"
    lease.renew()
    new_id = str(uuid.uuid4())
    lease.change(new_id)
    assert lease.id == new_id
    lease.release()
    with pytest.raises(HttpResponseError) as exc:
        page_blob.upload_page(b"a" * P, offset=0, length=P, lease=new_id)
    assert error_code(exc) == "LeaseNotPresentWithBlobOperation"
    infinite = page_blob.acquire_lease(lease_duration=-1)
    assert page_blob.get_blob_properties().lease.duration == "infinite"
    infinite.break_lease(lease_break_period=0)
    assert page_blob.get_blob_properties().lease.state == "broken"
    with pytest.raises(HttpResponseError) as exc:
        infinite.renew()
    assert error_code(exc) == "LeaseIsBrokenAndCannotBeRenewed"
    page_blob.upload_page(b"b" * P, offset=0, length=P)  # a broken lease no longer locks


def test_lease_duration_is_validated(page_blob: BlobClient) -> None:
    with pytest.raises(HttpResponseError) as exc:
        page_blob.acquire_lease(lease_duration=5)
    assert error_code(exc) == "InvalidHeaderValue"


def test_conditional_headers(page_blob: BlobClient) -> None:
    etag = page_blob.get_blob_properties().etag
    page_blob.upload_page(
        b"a" * P, offset=0, length=P, etag=etag, match_condition=MatchConditions.IfNotModified
    )
    with pytest.raises(ResourceModifiedError) as exc:
        page_blob.upload_page(
            b"a" * P, offset=0, length=P, etag=etag, match_condition=MatchConditions.IfNotModified
        )
    assert error_code(exc) == "ConditionNotMet"
    new_etag = page_blob.get_blob_properties().etag
    assert new_etag != etag
    future = datetime.now(UTC) + timedelta(hours=1)
    past = datetime.now(UTC) - timedelta(hours=1)
    with pytest.raises(ResourceModifiedError):
        page_blob.set_blob_metadata({"a": "b"}, if_unmodified_since=past)
    page_blob.set_blob_metadata({"a": "b"}, if_unmodified_since=future)
    with pytest.raises(HttpResponseError) as exc:  # a read with If-None-Match on the current ETag: 304
        page_blob.get_blob_properties(
            etag=page_blob.get_blob_properties().etag, match_condition=MatchConditions.IfModified
        )
    assert exc.value.status_code == 304
    assert page_blob.get_blob_properties(if_modified_since=past).size == 64 * P


def test_downloads_empty_sparse_and_md5_validated(container: ContainerClient) -> None:
    empty = container.get_blob_client("empty")
    empty.create_page_blob(0)
    assert empty.download_blob().readall() == b""
    sparse = container.get_blob_client("sparse")
    sparse.create_page_blob(40 * 1024 * 1024)  # over the SDK's first 32 MiB GET: chunked download
    sparse.upload_page(b"z" * P, offset=40 * 1024 * 1024 - P, length=P)
    data = sparse.download_blob(max_concurrency=2).readall()
    assert len(data) == 40 * 1024 * 1024 and data.endswith(b"z" * P) and data.count(b"z") == P
    part = sparse.download_blob(offset=40 * 1024 * 1024 - 2 * P, length=2 * P, validate_content=True)
    assert part.readall() == bytes(P) + b"z" * P
    with pytest.raises(HttpResponseError) as exc:
        sparse.download_blob(offset=40 * 1024 * 1024, length=P)
    assert (exc.value.status_code, exc.value.error_code) == (416, "InvalidRange")


def test_unsupported_operations_are_refused_loudly(
    page_blob: BlobClient, emulator_env: dict[str, str]
) -> None:
    headers = {
        "Authorization": f"Bearer {emulator_env['REPLICATOR_ACCESS_TOKEN']}",
        "x-ms-version": "2026-10-06",
    }
    verify = emulator_env["SSL_CERT_FILE"]
    answer = requests.put(page_blob.url + "?comp=appendblock", headers=headers, verify=verify, timeout=10)
    assert (answer.status_code, answer.headers["x-ms-error-code"]) == (501, "NotImplemented")
    answer = requests.post(page_blob.url, headers=headers, verify=verify, timeout=10)
    assert (answer.status_code, answer.headers["x-ms-error-code"]) == (405, "UnsupportedHttpVerb")
    answer = requests.put(
        page_blob.url + "?comp=page",
        headers={
            **headers,
            "x-ms-page-write": "clear",
            "x-ms-range": "bytes=0-511",
            "x-ms-if-sequence-number-le": "3",
        },
        verify=verify,
        timeout=10,
    )
    assert (answer.status_code, answer.headers["x-ms-error-code"]) == (400, "UnsupportedHeader")
