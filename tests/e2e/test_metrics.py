"""Run metrics through the real CLI: what a successful and a failed run record (in process, into an
InMemoryMetricReader), what reaches an Application Insights ingestion endpoint (a child process and a
fake endpoint on 127.0.0.1), and that a dead endpoint costs a bounded wait, never the exit code."""

from __future__ import annotations

import http.server
import json
import socket
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError

from replicator.observe import metrics
from replicator.target.page_blob import PageBlobTarget
from tests.e2e.world import MiB, World, pattern
from tests.helpers.cli_runs import cli_process
from tests.helpers.metrics import metric_points
from tests.helpers.target_sas import blob_sas
from tests.reliability.leaks import assert_no_leaks

IKEY = "00000000-0000-0000-0000-0000000000aa"


def _source_time(world: World, url: str) -> datetime:
    """The source snapshot time of the target's newest restore point, as its metadata records it."""
    return datetime.fromisoformat(world.restore_points(url)[-1].metadata["snapshot_time"])


def test_a_successful_run_records_runs_duration_bytes_and_lag(world: World, replicate, metric_reader) -> None:
    recorded = metric_reader()
    disk = world.create_disk("data", 1)
    world.write(disk, (MiB, pattern(1, 2 * MiB)))
    world.snapshot(disk)
    url = world.target_url()
    before = datetime.now(UTC)
    run = replicate("--source", disk.id, "--target", url, "--json")
    after = datetime.now(UTC)
    assert run.code == 0, run.err
    where = {
        "replicator.command": "replicate",
        "replicator.source": disk.id,
        "replicator.target": url,
    }
    got = {name: found for name, (_unit, found) in metric_points(recorded).items()}
    [(attributes, runs)] = got["replicator.runs"]
    assert (attributes, runs.value) == (where | {"replicator.run.status": "replicated"}, 1)
    [(attributes, duration)] = got["replicator.run.duration"]
    assert attributes == where | {"replicator.run.status": "replicated"}
    assert 0 < duration.sum <= (after - before).total_seconds()
    [(attributes, copied)] = got["replicator.data.copied"]
    assert (attributes, copied.value) == (where, sum(s["copied_bytes"] for s in run.doc["snapshots"]))
    assert copied.value >= 2 * MiB
    [(attributes, lag)] = got["replicator.replica.lag"]
    held = _source_time(world, url)
    assert attributes == where
    assert (before - held).total_seconds() <= lag.sum <= (after - held).total_seconds()


def test_a_failed_run_records_its_status_the_bytes_it_wrote_and_the_lag_held(
    world: World, replicate, metric_reader, monkeypatch: pytest.MonkeyPatch
) -> None:
    disk = world.create_disk("data", 1)
    world.write(disk, (0, pattern(1, 4096)))
    world.snapshot(disk)
    url = world.target_url()
    assert replicate("--source", disk.id, "--target", url).code == 0
    held = _source_time(world, url)
    # Three changed 4 KiB ranges 100 MiB apart (never merged); the third write fails for good.
    world.write(disk, *[(i * 100 * MiB, pattern(10 + i, 4096)) for i in (1, 2, 3)])
    world.snapshot(disk)
    real_copy = PageBlobTarget.copy_from_url
    calls = 0

    async def third_copy_fails(
        self: PageBlobTarget, op: Any, source_url: str, source_auth: Any = None
    ) -> Any:
        nonlocal calls
        calls += 1
        if calls == 3:
            raise HttpResponseError(message="injected permanent failure")
        return await real_copy(self, op, source_url, source_auth)

    monkeypatch.setattr(PageBlobTarget, "copy_from_url", third_copy_fails)
    reader = metric_reader()  # this run's points only
    before = datetime.now(UTC)
    failed = replicate("--source", disk.id, "--target", url, "--json", "--concurrency", "1")
    after = datetime.now(UTC)
    got = {name: found for name, (_unit, found) in metric_points(reader).items()}
    assert failed.code == 1 and failed.doc["status"] == "failed", failed.err
    where = {
        "replicator.command": "replicate",
        "replicator.source": disk.id,
        "replicator.target": url,
    }
    [(attributes, runs)] = got["replicator.runs"]
    assert (attributes, runs.value) == (where | {"replicator.run.status": "failed"}, 1)
    [(attributes, duration)] = got["replicator.run.duration"]
    assert attributes["replicator.run.status"] == "failed" and duration.count == 1
    [(attributes, copied)] = got["replicator.data.copied"]
    assert (attributes, copied.value) == (where, 2 * 4096)  # written before the failure, never again
    [(attributes, lag)] = got["replicator.replica.lag"]  # the failed run still says how old the replica is
    assert attributes == where
    assert (before - held).total_seconds() <= lag.sum <= (after - held).total_seconds()


class FakeIngestion(http.server.ThreadingHTTPServer):
    """Application Insights' ingestion endpoint on 127.0.0.1: records every POST, accepts every item."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Track)
        self.posts: list[tuple[str, list[dict[str, Any]]]] = []

    @property
    def connection_string(self) -> str:
        return f"InstrumentationKey={IKEY};IngestionEndpoint=http://127.0.0.1:{self.server_port}/"


class _Track(http.server.BaseHTTPRequestHandler):
    server: FakeIngestion

    def do_POST(self) -> None:
        items = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.posts.append((self.path, items))
        body = json.dumps({"itemsReceived": len(items), "itemsAccepted": len(items), "errors": []}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def ingestion() -> Iterator[FakeIngestion]:
    server = FakeIngestion()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _exporting(emulator_env: dict[str, str], connection_string: str, tmp_path: Path) -> dict[str, str]:
    """The child's environment: the emulator's, the connection string, and a private temp directory
    for the exporter's offline storage."""
    return emulator_env | {
        metrics.CONNECTION_STRING_ENV: connection_string,
        "TMPDIR": str(tmp_path),
        "NO_PROXY": "127.0.0.1",
    }


def test_metrics_reach_the_ingestion_endpoint_without_the_sas(
    world: World, emulator_env: dict[str, str], ingestion: FakeIngestion, tmp_path: Path
) -> None:
    disk = world.create_disk("data", 1)
    world.write(disk, (MiB, pattern(3, 64 * 1024)))
    world.snapshot(disk)
    url = world.target_url()
    with world.container(url) as container:
        container.create_container()  # a blob SAS cannot
    sas = blob_sas(world, url)
    env = _exporting(emulator_env, ingestion.connection_string, tmp_path)
    out, err = cli_process(env, "--source", disk.id, "--target", f"{url}?{sas}", "--json").communicate(
        timeout=120
    )
    assert json.loads(out)["status"] == "replicated", err
    assert_no_leaks(out + err)
    assert [path for path, _ in ingestion.posts] == ["/v2.1/track"]  # http.server folds the exporter's "//"
    items = ingestion.posts[0][1]
    assert sas.split("sig=")[1].split("&")[0] not in json.dumps(items)
    by_name = {item["data"]["baseData"]["metrics"][0]["name"]: item for item in items}
    assert sorted(by_name) == [
        "replicator.data.copied",
        "replicator.replica.lag",
        "replicator.run.duration",
        "replicator.runs",
    ]
    for item in items:
        assert item["iKey"] == IKEY and item["tags"]["ai.cloud.role"] == "replicator"
        properties = item["data"]["baseData"]["properties"]
        assert properties["replicator.target"] == url  # the display form: no query, no SAS
        assert properties["replicator.source"] == disk.id
    runs = by_name["replicator.runs"]["data"]["baseData"]
    assert runs["properties"]["replicator.run.status"] == "replicated" and runs["metrics"][0]["value"] == 1
    lag = by_name["replicator.replica.lag"]["data"]["baseData"]["metrics"][0]
    assert lag["count"] == 1 and lag["value"] >= 0


class BlackHole:
    """An ingestion endpoint that accepts connections and reads requests but never answers."""

    def __init__(self) -> None:
        self.socket = socket.create_server(("127.0.0.1", 0))
        self.received = b""
        self.held: list[socket.socket] = []
        threading.Thread(target=self._serve, daemon=True).start()

    @property
    def connection_string(self) -> str:
        return f"InstrumentationKey={IKEY};IngestionEndpoint=http://127.0.0.1:{self.socket.getsockname()[1]}/"

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self.socket.accept()
            except OSError:  # closed at the end of the test
                return
            self.held.append(connection)
            while chunk := connection.recv(65536):
                self.received += chunk

    def close(self) -> None:
        self.socket.close()
        for connection in self.held:
            connection.close()


def test_a_dead_ingestion_endpoint_costs_a_bounded_wait_and_never_the_exit_code(
    world: World, emulator_env: dict[str, str], tmp_path: Path
) -> None:
    disk = world.create_disk("data", 1)
    world.write(disk, (MiB, pattern(4, 4096)))
    world.snapshot(disk)
    url = world.target_url()
    hole = BlackHole()
    try:
        env = _exporting(emulator_env, hole.connection_string, tmp_path)
        proc = cli_process(env, "--source", disk.id, "--target", url, "--json")
        # The endpoint never answers and the exporter would wait UPLOAD_READ_TIMEOUT for it: the CLI
        # ends anyway, FLUSH_SECONDS after its outcome, with the run's exit code and document.
        out, err = proc.communicate(timeout=metrics.UPLOAD_READ_TIMEOUT * 4)
    finally:
        hole.close()
    assert proc.returncode == 0, err
    assert json.loads(out)["status"] == "replicated"
    assert b"/v2.1/track HTTP/1.1" in hole.received  # the upload was under way, and never answered
    assert "did not confirm the run's metrics within 5 s" in err  # so the bound, not an answer, ended it
