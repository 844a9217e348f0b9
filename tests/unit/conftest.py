"""Fixtures shared by the unit tests of replicator.source.arm: an ArmSource over a fake snapshots API."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from replicator.source.arm import ArmSource
from tests.helpers.source_fakes import SUB, FakeConfig, FakeSnapshots


@pytest.fixture
def fake() -> FakeSnapshots:
    return FakeSnapshots()


@pytest.fixture
async def arm(fake: FakeSnapshots) -> ArmSource:
    src = await ArmSource.open(FakeConfig())
    src._clients[SUB] = SimpleNamespace(snapshots=fake)  # type: ignore[assignment]
    return src
