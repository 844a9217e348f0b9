"""Fixtures of the emulator's backend tests: a blob plane in a temp dir, as ARM's backends use it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from replicator.emulator.blob.backend import BlobBackend


@pytest.fixture
def blobs(tmp_path: Path) -> Iterator[BlobBackend]:
    backend = BlobBackend(tmp_path / "blobs", account_key="a2V5")
    backend.base_url = "https://127.0.0.1:1"
    yield backend
    backend.close()
