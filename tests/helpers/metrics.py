"""What the run metrics recorded, read back from an OpenTelemetry InMemoryMetricReader (the
`metric_reader` fixture of tests/conftest.py)."""

from __future__ import annotations

from typing import Any


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
