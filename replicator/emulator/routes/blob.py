"""Blob-plane routes and handlers (path style: /<account>/<container>/<blob>).

Each handler parses the request with blob_wire, authorizes it with auth, calls one BlobBackend
method and serializes the result. Unknown operations are refused loudly (400/501), never ignored.
One handler per Azure operation (about twenty), each naming the headers it refuses, hence a little
over 550 lines.
"""

from __future__ import annotations

import sys
import time
import traceback
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import TypedDict
from urllib.parse import unquote, urlsplit

from aiohttp import web
from multidict import CIMultiDictProxy

from replicator.emulator.blob import auth, content_hashes, crc64, structured_body
from replicator.emulator.blob import wire as blob_wire
from replicator.emulator.blob.accounts import tier_of
from replicator.emulator.blob.conditions import Conditions
from replicator.emulator.blob.model import SnapshotRef
from replicator.emulator.blob.page_blobs import MAX_PUT_PAGE
from replicator.emulator.blob.rows import is_managed_account
from replicator.emulator.blob.store import PAGE, READ_CHUNK
from replicator.emulator.errors import blob as blob_errors
from replicator.emulator.routes.context import EmulatorContext

MAX_LIST_RESULTS = 5000  # List Blobs page size limit, as in Azure


@dataclass
class Reply:
    """A handler's answer; `body` may be an iterator of chunks (streamed) for Get Blob."""

    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | str | Iterator[bytes] | None = None


class Guards(TypedDict):
    """The keywords every backend blob operation takes to check the lease and the conditions."""

    lease_id: str | None
    conditions: Conditions | None


@dataclass(frozen=True)
class Call:
    """One parsed request: names, the snapshot query value, decoded query, and the raw request."""

    request: web.Request
    account: str
    container: str | None
    blob: str | None
    query: dict[str, str]
    principal: str  # how the request authenticated: "sas", "key" or "bearer"

    @property
    def headers(self) -> CIMultiDictProxy[str]:
        return self.request.headers

    @property
    def snapshot(self) -> str | None:
        return self.query.get("snapshot") or None

    @property
    def names(self) -> tuple[str, str, str]:
        """Account, container and blob: the first arguments of every backend blob operation."""
        assert self.container is not None and self.blob is not None  # ROUTES sends blob calls only
        return self.account, self.container, self.blob

    @property
    def guards(self) -> Guards:
        """The lease ID and conditional headers sent, which every backend blob operation checks."""
        return {
            "lease_id": self.headers.get("x-ms-lease-id"),
            "conditions": blob_wire.conditions(self.headers),
        }


Handler = Callable[["BlobPlane", Call], Awaitable[Reply]]
# (method, resource, comp) -> (handler name, SAS permission letters, any of which grants it; none: no
# SAS does). Azure's "Create an account SAS" table: Create Container takes c or w, Lease Blob w (and
# d breaks a lease), Snapshot Blob and Put Blob of a new blob c or w.
ROUTES: dict[tuple[str, str, str | None], tuple[str, str]] = {
    ("PUT", "container", None): ("create_container", "cw"),
    ("PUT", "container", "acl"): ("set_container_acl", ""),
    ("DELETE", "container", None): ("delete_container", "d"),
    ("GET", "container", None): ("container_properties", "r"),
    ("HEAD", "container", None): ("container_properties", "r"),
    ("GET", "container", "list"): ("list_blobs", "l"),
    ("PUT", "blob", None): ("put_blob", "cw"),
    ("PUT", "blob", "page"): ("put_page", "w"),
    ("PUT", "blob", "properties"): ("set_properties", "w"),
    ("PUT", "blob", "metadata"): ("set_metadata", "w"),
    ("PUT", "blob", "snapshot"): ("snapshot", "cw"),
    ("PUT", "blob", "lease"): ("lease", "w"),
    ("GET", "blob", None): ("get_blob", "r"),
    ("HEAD", "blob", None): ("get_blob", "r"),
    ("GET", "blob", "metadata"): ("get_metadata", "r"),
    ("HEAD", "blob", "metadata"): ("get_metadata", "r"),
    ("GET", "blob", "pagelist"): ("page_ranges", "r"),
    ("DELETE", "blob", None): ("delete_blob", "d"),
}


def add_routes(app: web.Application, ctx: EmulatorContext) -> None:
    """Mount the blob plane as the catch-all route (ARM's /subscriptions/ routes are more specific)."""
    app.router.add_route("*", "/{tail:.*}", BlobPlane(ctx).handle)


def _split_path(raw_path: str) -> tuple[str, str | None, str | None]:
    parts = raw_path.lstrip("/").split("/", 2)
    account = unquote(parts[0])
    container = unquote(parts[1]) if len(parts) > 1 and parts[1] else None
    blob = unquote(parts[2]) if len(parts) > 2 and parts[2] else None
    if not account:
        raise blob_errors.invalid_uri()
    return account, container, blob


class BlobPlane:
    def __init__(self, ctx: EmulatorContext) -> None:
        self.ctx = ctx
        self.backend = ctx.blobs

    async def handle(self, request: web.Request) -> web.StreamResponse:
        headers = blob_wire.base_headers(request.headers)
        try:
            reply = await self._dispatch(request)
        except blob_errors.BlobError as exc:
            reply = _error_reply(exc)
        except Exception:  # a bug: answer 500 like Azure and keep serving
            traceback.print_exc(file=sys.stderr)
            reply = _error_reply(blob_errors.internal_error())
        headers.update(reply.headers)
        if isinstance(reply.body, Iterator):
            response = web.StreamResponse(status=reply.status, headers=headers)
            await response.prepare(request)
            for chunk in reply.body:
                await response.write(chunk)
            await response.write_eof()
            return response
        if request.method == "HEAD":
            return web.Response(status=reply.status, headers=headers)
        return web.Response(status=reply.status, headers=headers, body=reply.body)

    async def _dispatch(self, request: web.Request) -> Reply:
        raw_path, _, raw_query = request.raw_path.partition("?")
        account, container, blob = _split_path(raw_path)
        query = {k: unquote(v) for k, v in auth.raw_query_dict(raw_query).items()}
        if query.get("restype") == "account" and query.get("comp") == "properties":
            return self._account_information(request, account, container, blob, raw_path, raw_query)
        if container is None:
            raise blob_errors.not_implemented("Account-level operations are not implemented by the emulator.")
        if request.method not in ("GET", "HEAD", "PUT", "DELETE"):
            raise blob_errors.unsupported_http_verb()
        resource = "blob" if blob is not None else "container"
        if resource == "container" and query.get("restype") != "container":
            raise blob_errors.invalid_query_parameter_value("Container operations need restype=container.")
        route = ROUTES.get((request.method, resource, query.get("comp")))
        if route is None:
            raise blob_errors.not_implemented(
                f"The emulator does not implement {request.method} on a {resource}"
                f" with comp={query.get('comp')}."
            )
        name, permission = route
        if name == "lease" and request.headers.get("x-ms-lease-action", "").lower() == "break":
            permission = "wd"  # Azure: Delete also breaks a lease (version 2017-07-29 and later)
        target = auth.Target(account, container, blob, query.get("snapshot") or None, permission)
        signed = auth.SignedRequest(request.method, raw_path, raw_query, request.headers)
        principal = auth.authorize(self.backend, self.ctx.entra, self.ctx.access_token, signed, target)
        return await getattr(self, name)(Call(request, account, container, blob, query, principal))

    def _account_information(
        self,
        request: web.Request,
        account: str,
        container: str | None,
        blob: str | None,
        raw_path: str,
        raw_query: str,
    ) -> Reply:
        """Get Account Information (GET/HEAD `?restype=account&comp=properties` on the account, a container
        or a blob): the SKU and kind. Azure documents Shared Key and SAS (any permission, version
        2018-03-28 on); the emulator also takes the storage bearer token (docs/emulator.md)."""
        if request.method not in ("GET", "HEAD"):
            raise blob_errors.unsupported_http_verb()
        version = request.headers.get("x-ms-version", "")
        if version and version < "2018-03-28":
            raise blob_errors.invalid_header_value(
                "Get Account Information needs x-ms-version 2018-03-28 or later."
            )
        target = auth.Target(account, container, blob, None, "racwdxltmeopi")
        signed = auth.SignedRequest(request.method, raw_path, raw_query, request.headers)
        auth.authorize(self.backend, self.ctx.entra, self.ctx.access_token, signed, target)
        kind = self.ctx.accounts.kind(account)
        return Reply(
            200, {"x-ms-sku-name": kind.sku, "x-ms-account-kind": kind.kind, "x-ms-is-hns-enabled": "false"}
        )

    # -- containers -----------------------------------------------------------------------------
    async def create_container(self, call: Call) -> Reply:
        if "x-ms-blob-public-access" in call.headers:
            raise blob_errors.unsupported_header("Public access is not supported by the emulator.")
        self.backend.create_container(call.account, call.container, blob_wire.metadata(call.headers))
        props = self.backend.container_properties(call.account, call.container)
        return Reply(201, blob_wire.etag_headers(props.etag, props.last_modified))

    async def set_container_acl(self, call: Call) -> Reply:
        """Set Container ACL: the stored access policies a SAS names with `si=` (no public access)."""
        if "x-ms-blob-public-access" in call.headers:
            raise blob_errors.unsupported_header("Public access is not supported by the emulator.")
        policies = blob_wire.signed_identifiers(await call.request.read())
        self.backend.set_policies(call.account, call.container, policies)
        props = self.backend.container_properties(call.account, call.container)
        return Reply(200, blob_wire.etag_headers(props.etag, props.last_modified))

    async def delete_container(self, call: Call) -> Reply:
        self.backend.delete_container(call.account, call.container)
        return Reply(202)

    async def container_properties(self, call: Call) -> Reply:
        props = self.backend.container_properties(call.account, call.container)
        return Reply(200, blob_wire.container_headers(props))

    async def list_blobs(self, call: Call) -> Reply:
        if "delimiter" in call.query:
            raise blob_errors.not_implemented(
                "List Blobs with a delimiter is not implemented by the emulator."
            )
        include = {i for i in call.query.get("include", "").split(",") if i}
        if include - {"snapshots", "metadata"}:
            raise blob_errors.not_implemented(
                f"List Blobs include={','.join(sorted(include))} is not implemented."
            )
        max_results = blob_wire.parse_int(call.query.get("maxresults"), "maxresults")
        if max_results is not None and not 1 <= max_results <= MAX_LIST_RESULTS:
            raise blob_errors.invalid_query_parameter_value("maxresults must be between 1 and 5000.")
        prefix, marker = call.query.get("prefix", ""), call.query.get("marker", "")
        blobs, next_marker = self.backend.list_blobs(
            call.account,
            call.container,
            prefix=prefix,
            marker=marker,
            limit=max_results or MAX_LIST_RESULTS,
            include_snapshots="snapshots" in include,
        )
        body = blob_wire.blob_list_xml(
            f"{self.ctx.base_url}/{call.account}",
            call.container,
            blobs,
            next_marker,
            prefix=prefix,
            marker=marker,
            max_results=max_results,
            with_metadata="metadata" in include,
        )
        return Reply(200, {"Content-Type": "application/xml"}, body)

    # -- blobs ----------------------------------------------------------------------------------
    def _no_snapshot(self, call: Call) -> None:
        if call.snapshot is not None:
            raise blob_errors.invalid_query_parameter_value("This operation is not allowed on a snapshot.")

    def _refuse_sequence_numbers(self, call: Call) -> None:
        for name in (
            "x-ms-if-sequence-number-le",
            "x-ms-if-sequence-number-lt",
            "x-ms-if-sequence-number-eq",
        ):
            if name in call.headers:
                raise blob_errors.unsupported_header(f"{name} is not supported by the emulator.")

    async def put_blob(self, call: Call) -> Reply:
        self._no_snapshot(call)
        blob_type = call.headers.get("x-ms-blob-type")
        if blob_type != "PageBlob" and self.ctx.accounts.is_premium(call.account):
            raise blob_errors.blob_type_not_supported()  # a premium page-blob account holds page blobs only
        content_type = call.headers.get("x-ms-blob-content-type", "application/octet-stream")
        meta = blob_wire.metadata(call.headers)
        if blob_type == "PageBlob":
            size = blob_wire.parse_int(
                call.headers.get("x-ms-blob-content-length"), "x-ms-blob-content-length"
            )
            if size is None:
                raise blob_errors.missing_required_header(
                    "x-ms-blob-content-length is required for a page blob."
                )
            if blob_wire.parse_int(call.headers.get("x-ms-blob-sequence-number"), "sequence number"):
                raise blob_errors.unsupported_header(
                    "Page blob sequence numbers are not supported by the emulator."
                )
            props = self.backend.create_page_blob(
                *call.names,
                size,
                metadata=meta,
                content_type=content_type,
                create_container=False,
                **call.guards,
            )
        elif blob_type == "BlockBlob":
            data, checked = content_hashes.checked_body(call.headers, await call.request.read())
            props = self.backend.put_block_blob(
                *call.names, data, metadata=meta, content_type=content_type, **call.guards
            )
        elif blob_type is None:
            raise blob_errors.missing_required_header("x-ms-blob-type is required.")
        else:
            raise blob_errors.not_implemented(f"Blob type {blob_type} is not implemented by the emulator.")
        headers = blob_wire.etag_headers(props.etag, props.last_modified)
        if blob_type == "BlockBlob":
            headers.update(checked)
        return Reply(201, {**headers, "x-ms-request-server-encrypted": "true"})

    def _page_range(self, call: Call) -> tuple[int, int]:
        """The pages a Put Page names; an unaligned range is a bad header value (400
        InvalidHeaderValue, as Azure answers), a range beyond the blob 416 InvalidPageRange later."""
        window = blob_wire.request_range(call.headers)
        if window is None or window[1] is None:
            raise blob_errors.missing_required_header(
                "Put Page needs a Range or x-ms-range of the form bytes=a-b."
            )
        start, end = window
        if start % PAGE or end % PAGE:
            name = "x-ms-range" if "x-ms-range" in call.headers else "Range"
            raise blob_errors.invalid_header_value(
                f"The {name} header must start at a multiple of 512 and end one byte before one."
            )
        return start, end

    async def put_page(self, call: Call) -> Reply:
        self._no_snapshot(call)
        self._refuse_sequence_numbers(call)
        if "x-ms-copy-source" in call.headers:
            return await self._put_page_from_url(call)
        start, end = self._page_range(call)
        mode = call.headers.get("x-ms-page-write")
        checked: dict[str, str] = {}
        if mode == "update":
            if end - start > MAX_PUT_PAGE:
                raise blob_errors.request_body_too_large(f"A Put Page writes at most {MAX_PUT_PAGE} bytes.")
            data, checked = content_hashes.checked_body(call.headers, await call.request.read())
            if len(data) != end - start:
                raise blob_errors.invalid_header_value("The body length does not match the page range.")
            props = self.backend.write_pages(*call.names, start, data, **call.guards)
        elif mode == "clear":
            if call.request.content_length:
                raise blob_errors.invalid_header_value("A clear Put Page must have an empty body.")
            props = self.backend.clear_pages(*call.names, start, end - start, **call.guards)
        else:
            raise blob_errors.invalid_header_value("x-ms-page-write must be update or clear.")
        return Reply(201, {**_write_headers(props.etag, props.last_modified), **checked})

    async def _put_page_from_url(self, call: Call) -> Reply:
        """Put Page From URL: the source is read from this same emulator, under the source URL's SAS."""
        for name in call.headers:
            if name.lower().startswith("x-ms-source-if-"):
                raise blob_errors.unsupported_header(f"{name} is not supported by the emulator.")
        start, end = self._page_range(call)
        if call.headers.get("x-ms-page-write", "update") != "update":
            raise blob_errors.invalid_header_value("Put Page From URL needs x-ms-page-write: update.")
        source_range = blob_wire.parse_range(call.headers.get("x-ms-source-range"), "x-ms-source-range")
        if source_range is None or source_range[1] is None:
            raise blob_errors.missing_required_header("x-ms-source-range of the form bytes=a-b is required.")
        src_start, src_end = source_range[0], source_range[1]
        if src_end - src_start != end - start:
            raise blob_errors.invalid_header_value("x-ms-source-range and the target range differ in length.")
        if end - start > MAX_PUT_PAGE:
            raise blob_errors.invalid_header_value(
                f"A Put Page From URL writes at most {MAX_PUT_PAGE} bytes."
            )
        source = self._resolve_url(call, call.headers["x-ms-copy-source"], copy=True)
        try:
            size = self.backend.blob_size(source.account, source.container, source.blob, source.snapshot)
        except blob_errors.BlobError as exc:
            raise blob_errors.cannot_verify_copy_source(exc.message, status=exc.status) from exc
        if src_end > size:
            raise blob_errors.cannot_verify_copy_source()
        headers: dict[str, str] = {}
        # Azure checks a source hash and answers with the one it computed (Content-MD5 or x-ms-content-crc64)
        md5, crc = call.headers.get("x-ms-source-content-md5"), call.headers.get("x-ms-source-content-crc64")
        if md5 is not None or crc is not None:
            data = self.backend.read(
                source.account, source.container, source.blob, source.snapshot, src_start, src_end - src_start
            )
            headers = content_hashes.check(data, md5, crc)
        props = self.backend.copy_pages(*call.names, start, source, src_start, end - start, **call.guards)
        return Reply(201, {**_write_headers(props.etag, props.last_modified), **headers})

    def _resolve_url(self, call: Call, url: str, *, copy: bool) -> SnapshotRef:
        """A blob URL of this emulator to read from (copy source or previous snapshot), authorized by
        its own SAS or, outside md-* accounts, by x-ms-copy-source-authorization (copy source) or by
        the request's own key or bearer token (previous snapshot of the same account).

        A copy source's failures answer CannotVerifyCopySource with the source's status, as in Azure.
        """
        try:
            return self._authorized_source(call, url, copy=copy)
        except blob_errors.BlobError as exc:
            if copy:
                raise blob_errors.cannot_verify_copy_source(exc.message, status=exc.status) from exc
            raise

    def _authorized_source(self, call: Call, url: str, *, copy: bool) -> SnapshotRef:
        parts = urlsplit(url)
        if parts.scheme != "https" or parts.netloc not in self._own_hosts():
            raise blob_errors.invalid_header_value("The URL does not point at this emulator.")
        account, container, blob = _split_path(parts.path)
        if container is None or blob is None:
            raise blob_errors.invalid_header_value("The URL does not name a blob.")
        query = {k: unquote(v) for k, v in auth.raw_query_dict(parts.query).items()}
        ref = SnapshotRef(account, container, blob, query.get("snapshot") or None)
        # A protected source is read with the disk token of x-ms-copy-source-authorization (copy) or of
        # the request's own Authorization (a diff's previous snapshot); the destination keeps its own.
        bearer = call.headers.get("x-ms-copy-source-authorization" if copy else "Authorization")
        if "sig" in query:
            target = auth.Target(account, container, blob, ref.snapshot, "r")
            auth.authorize_sas_read(
                self.backend, self.ctx.entra, self.ctx.access_token, query, target, bearer, previous=not copy
            )
            return ref
        if is_managed_account(account):
            raise blob_errors.authorization_failure(
                "Managed-disk storage accepts only the SAS from grant access."
            )
        if copy:
            if not auth.storage_bearer_accepted(self.ctx.entra, self.ctx.access_token, bearer):
                raise blob_errors.authentication_failed(
                    "The copy source needs a SAS or x-ms-copy-source-authorization."
                )
        elif call.principal == "sas" or account != call.account:
            raise blob_errors.authentication_failed("The previous snapshot URL needs its own SAS.")
        return ref

    def _own_hosts(self) -> set[str]:
        netloc = urlsplit(self.ctx.base_url).netloc
        port = netloc.rsplit(":", 1)[-1]
        return {netloc, f"localhost:{port}", f"127.0.0.1:{port}"}

    async def get_blob(self, call: Call) -> Reply:
        props = self.backend.get_properties(*call.names, call.snapshot, **call.guards)
        headers = blob_wire.blob_headers(props)
        if props.blob_type == "PageBlob" and self.ctx.accounts.is_premium(call.account):
            headers["x-ms-access-tier"] = tier_of(props.size).name  # inferred from the size, as in Azure
            headers["x-ms-access-tier-inferred"] = "true"
        window = blob_wire.request_range(call.headers)
        if call.request.method == "HEAD" or window is None:
            start, end, status = 0, props.size, 200
        else:
            start, end = window[0], props.size if window[1] is None else min(window[1], props.size)
            if start >= props.size:
                raise blob_errors.invalid_range()
            status = 206
            headers["Content-Range"] = f"bytes {start}-{end - 1}/{props.size}"
        headers["Content-Length"] = str(end - start)
        if call.request.method == "HEAD":
            return Reply(200, headers)
        if structured_body.HEADER in call.headers:
            raise blob_errors.unsupported_header(
                "The emulator does not answer Get Blob with a structured body;"
                " use x-ms-range-get-content-crc64."
            )
        digests = {  # Get Blob: each returns its hash of a range of at most 4 MiB; both at once is a 400
            "x-ms-range-get-content-md5": ("Content-MD5", content_hashes.md5),
            "x-ms-range-get-content-crc64": ("x-ms-content-crc64", crc64.header_value),
        }
        asked = [name for name in digests if call.headers.get(name) == "true"]
        if len(asked) > 1:
            raise blob_errors.invalid_header_value(
                "x-ms-range-get-content-md5 and x-ms-range-get-content-crc64 cannot both be sent."
            )
        if asked:
            if status != 206 or end - start > MAX_PUT_PAGE:
                raise blob_errors.invalid_header_value(f"{asked[0]} needs a range of at most 4 MiB.")
            data = self.backend.read(*call.names, call.snapshot, start, end - start)
            header, digest = digests[asked[0]]
            headers[header] = digest(data)
            return Reply(status, headers, data)
        return Reply(status, headers, self.backend.read_chunks(props, start, end - start, READ_CHUNK))

    async def get_metadata(self, call: Call) -> Reply:
        props = self.backend.get_properties(*call.names, call.snapshot, **call.guards)
        meta = {blob_wire.META + k: v for k, v in props.metadata.items()}
        return Reply(200, {**blob_wire.etag_headers(props.etag, props.last_modified), **meta})

    async def set_properties(self, call: Call) -> Reply:
        self._no_snapshot(call)
        self._refuse_sequence_numbers(call)
        supported = {"x-ms-blob-content-length", "x-ms-blob-content-type"}
        for name in call.headers:
            low = name.lower()
            if low.startswith("x-ms-blob-") and low not in supported:
                raise blob_errors.unsupported_header(f"{name} is not supported by the emulator.")
        size = blob_wire.parse_int(call.headers.get("x-ms-blob-content-length"), "x-ms-blob-content-length")
        props = self.backend.get_properties(*call.names)
        if "x-ms-blob-content-type" in call.headers or size is None:
            content_type = call.headers.get("x-ms-blob-content-type", "")
            props = self.backend.set_content_type(*call.names, content_type, **call.guards)
        if size is not None:
            props = self.backend.resize_page_blob(*call.names, size, **call.guards)
        return Reply(200, _write_headers(props.etag, props.last_modified))

    async def set_metadata(self, call: Call) -> Reply:
        self._no_snapshot(call)
        props = self.backend.set_metadata(*call.names, blob_wire.metadata(call.headers), **call.guards)
        return Reply(
            200,
            {
                **blob_wire.etag_headers(props.etag, props.last_modified),
                "x-ms-request-server-encrypted": "true",
            },
        )

    async def snapshot(self, call: Call) -> Reply:
        self._no_snapshot(call)
        meta = blob_wire.metadata(call.headers)
        accounts = self.ctx.accounts
        snap = self.backend.snapshot_blob(
            *call.names,
            meta or None,
            **call.guards,
            allowed=lambda existing: accounts.check_snapshot(call.account, existing, time.time()),
        )
        props = self.backend.get_properties(*call.names, snap)
        return Reply(
            201,
            {
                **blob_wire.etag_headers(props.etag, props.last_modified),
                "x-ms-snapshot": snap,
                "x-ms-request-server-encrypted": "true",
            },
        )

    async def lease(self, call: Call) -> Reply:
        self._no_snapshot(call)
        action = call.headers.get("x-ms-lease-action")
        if action is None:
            raise blob_errors.missing_required_header("x-ms-lease-action is required.")
        result = self.backend.lease(
            *call.names,
            action,
            proposed_id=call.headers.get("x-ms-proposed-lease-id"),
            duration=blob_wire.parse_int(call.headers.get("x-ms-lease-duration"), "x-ms-lease-duration"),
            break_period=blob_wire.parse_int(
                call.headers.get("x-ms-lease-break-period"), "x-ms-lease-break-period"
            ),
            **call.guards,
        )
        headers = blob_wire.etag_headers(result.props.etag, result.props.last_modified)
        if result.lease_id is not None:
            headers["x-ms-lease-id"] = result.lease_id
        if result.lease_time is not None:
            headers["x-ms-lease-time"] = str(result.lease_time)
        status = {"acquire": 201, "break": 202}.get(action, 200)
        return Reply(status, headers)

    async def delete_blob(self, call: Call) -> Reply:
        self.backend.delete_blob(
            *call.names,
            call.snapshot,
            delete_snapshots=call.headers.get("x-ms-delete-snapshots"),
            **call.guards,
        )
        return Reply(202, {"x-ms-delete-type-permanent": "true"})

    async def page_ranges(self, call: Call) -> Reply:
        window = blob_wire.request_range(call.headers)
        start, end = (0, None) if window is None else window
        if start % 512 or (end is not None and end % 512):
            raise blob_errors.invalid_page_range("The page range window must be 512-byte aligned.")
        max_results = blob_wire.parse_int(call.query.get("maxresults"), "maxresults")
        if max_results is not None and max_results < 1:
            raise blob_errors.invalid_query_parameter_value("maxresults must be at least 1.")
        limit = min(max_results or self.ctx.options.max_page_ranges, self.ctx.options.max_page_ranges)
        previous = None
        prev_url = call.headers.get("x-ms-previous-snapshot-url")
        if "prevsnapshot" in call.query and prev_url:
            raise blob_errors.invalid_input(
                "Send either prevsnapshot or x-ms-previous-snapshot-url, not both."
            )
        if "prevsnapshot" in call.query:
            previous = SnapshotRef(call.account, call.container, call.blob, call.query["prevsnapshot"])
        elif prev_url:
            previous = self._resolve_url(call, prev_url, copy=False)
        result = self.backend.page_ranges(
            *call.names,
            call.snapshot,
            start=start,
            end=end,
            previous=previous,
            marker=call.query.get("marker"),
            limit=limit,
            timeout_over=self.ctx.options.list_timeout_ranges,
            **call.guards,
        )
        headers = {
            **blob_wire.etag_headers(result.props.etag, result.props.last_modified),
            "x-ms-blob-content-length": str(result.size),
            "Content-Type": "application/xml",
        }
        return Reply(200, headers, blob_wire.page_list_xml(result))


def _write_headers(etag: str, last_modified: float) -> dict[str, str]:
    return {
        **blob_wire.etag_headers(etag, last_modified),
        "x-ms-blob-sequence-number": "0",
        "x-ms-request-server-encrypted": "true",
    }


def _error_reply(exc: blob_errors.BlobError) -> Reply:
    headers = {"x-ms-error-code": exc.code, **exc.headers}
    if exc.status == 304:
        return Reply(304, headers)
    headers["Content-Type"] = "application/xml"
    return Reply(exc.status, headers, blob_wire.error_body(exc))
