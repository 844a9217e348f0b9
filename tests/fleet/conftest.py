"""Fixtures of the fleet tests: Azurite's queue service (the queue) next to the session emulator."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest
from azure.storage.queue import AccountSasPermissions, ResourceTypes, generate_account_sas

from tests.azurite_process import ACCOUNT, ACCOUNT_KEY, AzuriteProcess


@pytest.fixture(scope="session")
def azurite_queue(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AzuriteProcess]:
    proc = AzuriteProcess(tmp_path_factory.mktemp("azurite-queue"), service="queue")
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture
def queue_url(azurite_queue: AzuriteProcess) -> Callable[[], str]:
    """A fresh queue's URL with an account SAS in it (Azurite's well-known development account)."""
    sas = generate_account_sas(
        ACCOUNT,
        ACCOUNT_KEY,
        ResourceTypes(service=True, container=True, object=True),
        AccountSasPermissions(
            read=True, write=True, delete=True, list=True, add=True, create=True, update=True, process=True
        ),
        expiry=datetime.now(UTC) + timedelta(hours=2),
    )
    return lambda: f"{azurite_queue.queue_endpoint}/q{uuid.uuid4().hex[:12]}?{sas}"


@pytest.fixture
def fleet_env(emulator_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The emulator's settings plus plain HTTP (for Azurite's queue only; the emulator speaks https)."""
    monkeypatch.setenv("REPLICATOR_ALLOW_HTTP", "true")
    return {**emulator_env, "REPLICATOR_ALLOW_HTTP": "true"}
