"""Run metrics for alerting: how old each replica is, how runs end, how long they take, what they copy.

Why: a scheduled run that silently stops protecting a disk is the worst failure of a DR tool. The
exit code reaches cron or the Functions host, but only a metric lets Azure Monitor alert on "this
target's newest restore point is older than twice the snapshot interval", whatever the cause (runs
failing, locked, limited, interrupted). OpenTelemetry (`opentelemetry-api`) is the vendor-neutral
way to say it; Application Insights is where a Functions app's operators look (docs/functions.md,
"Metrics and alerts", has the alert rule).

Instruments (meter `replicator`; names and units follow the OpenTelemetry semantic conventions: a
`replicator.` namespace, UCUM units, a plural name only for a count of things):

- `replicator.run.duration`, histogram, `s`: wall time of the run, start to outcome.
- `replicator.runs`, counter, `{run}`: 1 per run.
- `replicator.data.copied`, counter, `By`: bytes written onto the target, also by a run that then
  failed (its rerun does not copy them again).
- `replicator.replica.lag`, histogram, `s`: now minus the creation time of the source snapshot the
  target's newest restore point holds, the RPO actually held; no point while the target has none.

Attributes of every point: `replicator.command` (`replicate`, `worker`, `timer`, `queue`: who ran
it), `replicator.source` (the source ID as configured: the disk of a scheduled job) and
`replicator.target` (the target URL without its query: never a SAS, redact.display_url). The run
count and duration also carry `replicator.run.status`, the `--json` status (errors.status_of).

The lag is a histogram, not a gauge: each run measures it once, and Azure Monitor's exporter exports
a synchronous gauge cumulatively, so a long-lived worker would re-send a target's last lag, unchanged
and freshly stamped, at every later export: a target whose runs stopped would look current. A
histogram is exported as a delta, one point per run; an alert takes its maximum over a window.

Where the points go, decided once per process from its environment:

- `APPLICATIONINSIGHTS_CONNECTION_STRING` set (the Functions convention): our own SDK MeterProvider
  with Azure Monitor's metric exporter (azure-monitor-opentelemetry-exporter), whose points land in
  the `customMetrics` table. It never exports on a timer: `RunMeter.finish` flushes each run's
  points as the run ends, since a CLI process is gone right after and a Functions instance may be
  frozen once the invocation returns. One upload attempt (`retry_total=0`): a failed one stays in
  the exporter's offline storage (the temp directory, 48 h) and goes out with the next run's, a
  minute later at the earliest (the exporter's lease on a stored batch).
- Otherwise: the global OpenTelemetry API meter, a no-op unless the application configured an SDK
  itself (`opentelemetry-instrument`, say); no SDK or exporter is imported, nothing goes on the
  network.

The flush is bounded (FLUSH_SECONDS): it runs in a daemon thread that the run waits for at most
that long, so a dead or black-holed ingestion endpoint delays the end of a run by seconds, never
hangs it; the exit code is the run's either way. Recording never raises into the run.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from replicator.core.progress import Progress, Protected
from replicator.core.redact import display_url

log = logging.getLogger(__name__)

CONNECTION_STRING_ENV = "APPLICATIONINSIGHTS_CONNECTION_STRING"
METER_NAME = "replicator"

FLUSH_SECONDS = 5.0
"""Longest wait for a run's points to leave: a healthy ingestion endpoint answers within a second;
longer would hold cron or a Functions invocation on a dead one for nothing (the points wait in the
exporter's offline storage when the upload fails, and a stuck upload finishes in the background of a
long-lived worker)."""
UPLOAD_READ_TIMEOUT = 30.0
"""Seconds the exporter waits for ingestion's answer (azure-core's default, 300 s, would keep a
worker's one flush thread stuck for five minutes on a black-holed endpoint)."""

QUIET_EXPORTER = {
    # The exporter's own telemetry to Microsoft (statsbeat, SDK stats) and its remote configuration
    # (OneSettings) are background threads and requests to hosts other than the connection string's;
    # statsbeat's provider also flushes at exit for up to 30 s. Off, unless the environment says.
    "APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL": "true",
    "APPLICATIONINSIGHTS_SDKSTATS_DISABLED": "true",
    "APPLICATIONINSIGHTS_CONTROLPLANE_DISABLED": "true",
}

DURATION_BUCKETS = (1, 5, 15, 60, 300, 900, 1800, 3600, 7200, 14400)
"""Seconds: runs take from a second (nothing new) to hours (a first copy)."""
LAG_BUCKETS = (300, 900, 1800, 3600, 7200, 14400, 43200, 86400, 172800, 604800)
"""Seconds: snapshot intervals range from minutes to a day; a lag of a week means no DR at all."""


@dataclass(frozen=True)
class RunMetrics:
    """One run as its metrics see it."""

    command: str
    source: str
    target: str  # display form: no query, no SAS
    status: str
    seconds: float
    copied_bytes: int
    protected_through: datetime | None  # source time of the target's newest restore point

    def lag_seconds(self, now: datetime) -> float | None:
        """now - protected_through (a naive time is UTC), never negative; None without a restore point."""
        if self.protected_through is None:
            return None
        then = self.protected_through
        if then.tzinfo is None:
            then = then.replace(tzinfo=UTC)
        return max(0.0, (now - then).total_seconds())


class _Instruments:
    def __init__(self, meter: Any) -> None:
        self.duration = meter.create_histogram(
            "replicator.run.duration",
            unit="s",
            description="Wall time of one replication run, start to outcome.",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        )
        self.runs = meter.create_counter(
            "replicator.runs", unit="{run}", description="Replication runs, by --json status."
        )
        self.copied = meter.create_counter(
            "replicator.data.copied", unit="By", description="Bytes written onto the target by runs."
        )
        self.lag = meter.create_histogram(
            "replicator.replica.lag",
            unit="s",
            description="Age of the source snapshot held by the target's newest restore point (RPO held).",
            explicit_bucket_boundaries_advisory=LAG_BUCKETS,
        )


@dataclass
class _Sink:
    instruments: _Instruments
    provider: Any | None  # ours to flush (an SDK MeterProvider); None for the global API meter


_sink: _Sink | None = None
_sink_lock = threading.Lock()
_flushing: threading.Thread | None = None


def install(provider: Any | None) -> None:
    """Record into `provider` (an SDK MeterProvider) from now on; None: decide again from the environment.

    The Azure Monitor path goes through here; tests pass a provider with an InMemoryMetricReader.
    """
    global _sink
    with _sink_lock:
        _sink = None if provider is None else _Sink(_Instruments(_meter_of(provider)), provider)


def _meter_of(provider: Any) -> Any:
    return provider.get_meter(METER_NAME)


def _current() -> _Sink:
    global _sink
    with _sink_lock:
        if _sink is None:
            provider = _azure_monitor(os.environ)
            if provider is not None:
                _sink = _Sink(_Instruments(_meter_of(provider)), provider)
            else:
                from opentelemetry import metrics as otel

                _sink = _Sink(_Instruments(otel.get_meter(METER_NAME)), None)
        return _sink


def _azure_monitor(env: Mapping[str, str]) -> Any | None:
    """An SDK MeterProvider exporting to the Application Insights `env` names, or None (not asked, or
    not possible: said once in a warning, and the run goes on without metrics)."""
    connection_string = env.get(CONNECTION_STRING_ENV, "").strip()
    if not connection_string:
        return None
    try:
        from azure.monitor.opentelemetry.exporter import AzureMonitorMetricExporter
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
        from opentelemetry.sdk.resources import Resource
    except ImportError:
        log.warning(
            "%s is set but azure-monitor-opentelemetry-exporter is not installed "
            "(pip install 'replicator[azure-monitor]'); metrics are not exported.",
            CONNECTION_STRING_ENV,
        )
        return None
    for name, value in QUIET_EXPORTER.items():
        os.environ.setdefault(name, value)
    try:
        exporter = AzureMonitorMetricExporter(
            connection_string=connection_string,
            retry_total=0,
            timeout=FLUSH_SECONDS,
            read_timeout=UPLOAD_READ_TIMEOUT,
        )
    except ValueError as exc:  # the message may quote the connection string: name the class only
        log.warning(
            "%s is not a usable connection string (%s); metrics are not exported.",
            CONNECTION_STRING_ENV,
            type(exc).__name__,
        )
        return None
    reader = PeriodicExportingMetricReader(exporter, export_interval_millis=math.inf)
    return MeterProvider(
        metric_readers=[reader],
        resource=Resource.create({"service.name": METER_NAME}),
        shutdown_on_exit=False,  # its exit hook would wait up to 30 s; RunMeter.finish has flushed
    )


def record_run(run: RunMetrics, now: datetime | None = None) -> None:
    """Record one run's points (no I/O: `flush` sends them)."""
    sink = _current().instruments
    where = {
        "replicator.command": run.command,
        "replicator.source": run.source,
        "replicator.target": run.target,
    }
    ended = where | {"replicator.run.status": run.status}
    sink.runs.add(1, ended)
    sink.duration.record(run.seconds, ended)
    sink.copied.add(run.copied_bytes, where)
    lag = run.lag_seconds(now or datetime.now(UTC))
    if lag is not None:
        sink.lag.record(lag, where)


def flush(timeout_seconds: float = FLUSH_SECONDS) -> bool:
    """Hand what was recorded to the exporter and wait at most `timeout_seconds` for it.

    True when the export finished in time (or there is nothing of ours to flush). One flush at a time:
    while an earlier one is still stuck on the endpoint, this returns False at once; the points stay
    in the provider and leave with the next flush that gets through.
    """
    global _flushing
    provider = _current().provider
    if provider is None:
        return True
    with _sink_lock:
        if _flushing is not None and _flushing.is_alive():
            return False
        flushing = threading.Thread(target=provider.force_flush, name="replicator-metrics-flush", daemon=True)
        flushing.start()
        _flushing = flushing
    flushing.join(timeout_seconds)
    return not flushing.is_alive()


class _DiskBytes(Progress):
    """The bytes one disk of a VM run writes, counted into the run's meter."""

    def __init__(self, meter: RunMeter) -> None:
        self.meter = meter

    def on_written(self, nbytes: int) -> None:
        self.meter.copied_bytes += nbytes


class RunMeter(Progress):
    """Listens to one run (beside the shell's own listener: progress.Fanout) and records its metrics
    when it ends: `finish(status)` is the one call a shell makes, on every way out."""

    def __init__(self, command: str, source: str, target: str) -> None:
        self.command, self.source, self.target = command, source, display_url(target)
        self.started = time.monotonic()
        self.copied_bytes = 0
        self.protected_through: datetime | None = None

    def on_written(self, nbytes: int) -> None:
        self.copied_bytes += nbytes

    def on_protected(self, point: Protected) -> None:
        self.protected_through = point.snapshot_time

    def for_disk(self, name: str, index: int, count: int) -> Progress:
        """A disk of a VM run adds its bytes; the lag is the VM's (its newest complete group, which
        the run reports itself), never one disk's newer restore point."""
        return _DiskBytes(self)

    def metrics(self, status: str) -> RunMetrics:
        return RunMetrics(
            self.command,
            self.source,
            self.target,
            status,
            round(time.monotonic() - self.started, 3),
            self.copied_bytes,
            self.protected_through,
        )

    def finish(self, status: str) -> None:
        """Record the run as ended with `status` and flush (at most FLUSH_SECONDS); never raises.

        A Ctrl-C during the wait ends the wait, not the process with a traceback: the run's outcome
        is printed already and its exit code stands.
        """
        try:
            record_run(self.metrics(status))
            if not flush():
                log.warning(
                    "Application Insights did not confirm the run's metrics within %.0f s; not waiting "
                    "longer (check the IngestionEndpoint of %s and the network).",
                    FLUSH_SECONDS,
                    CONNECTION_STRING_ENV,
                )
        except KeyboardInterrupt:
            log.debug("stopped waiting for the run's metrics")
        except Exception:  # metrics must never change how a run ends
            log.debug("recording the run's metrics failed", exc_info=True)
