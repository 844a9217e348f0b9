# ruff: noqa: E501 -- one row per line, so the table reads as a table.
"""ARM errors of the emulated Microsoft.Compute surface: one factory per refusal, in one table.

Every refusal of the ARM surface is an `ArmError` built by a row below (the mechanism the blob
plane's errors/blob.py uses too, errors/coded.py), so codes and messages live in one place and
docs/emulator.md can list them. ARM reuses a code for several situations (`OperationNotAllowed`,
`InvalidParameter`), so a row is one situation: status, code, message template, and the request
field it concerns when that is fixed. Callers fill the template with keywords, e.g.
`resource_not_found(type="disks", name=name, group=rg)`. The wire shape is ARM's
`{"error": {"code": ..., "message": ..., "target": ...}}`. Messages name resources by ARM ID and
never carry a SAS or a token.
"""

from __future__ import annotations

from typing import Any

from replicator.emulator.errors.coded import CodedError, ErrorCode


class ArmError(CodedError):
    """An ARM refusal: HTTP status, ARM error code, one-sentence message, optional target field."""

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.target:
            error["target"] = self.target
        return {"error": error}


def _arm(status: int, code: str, template: str, target: str | None = None) -> ErrorCode[ArmError]:
    return ErrorCode(ArmError, status, code, template, target)


# fmt: off
# --- authentication and routing
authentication_missing = _arm(401, "AuthenticationFailed", "Authentication failed. The 'Authorization' header is missing.")
invalid_authentication_token = _arm(401, "InvalidAuthenticationToken", "The access token is invalid. Send 'Authorization: Bearer <token>' with the emulator's token.")
invalid_authentication_token_audience = _arm(401, "InvalidAuthenticationTokenAudience", "The access token has been obtained for wrong audience or resource '{audience}'. It should exactly match with one of the allowed audiences 'https://management.core.windows.net/','https://management.core.windows.net','https://management.azure.com/','https://management.azure.com'.")
expired_authentication_token = _arm(401, "ExpiredAuthenticationToken", "The access token expiry UTC time '{expired}' is earlier than current UTC time '{now}'.")
subscription_not_found = _arm(404, "SubscriptionNotFound", "The subscription '{subscription}' could not be found.")
missing_api_version = _arm(400, "MissingApiVersionParameter", "The api-version query parameter (?api-version=) is required for all requests.")
no_such_route = _arm(404, "InvalidResourceType", "The emulator does not serve {method} {path}: only Microsoft.Compute disks and snapshots are emulated.")
operation_not_found = _arm(404, "OperationNotFound", "The operation '{operation}' was not found.")
blob_plane_refused = _arm(500, "InternalServerError", "Blob plane: {code}.")  # what ARM asked of the blob plane failed: an emulator bug

# --- request validation
invalid_request_content = _arm(400, "InvalidRequestContent", "The request content was invalid: {detail}")
invalid_parameter = _arm(400, "InvalidParameter", "{detail}")  # the target is the call's
resource_not_found = _arm(404, "ResourceNotFound", "The Resource 'Microsoft.Compute/{type}/{name}' under resource group '{group}' was not found.")
# Azure's wording for a smaller diskSizeGB (seen in the AKS docs' error transcript)
disk_shrink_not_allowed = _arm(400, "BadRequest", "The disk/snapshot resource with id {resource} cannot be resized down. Reducing disk/snapshot size is not supported in Azure to prevent data loss. If you do need to reduce the size of the disk, please create new snapshot/disks with the appropriate size.")
property_change_not_allowed = _arm(409, "PropertyChangeNotAllowed", "Changing property '{target}' is not allowed on {resource}.")

# --- state conflicts
active_sas_conflict = _arm(409, "OperationNotAllowed", "Cannot {operation} {resource} while it has an active SAS (diskState ActiveSAS); revoke access first.")
write_access_on_snapshot = _arm(400, "InvalidParameter", "Access level 'Write' is not supported for snapshot {resource}: snapshots are read-only.", "grantAccessData.access")
snapshot_not_complete = _arm(409, "OperationNotAllowed", "Snapshot {resource} is not ready: its background copy is {percent:.1f}% complete (completionPercent). Grant access after completionPercent reaches 100.")
full_snapshot_of_v2_disk = _arm(400, "BadRequest", "Only incremental snapshots are supported for {sku} disks; set incremental to true for {resource}.")

# --- service limits (documented in docs/emulator.md)
sas_family_limit = _arm(409, "OperationNotAllowed", "Cannot grant access to {resource}: snapshots of incremental snapshot family {family} already have {limit} active SAS URIs, the maximum of {limit} SAS per snapshot family at a time. Revoke access on one of them first.")
snapshot_rate_limit = _arm(409, "OperationNotAllowed", "Cannot create an incremental snapshot of {resource}: at most {limit} incremental snapshots per disk can be created every {minutes} minutes. Retry in {retry_after} seconds.")
snapshot_total_limit = _arm(409, "OperationNotAllowed", "Cannot create an incremental snapshot of {resource}: the disk already has {limit} incremental snapshots, the maximum of {limit} per disk. Delete old snapshots first.")
snapshot_pending_limit = _arm(409, "OperationNotAllowed", "Cannot create an incremental snapshot of {resource}: {limit} snapshots of it are still in background copy (completionPercent below 100), the maximum of {limit} pending snapshots.")
_import_source_invalid = _arm(400, "InvalidParameter", "Cannot import from {source}: {reason}", "creationData.sourceUri")
# fmt: on


def import_source_invalid(source_uri: str, reason: str) -> ArmError:
    """The source is named without its query string, so a SAS never reaches the message."""
    return _import_source_invalid(source=source_uri.split("?", 1)[0], reason=reason)
