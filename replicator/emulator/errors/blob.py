# ruff: noqa: E501 -- Azure's error messages are kept verbatim, one row per line.
"""Blob-plane errors: one factory per Azure error code, each with Azure's status and message.

Handlers and the backend raise these; routes/blob.py turns them into Azure's XML error body with the
`x-ms-error-code` header, so the SDKs raise their usual exceptions (ResourceNotFoundError, ...).
A factory called without a message uses Azure's; handlers pass a more specific one where it helps.
Codes marked *emulator-specific* are not documented by Azure (see docs/emulator.md).
"""

from __future__ import annotations

from replicator.emulator.errors.coded import CodedError, ErrorCode


class BlobError(CodedError):
    """A coded blob-plane failure: HTTP status, Azure error code, one-sentence message; a refused
    bearer token adds Azure's challenge header and `AuthenticationErrorDetail` (with_challenge)."""

    def __init__(self, status: int, code: str, message: str, target: str | None = None) -> None:
        super().__init__(status, code, message, target)
        self.headers: dict[str, str] = {}
        self.detail: str | None = None

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


def with_challenge(error: BlobError, challenge: str, detail: str | None = None) -> BlobError:
    """`error` answered as Storage answers a missing or refused bearer token: `WWW-Authenticate` names
    the tenant and the resource whose token would do, the body says why (never the token itself)."""
    error.headers["WWW-Authenticate"] = challenge
    error.detail = detail
    return error


def _blob(status: int, code: str, message: str) -> ErrorCode[BlobError]:
    return ErrorCode(BlobError, status, code, message)


# fmt: off
# 400, 405
invalid_header_value = _blob(400, "InvalidHeaderValue", "The value for one of the HTTP headers is not in the correct format.")
invalid_query_parameter_value = _blob(400, "InvalidQueryParameterValue", "Value for one of the query parameters specified in the request URI is invalid.")
missing_required_header = _blob(400, "MissingRequiredHeader", "An HTTP header that's mandatory for this request is not specified.")
unsupported_header = _blob(400, "UnsupportedHeader", "One of the HTTP headers specified in the request is not supported.")
invalid_input = _blob(400, "InvalidInput", "One of the request inputs is not valid.")
crc64_mismatch = _blob(400, "Crc64Mismatch", "The CRC64 value specified in the request did not match the CRC64 value calculated by the server.")
md5_mismatch = _blob(400, "Md5Mismatch", "The MD5 value specified in the request did not match the MD5 value calculated by the server.")
invalid_uri = _blob(400, "InvalidUri", "The requested URI does not represent any resource on the server.")
invalid_xml_document = _blob(400, "InvalidXmlDocument", "XML specified is not syntactically valid.")
unsupported_http_verb = _blob(405, "UnsupportedHttpVerb", "The resource doesn't support the specified HTTP verb.")
# 401, 403
authentication_failed = _blob(403, "AuthenticationFailed", "Server failed to authenticate the request. Make sure the value of the Authorization header is formed correctly including the signature.")
authorization_failure = _blob(403, "AuthorizationFailure", "This request is not authorized to perform this operation.")
authorization_permission_mismatch = _blob(403, "AuthorizationPermissionMismatch", "This request is not authorized to perform this operation using this permission.")
authorization_resource_type_mismatch = _blob(403, "AuthorizationResourceTypeMismatch", "This request is not authorized to perform this operation using this resource type.")
authorization_service_mismatch = _blob(403, "AuthorizationServiceMismatch", "This request is not authorized to perform this operation using this service.")
no_authentication_information = _blob(401, "NoAuthenticationInformation", "Server failed to authenticate the request. Please refer to the information in the www-authenticate header.")
invalid_authentication_info = _blob(401, "InvalidAuthenticationInfo", "Server failed to authenticate the request. Please refer to the information in the www-authenticate header.")
# 404
blob_not_found = _blob(404, "BlobNotFound", "The specified blob does not exist.")
container_not_found = _blob(404, "ContainerNotFound", "The specified container does not exist.")
# 409
blob_already_exists = _blob(409, "BlobAlreadyExists", "The specified blob already exists.")
container_already_exists = _blob(409, "ContainerAlreadyExists", "The specified container already exists.")
invalid_blob_type = _blob(409, "InvalidBlobType", "The blob type is invalid for this operation.")
snapshots_present = _blob(409, "SnapshotsPresent", "This operation is not permitted because the blob has snapshots.")
# premium page-blob accounts ("Perform REST operations against page blobs with premium storage")
snapshot_count_exceeded = _blob(409, "SnapshotCountExceeded", "The snapshot count against this blob has been exceeded.")
snapshot_operation_rate_exceeded = _blob(409, "SnapshotOperationRateExceeded", "The rate of snapshot operations against this blob has been exceeded.")
blob_type_not_supported = _blob(400, "BlobTypeNotSupported", "Block blobs are not supported.")
lease_already_present = _blob(409, "LeaseAlreadyPresent", "There is already a lease present.")
lease_id_mismatch_with_lease_operation = _blob(409, "LeaseIdMismatchWithLeaseOperation", "The lease ID specified did not match the lease ID for the blob.")
lease_not_present_with_lease_operation = _blob(409, "LeaseNotPresentWithLeaseOperation", "There is currently no lease on the blob.")
lease_is_broken_and_cannot_be_renewed = _blob(409, "LeaseIsBrokenAndCannotBeRenewed", "The lease ID matched, but the lease has been broken explicitly and cannot be renewed.")
lease_is_breaking_and_cannot_be_acquired = _blob(409, "LeaseIsBreakingAndCannotBeAcquired", "The lease ID matched, but the lease is currently in breaking state and cannot be acquired until it is broken.")
lease_is_breaking_and_cannot_be_changed = _blob(409, "LeaseIsBreakingAndCannotBeChanged", "The lease ID matched, but the lease is currently in breaking state and cannot be changed.")
previous_snapshot_not_found = _blob(409, "PreviousSnapshotNotFound", "The previous snapshot is not found.")
previous_snapshot_operation_not_supported = _blob(409, "PreviousSnapshotOperationNotSupported", "The previous snapshot is not in the lineage of this blob version.")
snapshot_diff_across_resize_not_supported = _blob(409, "SnapshotDiffAcrossResizeNotSupported", "A page range diff across a resize over the 4 TiB boundary is not supported.")  # emulator-specific
# 412
condition_not_met = _blob(412, "ConditionNotMet", "The condition specified using HTTP conditional header(s) is not met.")
lease_id_missing = _blob(412, "LeaseIdMissing", "There is currently a lease on the blob and no lease ID was specified in the request.")
lease_id_mismatch_with_blob_operation = _blob(412, "LeaseIdMismatchWithBlobOperation", "The lease ID specified did not match the lease ID for the blob.")
lease_not_present_with_blob_operation = _blob(412, "LeaseNotPresentWithBlobOperation", "There is currently no lease on the blob.")
# 413, 416
request_body_too_large = _blob(413, "RequestBodyTooLarge", "The request body is too large and exceeds the maximum permissible limit.")
invalid_page_range = _blob(416, "InvalidPageRange", "The page range specified is invalid.")
invalid_range = _blob(416, "InvalidRange", "The range specified is invalid for the current size of the resource.")
# Put Page From URL: a source range beyond the source's size; a source that fails otherwise answers with its
# own status and message (status=: 403 unauthorized, 404 missing, 400 foreign URL), as Azure does
cannot_verify_copy_source = _blob(416, "CannotVerifyCopySource", "The source range is beyond the source blob's size.")
# 5xx; ServerBusy and OperationTimedOut are what fault injection answers (middleware/faults.py)
internal_error = _blob(500, "InternalError", "The server encountered an internal error. Please retry the request.")
not_implemented = _blob(501, "NotImplemented", "The requested operation is not implemented by the replicator emulator.")
server_busy = _blob(503, "ServerBusy", "The server is currently unable to receive requests. Please retry.")
# ServerBusy's account-level messages, verbatim ("Common REST API error codes", learn.microsoft.com/rest/api/
# storageservices/common-rest-api-error-codes): the link model's account limits answer with them
account_requests_over = "Operations per second is over the account limit."
account_ingress_over = "Ingress is over the account limit."
account_egress_over = "Egress is over the account limit."
operation_timed_out = _blob(500, "OperationTimedOut", "The operation could not be completed within the permitted time.")
# 304: a failed read precondition (If-None-Match / If-Modified-Since); sent without a body
not_modified = _blob(304, "ConditionNotMet", "The condition specified using HTTP conditional header(s) is not met.")
# fmt: on
