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

from replicator.ranges import Range, to_http_range


class ContentMismatch(HttpResponseError):
    """The body of a ranged read does not match its Content-MD5: corrupted in transit, retry it."""


async def read_range(client: BlobClient, r: Range, *, md5: bool = False, **kwargs: Any) -> bytes:
    """The bytes `r` of `client`'s blob (or snapshot), in one Get Blob request.

    With `md5`, the service is asked for the range's Content-MD5 (ranges up to 4 MiB) and the body is
    checked against it. Extra keyword arguments go to the SDK call (e.g. `retry_total=0`).
    """
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
    if md5:
        expected = response.headers.get("Content-MD5")
        actual = base64.b64encode(hashlib.md5(body).digest()).decode()
        if expected != actual:
            raise ContentMismatch(
                f"Get Blob of {r}: Content-MD5 {actual} does not match the service's {expected}."
            )
    return body
