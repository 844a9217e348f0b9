"""replicator.observe.metrics: instruments, units and attributes, the no-op default, the bounded flush."""

from __future__ import annotations

import logging
import math
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    InMemoryMetricReader,
    MetricExporter,
    MetricExportResult,
    PeriodicExportingMetricReader,
)

from replicator.core.progress import (
    Fanout,
    Progress,
    Protected,
    SnapshotResult,
)
from replicator.core.redact import display_url
from replicator.observe import metrics
from replicator.observe.metrics import RunMeter, RunMetrics, record_run
from tests.helpers.metrics import metric_points

SUBSCRIPTION = "/subscriptions/00000000-0000-0000-0000-000000000000"
DISK = f"{SUBSCRIPTION}/resourceGroups/rg/providers/Microsoft.Compute/disks/d1"
TARGET = "https://dr.blob.core.windows.net/replicas/d1.vhd"
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
IKEY = "00000000-0000-0000-0000-000000000001"
WHERE = {
    "replicator.command": "replicate",
    "replicator.source": DISK,
    "replicator.target": TARGET,
}


@pytest.fixture
def reader(metric_reader: Callable[[], InMemoryMetricReader]) -> InMemoryMetricReader:
    return metric_reader()


def test_a_successful_run_records_every_instrument_with_its_unit_and_attributes(reader) -> None:
    run = RunMetrics("replicate", DISK, TARGET, "replicated", 12.5, 3 * 4096, NOW - timedelta(minutes=20))
    record_run(run, now=NOW)
    got = metric_points(reader)
    assert sorted(got) == [
        "replicator.data.copied",
        "replicator.replica.lag",
        "replicator.run.duration",
        "replicator.runs",
    ]
    ended = WHERE | {"replicator.run.status": "replicated"}
    unit, [(attributes, point)] = got["replicator.runs"]
    assert (unit, attributes, point.value) == ("{run}", ended, 1)
    unit, [(attributes, point)] = got["replicator.run.duration"]
    assert (unit, attributes, point.count, point.sum) == ("s", ended, 1, 12.5)
    unit, [(attributes, point)] = got["replicator.data.copied"]
    assert (unit, attributes, point.value) == ("By", WHERE, 12288)
    unit, [(attributes, point)] = got["replicator.replica.lag"]
    assert (unit, attributes, point.count, point.sum) == ("s", WHERE, 1, 1200.0)


def test_a_failed_run_without_a_restore_point_records_no_lag(reader) -> None:
    record_run(RunMetrics("worker", DISK, TARGET, "failed", 3.25, 512, None), now=NOW)
    got = metric_points(reader)
    assert "replicator.replica.lag" not in got
    where = WHERE | {"replicator.command": "worker"}
    [(attributes, runs)] = got["replicator.runs"][1]
    assert (attributes, runs.value) == (where | {"replicator.run.status": "failed"}, 1)
    [(attributes, duration)] = got["replicator.run.duration"][1]
    assert duration.sum == 3.25 and attributes["replicator.run.status"] == "failed"
    [(attributes, copied)] = got["replicator.data.copied"][1]
    assert (attributes, copied.value) == (where, 512)


def test_lag_is_measured_from_a_naive_time_as_utc_and_never_negative() -> None:
    naive = RunMetrics("replicate", DISK, TARGET, "replicated", 1, 0, datetime(2026, 3, 1, 11, 0))
    assert naive.lag_seconds(NOW) == 3600.0
    ahead = RunMetrics("replicate", DISK, TARGET, "replicated", 1, 0, NOW + timedelta(seconds=5))
    assert ahead.lag_seconds(NOW) == 0.0  # a source clock ahead of ours is no negative RPO


def test_the_target_attribute_never_carries_a_sas_or_a_password() -> None:
    meter = RunMeter("replicate", DISK, f"{TARGET}?sv=2024-08-04&se=2026-01-01&sp=racwd&sig=c2VjcmV0%3D")
    assert meter.target == TARGET
    assert display_url("https://user:pw@acct.blob.core.windows.net/c/b.vhd?sig=x#frag") == (
        "https://acct.blob.core.windows.net/c/b.vhd"
    )


def test_the_run_meter_hears_the_run_beside_the_shell_listener(reader) -> None:
    class Shell(Progress):
        def __init__(self) -> None:
            self.written = 0
            self.done: list[SnapshotResult] = []

        def on_written(self, nbytes: int) -> None:
            self.written += nbytes

        def on_snapshot_done(self, result: SnapshotResult) -> None:
            self.done.append(result)

    shell, meter = Shell(), RunMeter("timer", DISK, TARGET)
    both = Fanout(shell, meter)
    newer = datetime.now(UTC) - timedelta(minutes=5)
    older = newer - timedelta(hours=2)
    both.on_protected(Protected("rp1", "s0", "s0", older))  # the state the run found
    both.on_written(4096)
    both.on_written(1024)
    both.on_snapshot_done(SnapshotResult("s", "s", "diff", "why"))
    both.on_protected(Protected("rp2", "s", "s", newer))  # its commit
    assert shell.written == meter.copied_bytes == 5120
    assert len(shell.done) == 1
    run = meter.metrics("replicated")
    assert (run.command, run.status, run.protected_through, run.copied_bytes) == (
        "timer",
        "replicated",
        newer,
        5120,
    )
    meter.finish("replicated")
    [(attributes, point)] = metric_points(reader)["replicator.replica.lag"][1]
    assert attributes["replicator.command"] == "timer" and point.min >= 300


def test_fanout_passes_on_every_hook_of_progress() -> None:
    heard: list[str] = []

    class Recorder(Progress):
        pass

    hooks = [name for name in vars(Progress) if name.startswith("on_")]
    for name in hooks:
        setattr(Recorder, name, lambda self, *args, _name=name: heard.append(_name))
    fan = Fanout(Recorder(), Recorder())
    arguments = {"on_snapshot_start": (None, 1, 1), "on_planned": (1, 0), "on_retry": ("w", 1, 0.1, "e")}
    arguments |= {"on_listing_done": ()}
    for name in hooks:
        getattr(fan, name)(*arguments.get(name, (None,)))
    assert heard == [name for name in hooks for _ in range(2)]


class BlockedExporter(MetricExporter):
    """An ingestion endpoint that never answers: export blocks until the test releases it."""

    def __init__(self) -> None:
        super().__init__()
        self.entered, self.release = threading.Event(), threading.Event()
        self.exports = 0

    def export(self, metrics_data: Any, timeout_millis: float = 10_000, **kwargs: Any) -> MetricExportResult:
        self.exports += 1
        self.entered.set()
        self.release.wait()
        return MetricExportResult.SUCCESS

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return True

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        self.release.set()


def test_flush_is_bounded_when_the_endpoint_never_answers() -> None:
    exporter = BlockedExporter()
    reader = PeriodicExportingMetricReader(exporter, export_interval_millis=math.inf)  # as in production
    metrics.install(MeterProvider(metric_readers=[reader], shutdown_on_exit=False))
    try:
        record_run(RunMetrics("replicate", DISK, TARGET, "replicated", 1, 0, None))
        # No waiting on the clock: a zero bound returns at once, however long the export takes (an
        # unbounded flush would block here for good: it runs in a thread so the test fails instead).
        returned: list[bool] = []
        caller = threading.Thread(target=lambda: returned.append(metrics.flush(timeout_seconds=0)))
        caller.start()
        caller.join(30)
        assert returned == [False], "flush waited for an export that never ends"
        assert exporter.entered.wait(30), "the flush never reached the exporter"
        assert not exporter.release.is_set()  # the export is still blocked: flush did not wait for it
        # One flush at a time: the next returns at once instead of piling threads on a dead endpoint.
        assert metrics.flush(timeout_seconds=0) is False
        assert exporter.exports == 1
        exporter.release.set()
        assert metrics._flushing is not None
        metrics._flushing.join(30)
        assert metrics.flush() is True
    finally:
        exporter.release.set()
        metrics.install(None)


@pytest.mark.parametrize("surprise", [RuntimeError("exporter bug"), KeyboardInterrupt()])
def test_a_run_meter_never_raises_into_the_run(
    reader, monkeypatch: pytest.MonkeyPatch, surprise: BaseException
) -> None:
    """An exporter's bug, or a Ctrl-C while the CLI waits for the upload: the run ends as it would."""

    def broken(*_args: Any, **_kwargs: Any) -> bool:
        raise surprise

    monkeypatch.setattr(metrics, "flush", broken)
    RunMeter("replicate", DISK, TARGET).finish("failed")  # no exception
    assert metric_points(reader)["replicator.runs"][1][0][0]["replicator.run.status"] == "failed"


def test_without_a_connection_string_no_sdk_or_exporter_is_imported() -> None:
    code = (
        "import sys\n"
        "from replicator.observe import metrics\n"
        "metrics.RunMeter('replicate', 'disk', 'https://a/c/b').finish('replicated')\n"
        "heavy = sorted(m for m in sys.modules if m.startswith(('opentelemetry.sdk', 'azure.monitor')))\n"
        "assert not heavy, heavy\n"
        "assert metrics._current().provider is None\n"
    )
    env = {k: v for k, v in os.environ.items() if k != metrics.CONNECTION_STRING_ENV}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


@pytest.fixture
def fresh_sink(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The sink decided again from the environment, and forgotten after the test."""
    for name in metrics.QUIET_EXPORTER:  # _azure_monitor sets these defaults in os.environ
        monkeypatch.setenv(name, "true")
    metrics.install(None)
    yield
    metrics.install(None)


def test_a_bad_connection_string_is_one_warning_and_no_metrics(
    fresh_sink, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv(metrics.CONNECTION_STRING_ENV, "InstrumentationKey=not-a-uuid;IngestionEndpoint=x")
    with caplog.at_level(logging.WARNING, logger="replicator.observe.metrics"):
        RunMeter("replicate", DISK, TARGET).finish("replicated")
    assert metrics._current().provider is None
    [record] = caplog.records
    assert "is not a usable connection string (ValueError)" in record.getMessage()
    assert "not-a-uuid" not in record.getMessage()


def test_a_missing_exporter_package_is_one_warning_naming_the_install(
    fresh_sink, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv(
        metrics.CONNECTION_STRING_ENV, "InstrumentationKey=00000000-0000-0000-0000-000000000001"
    )
    monkeypatch.setitem(sys.modules, "azure.monitor.opentelemetry.exporter", None)  # import fails
    with caplog.at_level(logging.WARNING, logger="replicator.observe.metrics"):
        RunMeter("replicate", DISK, TARGET).finish("replicated")
    assert metrics._current().provider is None
    [record] = caplog.records
    assert "pip install 'replicator[azure-monitor]'" in record.getMessage()
