"""ARM errors of the emulated Microsoft.Compute surface: one factory per error code.

Every refusal of the ARM surface is an `ArmError` built here, so codes and messages live in one
place and docs/emulator.md can list them. The wire shape is ARM's
`{"error": {"code": ..., "message": ..., "target": ...}}`. Messages name resources by ARM ID and
never carry a SAS or a token.
"""

from __future__ import annotations

from typing import Any


class ArmError(Exception):
    """An ARM refusal: HTTP status, ARM error code, one-sentence message, optional target field."""

    def __init__(self, status: int, code: str, message: str, target: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.target = target

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.target:
            error["target"] = self.target
        return {"error": error}


# --- authentication and routing -------------------------------------------------------------


def authentication_missing() -> ArmError:
    return ArmError(
        401, "AuthenticationFailed", "Authentication failed. The 'Authorization' header is missing."
    )


def invalid_authentication_token() -> ArmError:
    return ArmError(
        401,
        "InvalidAuthenticationToken",
        "The access token is invalid. Send 'Authorization: Bearer <token>' with the emulator's token.",
    )


def subscription_not_found(subscription_id: str) -> ArmError:
    return ArmError(404, "SubscriptionNotFound", f"The subscription '{subscription_id}' could not be found.")


def missing_api_version() -> ArmError:
    return ArmError(
        400,
        "MissingApiVersionParameter",
        "The api-version query parameter (?api-version=) is required for all requests.",
    )


def no_such_route(method: str, path: str) -> ArmError:
    return ArmError(
        404,
        "InvalidResourceType",
        f"The emulator does not serve {method} {path}: "
        "only Microsoft.Compute disks and snapshots are emulated.",
    )


def operation_not_found(operation_id: str) -> ArmError:
    return ArmError(404, "OperationNotFound", f"The operation '{operation_id}' was not found.")


# --- request validation ----------------------------------------------------------------------


def invalid_request_content(detail: str) -> ArmError:
    return ArmError(400, "InvalidRequestContent", f"The request content was invalid: {detail}")


def invalid_parameter(target: str, message: str) -> ArmError:
    return ArmError(400, "InvalidParameter", message, target)


def resource_not_found(resource_type: str, name: str, resource_group: str) -> ArmError:
    return ArmError(
        404,
        "ResourceNotFound",
        f"The Resource 'Microsoft.Compute/{resource_type}/{name}' under resource group "
        f"'{resource_group}' was not found.",
    )


def disk_shrink_not_allowed(disk_id: str) -> ArmError:
    """Azure's wording for a smaller diskSizeGB (seen in the AKS docs' error transcript)."""
    return ArmError(
        400,
        "BadRequest",
        f"The disk/snapshot resource with id {disk_id} cannot be resized down. Reducing disk/snapshot "
        "size is not supported in Azure to prevent data loss. If you do need to reduce the size of "
        "the disk, please create new snapshot/disks with the appropriate size.",
    )


def property_change_not_allowed(prop: str, resource_id: str) -> ArmError:
    return ArmError(
        409, "PropertyChangeNotAllowed", f"Changing property '{prop}' is not allowed on {resource_id}.", prop
    )


# --- state conflicts -------------------------------------------------------------------------


def active_sas_conflict(resource_id: str, operation: str) -> ArmError:
    return ArmError(
        409,
        "OperationNotAllowed",
        f"Cannot {operation} {resource_id} while it has an active SAS (diskState ActiveSAS); "
        "revoke access first.",
    )


def write_access_on_snapshot(snapshot_id: str) -> ArmError:
    return ArmError(
        400,
        "InvalidParameter",
        f"Access level 'Write' is not supported for snapshot {snapshot_id}: snapshots are read-only.",
        "grantAccessData.access",
    )


def snapshot_not_complete(snapshot_id: str, percent: float) -> ArmError:
    return ArmError(
        409,
        "OperationNotAllowed",
        f"Snapshot {snapshot_id} is not ready: its background copy is {percent:.1f}% complete "
        "(completionPercent). Grant access after completionPercent reaches 100.",
    )


def full_snapshot_of_v2_disk(disk_id: str, sku: str) -> ArmError:
    return ArmError(
        400,
        "BadRequest",
        f"Only incremental snapshots are supported for {sku} disks; set incremental to true for {disk_id}.",
    )


# --- service limits (documented in docs/emulator.md) -------------------------------------


def sas_family_limit(snapshot_id: str, family_id: str, limit: int) -> ArmError:
    return ArmError(
        409,
        "OperationNotAllowed",
        f"Cannot grant access to {snapshot_id}: snapshots of incremental snapshot family {family_id} "
        f"already have {limit} active SAS URIs, the maximum of {limit} SAS per snapshot family at a time. "
        "Revoke access on one of them first.",
    )


def snapshot_rate_limit(disk_id: str, limit: int, window_seconds: int, retry_after: int) -> ArmError:
    return ArmError(
        409,
        "OperationNotAllowed",
        f"Cannot create an incremental snapshot of {disk_id}: at most {limit} incremental snapshots per "
        f"disk can be created every {window_seconds // 60} minutes. Retry in {retry_after} seconds.",
    )


def snapshot_total_limit(disk_id: str, limit: int) -> ArmError:
    return ArmError(
        409,
        "OperationNotAllowed",
        f"Cannot create an incremental snapshot of {disk_id}: the disk already has {limit} incremental "
        f"snapshots, the maximum of {limit} per disk. Delete old snapshots first.",
    )


def snapshot_pending_limit(disk_id: str, limit: int) -> ArmError:
    return ArmError(
        409,
        "OperationNotAllowed",
        f"Cannot create an incremental snapshot of {disk_id}: {limit} snapshots of it are still in "
        f"background copy (completionPercent below 100), the maximum of {limit} pending snapshots.",
    )


def import_source_invalid(source_uri: str, reason: str) -> ArmError:
    # source_uri is shown without its query string so a SAS never leaks into the message.
    return ArmError(
        400,
        "InvalidParameter",
        f"Cannot import from {source_uri.split('?', 1)[0]}: {reason}",
        "creationData.sourceUri",
    )
