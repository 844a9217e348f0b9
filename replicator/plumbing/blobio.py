"""Ranged reads of page blobs that cost one request each.

Why not `BlobClient.download_blob`: on a page blob, the SDK's downloader first lists *every* page
range of the blob with one unpaged Get Page Ranges call, on every download, to skip empty parts
(azure-storage-blob, aio/_download_async.py `_initial_request`). For a 4 MiB chunk of a large,
fragmented disk that is a whole-disk listing per chunk: quadratic work, and against real Azure a
listing that can time out. So reads go straight to the Get Blob operation with an explicit range.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any

from azure.core.exceptions import HttpResponseError
from azure.storage.blob.aio import BlobClient

from replicator.core.ranges import Range, to_http_range


class ContentMismatch(HttpResponseError):
    """The body of a ranged read does not match its Content-MD5: corrupted in transit, retry it."""


async def read_range(client: BlobClient, r: Range, **kwargs: Any) -> bytes:
    """The bytes `r` of `client`'s blob (or snapshot), in one Get Blob request.

    Extra keyword arguments go to the SDK call (e.g. `retry_total=0`).
    """
    body, _ = await _get(client, r, md5=False, **kwargs)
    return body


async def read_range_md5(client: BlobClient, r: Range, **kwargs: Any) -> tuple[bytes, bytes]:
    """Like `read_range` (ranges up to 4 MiB), with the service's Content-MD5 of the range checked
    against the body; returns the body and that MD5 digest, so a writer can send it on with the bytes
    instead of hashing them again."""
    body, headers = await _get(client, r, md5=True, **kwargs)
    expected = headers.get("Content-MD5")
    digest = hashlib.md5(body).digest()
    if expected != base64.b64encode(digest).decode():
        raise ContentMismatch(
            f"Get Blob of {r}: Content-MD5 {base64.b64encode(digest).decode()} does not match the "
            f"service's {expected}."
        )
    return body, digest


async def _get(client: BlobClient, r: Range, *, md5: bool, **kwargs: Any) -> tuple[bytes, Any]:
    response = await client._client.blob.download(  # the generated operation: see module docstring
        snapshot=client.snapshot,
        range=to_http_range(r),
        range_get_content_md5=md5 or None,
        cls=lambda pipeline_response, _deserialized, _headers: pipeline_response.http_response,
        **kwargs,
    )
    body = await response.read()
    if len(body) != r.length:
        raise ContentMismatch(f"Get Blob of {r} returned {len(body)} bytes instead of {r.length}.")
    return body, response.headers
