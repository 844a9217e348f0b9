"""Shared fixtures: a running emulator (session-wide, and private ones with custom knobs)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from azure.storage.blob import BlobClient, BlobServiceClient

from replicator.credentials import StaticTokenCredential
from replicator.emulator.process import EmulatorProcess


@pytest.fixture(scope="session")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorProcess]:
    """One emulator for the whole session; tests use unique (uuid) names so they never collide."""
    proc = EmulatorProcess(tmp_path_factory.mktemp("emulator"), "--completion-seconds", "2")
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture
def emulator_env(emulator: EmulatorProcess, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The session emulator's env keys, also set in os.environ for code that reads them from there."""
    for key, value in emulator.env.items():
        monkeypatch.setenv(key, value)
    return dict(emulator.env)


@pytest.fixture
def fresh_emulator(tmp_path: Path) -> Iterator[Callable[..., EmulatorProcess]]:
    """Factory of private emulators, e.g. fresh_emulator("--max-page-ranges", "3").

    All are stopped (and checked to exit 0) at teardown.
    """
    started: list[EmulatorProcess] = []

    def make(*extra_args: str) -> EmulatorProcess:
        proc = EmulatorProcess(tmp_path / f"emulator-{len(started)}", *extra_args)
        started.append(proc)
        proc.start()
        return proc

    yield make
    for proc in started:
        proc.stop()


@pytest.fixture
def unique_name() -> Callable[[str], str]:
    """Unique lowercase names (accounts, containers, disks) for tests sharing the session emulator."""
    return lambda prefix: f"{prefix}{uuid.uuid4().hex[:12]}"


@dataclass(frozen=True)
class BlobClients:
    """Azure SDK blob clients for an emulator, per credential kind (the CA is passed explicitly)."""

    env: dict[str, str]

    def url(self, account: str) -> str:
        return f"{self.env['REPLICATOR_BLOB_ENDPOINT']}/{account}"

    def key(self, account: str) -> BlobServiceClient:
        credential = {"account_name": account, "account_key": self.env["REPLICATOR_ACCOUNT_KEY"]}
        return BlobServiceClient(self.url(account), credential, connection_verify=self.env["SSL_CERT_FILE"])

    def bearer(self, account: str, token: str | None = None) -> BlobServiceClient:
        credential = StaticTokenCredential(token or self.env["REPLICATOR_ACCESS_TOKEN"])
        return BlobServiceClient(self.url(account), credential, connection_verify=self.env["SSL_CERT_FILE"])

    def blob_from_url(self, url: str, credential: object = None) -> BlobClient:
        return BlobClient.from_blob_url(url, credential, connection_verify=self.env["SSL_CERT_FILE"])


@pytest.fixture
def blob_clients(emulator_env: dict[str, str]) -> BlobClients:
    return BlobClients(emulator_env)


@pytest.fixture
def metric_reader() -> Iterator[Callable[[], Any]]:
    """`start()` records the run metrics (replicator.metrics) into a new InMemoryMetricReader and returns
    it; call it again to start afresh. The metrics are left to the environment after the test."""
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    from replicator import metrics

    def start() -> InMemoryMetricReader:
        reader = InMemoryMetricReader()
        metrics.install(MeterProvider(metric_readers=[reader]))
        return reader

    yield start
    metrics.install(None)


def metric_points(reader: Any) -> dict[str, tuple[str, list[tuple[dict[str, Any], Any]]]]:
    """name -> (unit, [(attributes, point)]) of every metric the `replicator` meter recorded so far."""
    data = reader.get_metrics_data()
    return {
        metric.name: (metric.unit, [(dict(p.attributes), p) for p in metric.data.data_points])
        for resource in (data.resource_metrics if data else [])
        for scope in resource.scope_metrics
        if scope.scope.name == "replicator"
        for metric in scope.metrics
    }
