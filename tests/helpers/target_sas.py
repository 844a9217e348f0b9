"""Service SAS tokens on a test's target (blob- or container-scoped, signed with the emulator's
account key), valid for an hour."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from azure.storage.blob import generate_blob_sas, generate_container_sas

from tests.e2e.world import World


def expiry() -> datetime:
    return datetime.now(UTC) + timedelta(hours=1)


def blob_sas(world: World, url: str) -> str:
    container, blob = url.rsplit("/", 2)[1:]
    return generate_blob_sas(
        world.account, container, blob, account_key=world.env["REPLICATOR_ACCOUNT_KEY"], permission="racwd",
        expiry=expiry(),
    )  # fmt: skip


def container_sas(world: World, url: str, permission: str = "racwdl") -> str:
    container = url.rsplit("/", 2)[1]
    return generate_container_sas(
        world.account, container, account_key=world.env["REPLICATOR_ACCOUNT_KEY"], permission=permission,
        expiry=expiry(),
    )  # fmt: skip
