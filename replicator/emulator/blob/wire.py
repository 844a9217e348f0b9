"""Blob-plane wire format: parse headers into typed values, serialize typed results to headers and XML.

Only parsing and serialization of the typed values of model.py: no state, no decisions (those
are in the backend, backend.py).
"""

from __future__ import annotations

import email.utils
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from datetime import datetime
from xml.sax.saxutils import escape

from replicator.emulator.blob.conditions import Conditions
from replicator.emulator.blob.model import (
    BlobProps,
    ContainerProps,
    PageRangeList,
    StoredPolicy,
)
from replicator.emulator.blob.signing import API_VERSION
from replicator.emulator.errors import blob as blob_errors

XML_HEAD = '<?xml version="1.0" encoding="utf-8"?>'
META = "x-ms-meta-"


def http_date(epoch: float) -> str:
    return email.utils.formatdate(epoch, usegmt=True)


def parse_http_date(value: str, name: str) -> float:
    try:
        return email.utils.parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        raise blob_errors.invalid_header_value(f"The {name} header is not an HTTP date.") from None


def parse_int(value: str | None, name: str) -> int | None:
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        raise blob_errors.invalid_header_value(f"The value of {name} is not an integer.") from None


def parse_range(value: str | None, name: str) -> tuple[int, int | None] | None:
    """`bytes=a-b` (inclusive, Azure style) or `bytes=a-` → (start, end exclusive or None)."""
    if value is None:
        return None
    unit, _, spec = value.partition("=")
    first, dash, last = spec.partition("-")
    try:
        if unit.strip() != "bytes" or not dash:
            raise ValueError(value)
        start = int(first)
        end = int(last) + 1 if last.strip() else None
    except ValueError:
        raise blob_errors.invalid_header_value(
            f"The {name} header is not of the form bytes=start-end."
        ) from None
    if start < 0 or (end is not None and end <= start):
        raise blob_errors.invalid_range(f"The {name} header names an empty or reversed range.")
    return start, end


def request_range(headers: Mapping[str, str]) -> tuple[int, int | None] | None:
    """x-ms-range wins over Range, as in Azure."""
    if "x-ms-range" in headers:
        return parse_range(headers["x-ms-range"], "x-ms-range")
    return parse_range(headers.get("Range"), "Range")


def conditions(headers: Mapping[str, str]) -> Conditions | None:
    names = ("If-Match", "If-None-Match", "If-Modified-Since", "If-Unmodified-Since")
    if not any(n in headers for n in names):
        return None
    ims, ius = headers.get("If-Modified-Since"), headers.get("If-Unmodified-Since")
    return Conditions(
        if_match=headers.get("If-Match"),
        if_none_match=headers.get("If-None-Match"),
        if_modified_since=parse_http_date(ims, "If-Modified-Since") if ims else None,
        if_unmodified_since=parse_http_date(ius, "If-Unmodified-Since") if ius else None,
    )


def metadata(headers: Mapping[str, str]) -> dict[str, str]:
    """x-ms-meta-NAME headers, names as sent (Azure keeps their case)."""
    return {k[len(META) :]: v for k, v in headers.items() if k.lower().startswith(META)}


def signed_identifiers(body: bytes) -> list[StoredPolicy]:
    """The stored access policies of a Set Container ACL body (`<SignedIdentifiers>`)."""
    try:
        root = ET.fromstring(body) if body.strip() else ET.Element("SignedIdentifiers")
        policies = [
            StoredPolicy(
                item.findtext("Id") or "",
                item.findtext("AccessPolicy/Permission") or "",
                _iso_time(item.findtext("AccessPolicy/Start")),
                _iso_time(item.findtext("AccessPolicy/Expiry")),
            )
            for item in root.iterfind("SignedIdentifier")
        ]
    except (ET.ParseError, ValueError):
        raise blob_errors.invalid_xml_document() from None
    if root.tag != "SignedIdentifiers" or not all(p.id for p in policies):
        raise blob_errors.invalid_xml_document()
    return policies


def _iso_time(value: str | None) -> float | None:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() if value else None


def base_headers(request_headers: Mapping[str, str]) -> dict[str, str]:
    """Headers every answer carries."""
    return {
        "x-ms-request-id": str(uuid.uuid4()),
        "x-ms-version": request_headers.get("x-ms-version", API_VERSION),
        "Date": email.utils.formatdate(usegmt=True),
        "Server": "replicator-emulator",
    }


def error_body(error: blob_errors.BlobError) -> str:
    return (
        f"{XML_HEAD}<Error><Code>{escape(error.code)}</Code>"
        f"<Message>{escape(error.message)}</Message>"
        + (
            f"<AuthenticationErrorDetail>{escape(error.detail)}</AuthenticationErrorDetail>"
            if error.detail
            else ""
        )
        + "</Error>"
    )


def etag_headers(etag: str, last_modified: float) -> dict[str, str]:
    return {"ETag": etag, "Last-Modified": http_date(last_modified)}


def blob_headers(props: BlobProps) -> dict[str, str]:
    """Get Blob / Get Blob Properties headers (minus Content-Length and Content-Range)."""
    out = {
        **etag_headers(props.etag, props.last_modified),
        "Content-Type": props.content_type,
        "x-ms-blob-type": props.blob_type,
        "x-ms-creation-time": http_date(props.created),
        "x-ms-lease-state": props.lease.state,
        "x-ms-lease-status": props.lease.status,
        "x-ms-server-encrypted": "true",
        "Accept-Ranges": "bytes",
    }
    if props.lease.duration:
        out["x-ms-lease-duration"] = props.lease.duration
    if props.blob_type == "PageBlob":
        out["x-ms-blob-sequence-number"] = "0"
    if props.snapshot is None:
        out["x-ms-is-current-version"] = "true"
    out.update({META + k: v for k, v in props.metadata.items()})
    return out


def container_headers(props: ContainerProps) -> dict[str, str]:
    return {
        **etag_headers(props.etag, props.last_modified),
        "x-ms-lease-state": "available",
        "x-ms-lease-status": "unlocked",
        "x-ms-has-immutability-policy": "false",
        "x-ms-has-legal-hold": "false",
        **{META + k: v for k, v in props.metadata.items()},
    }


def page_list_xml(result: PageRangeList) -> str:
    """Azure's PageList: PageRange and ClearRange interleaved in offset order, inclusive ends."""
    parts = [XML_HEAD, "<PageList>"]
    for start, end, is_data in result.ranges:
        tag = "PageRange" if is_data else "ClearRange"
        parts.append(f"<{tag}><Start>{start}</Start><End>{end - 1}</End></{tag}>")
    if result.next_marker:
        parts.append(f"<NextMarker>{escape(result.next_marker)}</NextMarker>")
    parts.append("</PageList>")
    return "".join(parts)


def _blob_item(props: BlobProps, with_metadata: bool) -> str:
    fields = [
        ("Creation-Time", http_date(props.created)),
        ("Last-Modified", http_date(props.last_modified)),
        ("Etag", props.etag),
        ("Content-Length", str(props.size)),
        ("Content-Type", props.content_type),
        ("BlobType", props.blob_type),
        ("LeaseStatus", props.lease.status),
        ("LeaseState", props.lease.state),
        *([("LeaseDuration", props.lease.duration)] if props.lease.duration else []),
        *([("x-ms-blob-sequence-number", "0")] if props.blob_type == "PageBlob" else []),
        ("ServerEncrypted", "true"),
    ]
    out = [f"<Blob><Name>{escape(props.name)}</Name>"]
    if props.snapshot:
        out.append(f"<Snapshot>{props.snapshot}</Snapshot>")
    out.append("<Properties>" + "".join(f"<{k}>{escape(v)}</{k}>" for k, v in fields) + "</Properties>")
    if with_metadata:
        out.append("<Metadata>" + "".join(f"<{k}>{escape(v)}</{k}>" for k, v in props.metadata.items()))
        out.append("</Metadata>")
    out.append("</Blob>")
    return "".join(out)


def blob_list_xml(
    endpoint: str,
    container: str,
    blobs: list[BlobProps],
    next_marker: str | None,
    *,
    prefix: str,
    marker: str,
    max_results: int | None,
    with_metadata: bool,
) -> str:
    parts = [
        XML_HEAD,
        f'<EnumerationResults ServiceEndpoint="{escape(endpoint)}/" ContainerName="{escape(container)}">',
        f"<Prefix>{escape(prefix)}</Prefix>" if prefix else "",
        f"<Marker>{escape(marker)}</Marker>" if marker else "",
        f"<MaxResults>{max_results}</MaxResults>" if max_results is not None else "",
        "<Blobs>",
        *(_blob_item(b, with_metadata) for b in blobs),
        "</Blobs>",
        f"<NextMarker>{escape(next_marker)}</NextMarker>" if next_marker else "<NextMarker />",
        "</EnumerationResults>",
    ]
    return "".join(parts)
