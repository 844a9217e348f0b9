"""The failover-grade disk properties on the wire: parsed from a disk or snapshot PUT body into a
`DiskProfile`, and written into a disk's, snapshot's or disk restore point's JSON.

Field names are Azure's (Disks - Create Or Update; azure-mgmt-compute's `DiskProperties`,
`SupportedCapabilities`, `DiskSecurityProfile`, `Encryption`). Only types are checked here; the
values, their defaults and the rules between them are the backend's (arm/disk_profile.py).
"""

from __future__ import annotations

from typing import Any

from replicator.emulator.arm.model import DiskProfile
from replicator.emulator.errors import arm as arm_errors
from replicator.emulator.routes.arm_wire import json_object, optional_str


def parse_profile(body: dict[str, Any]) -> DiskProfile:
    props = json_object(body, "properties")
    capabilities = json_object(props, "supportedCapabilities")
    encryption = json_object(props, "encryption")
    accelerated = capabilities.get("acceleratedNetwork")
    if accelerated is not None and not isinstance(accelerated, bool):
        raise arm_errors.invalid_parameter(
            target="supportedCapabilities.acceleratedNetwork",
            detail=f"'supportedCapabilities.acceleratedNetwork' must be true or false, not {accelerated!r}.",
        )
    return DiskProfile(
        os_type=optional_str(props.get("osType"), "osType"),
        hyper_v_generation=optional_str(props.get("hyperVGeneration"), "hyperVGeneration"),
        architecture=optional_str(capabilities.get("architecture"), "supportedCapabilities.architecture"),
        accelerated_network=accelerated,
        disk_controller_types=optional_str(
            capabilities.get("diskControllerTypes"), "supportedCapabilities.diskControllerTypes"
        ),
        security_type=optional_str(
            json_object(props, "securityProfile").get("securityType"), "securityProfile.securityType"
        ),
        zones=zones_of(body),
        network_access_policy=optional_str(props.get("networkAccessPolicy"), "networkAccessPolicy"),
        public_network_access=optional_str(props.get("publicNetworkAccess"), "publicNetworkAccess"),
        encryption_type=optional_str(encryption.get("type"), "encryption.type"),
        disk_encryption_set_id=optional_str(
            encryption.get("diskEncryptionSetId"), "encryption.diskEncryptionSetId"
        ),
    )


def zones_of(body: dict[str, Any]) -> tuple[str, ...]:
    """A resource's top-level `zones` (a disk's or a VM's)."""
    value = body.get("zones")
    if value is None:
        return ()
    if not (isinstance(value, list) and all(isinstance(zone, str) for zone in value)):
        raise arm_errors.invalid_parameter(target="zones", detail="'zones' must be a list of strings.")
    return tuple(value)


def profile_json(profile: DiskProfile, answer: dict[str, Any]) -> None:
    """Add what `profile` holds to a resource's JSON `answer` (properties, and zones at the top)."""
    props = answer["properties"]
    if profile.zones:
        answer["zones"] = list(profile.zones)
    for key, value in (("osType", profile.os_type), ("hyperVGeneration", profile.hyper_v_generation)):
        if value is not None:
            props[key] = value
    capabilities = {
        key: value
        for key, value in (
            ("architecture", profile.architecture),
            ("acceleratedNetwork", profile.accelerated_network),
            ("diskControllerTypes", profile.disk_controller_types),
        )
        if value is not None
    }
    if capabilities:
        props["supportedCapabilities"] = capabilities
    if profile.security_type is not None:
        props["securityProfile"] = {"securityType": profile.security_type}
    encryption = {"type": profile.encryption_type}
    if profile.disk_encryption_set_id is not None:
        encryption["diskEncryptionSetId"] = profile.disk_encryption_set_id
    props["encryption"] = encryption
    props["networkAccessPolicy"] = profile.network_access_policy
    props["publicNetworkAccess"] = profile.public_network_access
