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

import json
from typing import Any

from replicator.emulator.errors.coded import CodedError, ErrorCode


class ArmError(CodedError):
    """An ARM refusal: HTTP status, ARM error code, one-sentence message, optional target field, and
    for a throttled request the inner `details` and the headers (`Retry-After`) Compute sends."""

    details: tuple[dict[str, str], ...] = ()
    headers: dict[str, str] = {}

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.target:
            error["target"] = self.target
        if self.details:
            error["details"] = list(self.details)
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
snapshot_failed = _arm(409, "OperationNotAllowed", "Cannot grant access to {resource}: its creation failed (provisioningState Failed), so it holds no data. Delete it and take a new snapshot.")  # code assumed
snapshot_not_complete = _arm(409, "OperationNotAllowed", "Snapshot {resource} is not ready: its background copy is {percent:.1f}% complete (completionPercent). Grant access after completionPercent reaches 100.")
full_snapshot_of_v2_disk = _arm(400, "BadRequest", "Only incremental snapshots are supported for {sku} disks; set incremental to true for {resource}.")
# Direct upload (arm/uploads.py): bounds from diskRPCommon.json; codes and wording of the state refusals assumed
upload_size_out_of_bounds = _arm(400, "InvalidParameter", "uploadSizeBytes {size} is out of range: it must be between 20972032 (20 MiB + 512 bytes for the VHD footer) and 35183298347520 (32 TiB + 512 bytes for the VHD footer).", "creationData.uploadSizeBytes")
upload_size_unaligned = _arm(400, "InvalidParameter", "uploadSizeBytes {size} is not a VHD of whole MiB: it must be N * 1 MiB + 512 bytes for the VHD footer.", "creationData.uploadSizeBytes")
upload_with_source = _arm(400, "InvalidParameter", "createOption Upload takes no sourceUri: the data is written through the disk's Write SAS.", "creationData.sourceUri")
upload_read_access = _arm(409, "OperationNotAllowed", "Cannot grant Read access to disk {resource} in diskState {state}: grant Write access, upload, then revoke access before reading it.", "grantAccessData.access")
upload_not_finished = _arm(409, "OperationNotAllowed", "Cannot {operation} disk {resource} in diskState {state}: finish the upload with endGetAccess (revoke access) first.")

# --- service limits (documented in docs/emulator.md)
too_many_requests = _arm(429, "OperationNotAllowed", "The server rejected the request because too many requests have been received for this subscription.")  # Compute's throttling answer (middleware/arm_faults.py)
sas_family_limit = _arm(409, "OperationNotAllowed", "Cannot grant access to {resource}: snapshots of incremental snapshot family {family} already have {limit} active SAS URIs, the maximum of {limit} SAS per snapshot family at a time. Revoke access on one of them first.")
snapshot_rate_limit = _arm(409, "OperationNotAllowed", "Cannot create an incremental snapshot of {resource}: at most {limit} incremental snapshots per disk can be created every {minutes} minutes. Retry in {retry_after} seconds.")
snapshot_total_limit = _arm(409, "OperationNotAllowed", "Cannot create an incremental snapshot of {resource}: the disk already has {limit} incremental snapshots, the maximum of {limit} per disk. Delete old snapshots first.")
snapshot_pending_limit = _arm(409, "OperationNotAllowed", "Cannot create an incremental snapshot of {resource}: {limit} snapshots of it are still in background copy (completionPercent below 100), the maximum of {limit} pending snapshots.")
_import_source_invalid = _arm(400, "InvalidParameter", "Cannot import from {source}: {reason}", "creationData.sourceUri")

# --- failover-grade disk properties (arm/disk_profile.py; the first two are Azure's texts, seen in answers)
security_type_create_option = _arm(400, "BadRequest", "Security Type '{security_type}' is not supported for CreateOption '{create_option}'. Supported create options are {supported}.")
multiple_zones = _arm(400, "ResourceTypeNotSupportMultiZones", "The resource type '{type}' does not support multiple availability zones. The provided zones are '{zones}'. Please provide a single availability zone.")
invalid_zone = _arm(400, "InvalidAvailabilityZone", "The zone(s) '{zones}' for resource '{resource}' is not supported. The supported zones for location '{location}' are '{supported}'")
trusted_launch_needs_v2 = _arm(400, "BadRequest", "Security Type '{security_type}' requires hyperVGeneration V2 (Trusted launch and confidential VMs are generation 2 only).", "hyperVGeneration")
encryption_set_elsewhere = _arm(400, "InvalidParameter", "Disk encryption set {des} is in location '{des_location}', not '{location}': a disk encryption set encrypts only disks and snapshots of its own region.", "encryption.diskEncryptionSetId")

# --- VMs (arm/vms.py); texts from Azure's "Understand common error messages when you manage virtual machines"
disk_owned_by_vm = _arm(409, "ConflictingUserInput", "Disk '{disk}' cannot be attached as the disk is already owned by VM '{vm}'.")
lun_in_use = _arm(400, "InvalidParameter", "A disk at LUN {lun} already exists.", "dataDisks")
disk_zone_mismatch = _arm(400, "BadRequest", "Disk {disk} cannot be attached to the VM because it is not in the same zone as the VM. VM zone: '{vm_zone}'. Disk zone: '{disk_zone}'.")
disk_not_in_vm_zone = _arm(400, "BadRequest", "Disk {disk} cannot be attached to the VM because it is not in zone '{zone}'.")
disk_attached_resize = _arm(409, "Conflict", "Disk resizing is allowed only when creating a VM or when the VM is deallocated.")
disk_attached_read = _arm(409, "Conflict", "Access not permitted because disk {name} is currently attached to running VM {vm}.")
disk_attached_delete = _arm(409, "OperationNotAllowed", "Disk {resource} is attached to VM {vm}: detach it or delete the VM first.")
vm_security_type_mismatch = _arm(400, "BadRequest", "Security type of VM is not compatible with the security type of attached OS Disk.")
os_disk_change = _arm(409, "OperationNotAllowed", "Changing the OS disk of VM {vm} is not supported by the emulator (Azure swaps an OS disk only on a deallocated VM).", "storageProfile.osDisk.managedDisk.id")

# --- restore points (arm/restore_points.py); texts from "Troubleshoot restore point failures" unless marked
vm_agent_not_reporting = _arm(409, "VMAgentStatusCommunicationError", "VM '{vm}' has not reported status for VM agent or extensions. Please verify the VM has a running VM agent, and can establish outbound connections to Azure storage.")
crash_consistency_unsupported = _arm(409, "VMRestorePointClientError", "Creation of a crash consistent Restore Point of a Virtual Machine with {sku} disk '{disk}' is not supported. You may exclude this disk from the restore point via excludeDisks property.")  # by analogy with the shared-disk text
restore_points_per_vm = _arm(409, "VMRestorePointClientError", "Restore Point creation failed as the maximum allowed snapshot limit of one or more disk blobs has been reached. Please delete some existing restore points of this VM and then retry.")
restore_point_exists = _arm(409, "OperationNotAllowed", "Updating properties of an existing restore point is not allowed: {resource}.")
collections_per_region = _arm(409, "OperationNotAllowed", "Cannot create restore point collection {resource}: the subscription already has {limit} restore point collections in location '{location}', the maximum per subscription and region.")  # text assumed
disk_restore_point_in_use = _arm(409, "DiskRestorePointUsedByCustomer", "There is an active shared access signature outstanding for disk restore point {resource}. Call EndGetAccess before deleting the restore point.")
_throttled = _arm(429, "OperationNotAllowed", "The server rejected the request because too many requests have been received for this subscription.")
# fmt: on


def throttled(policy: str, retry_after: int, allowed: int, measured: int, start: str, end: str) -> ArmError:
    """Compute's throttling answer ("Troubleshooting API throttling errors"): 429, the broad code with
    the policy in a `TooManyRequests` detail, and `Retry-After` in whole seconds."""
    error = _throttled()
    counts = {"operationGroup": policy, "startTime": start, "endTime": end,
              "allowedRequestCount": allowed, "measuredRequestCount": measured}  # fmt: skip
    error.details = ({"code": "TooManyRequests", "target": policy, "message": json.dumps(counts)},)
    error.headers = {
        "Retry-After": str(max(1, retry_after)),
        "x-ms-ratelimit-remaining-resource": f"Microsoft.Compute/{policy};0",
    }
    return error


def import_source_invalid(source_uri: str, reason: str) -> ArmError:
    """The source is named without its query string, so a SAS never reaches the message."""
    return _import_source_invalid(source=source_uri.split("?", 1)[0], reason=reason)
