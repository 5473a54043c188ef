"""Prometheus metrics of one model server: requests by endpoint and status, latency, in-flight, captures.

With several workers, uvicorn's processes share PROMETHEUS_MULTIPROC_DIR (set by server.py) and
/metrics sums them; with one worker the metrics live in this process only.
"""

from __future__ import annotations

import os
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics, generate_latest
from prometheus_client.core import GaugeMetricFamily

BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
disable_created_metrics()  # type: ignore[no-untyped-call]


class _Info:
    """legion_model_info{model,version,artifact_id,commit} 1: which build this server answers from."""

    def __init__(self, labels: dict[str, str]) -> None:
        self.labels = labels

    def collect(self) -> Any:
        family = GaugeMetricFamily(
            "legion_model_info", "The model version this server answers from", labels=list(self.labels)
        )
        family.add_metric(list(self.labels.values()), 1.0)
        yield family


class Metrics:
    """The server's metrics; children for each label set are resolved once and cached."""

    def __init__(self, model: str, version: str, artifact_id: str, commit: str | None) -> None:
        self.multiprocess = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
        self.registry = CollectorRegistry(auto_describe=True)
        reg = None if self.multiprocess else self.registry
        if self.multiprocess:
            from prometheus_client import multiprocess

            multiprocess.MultiProcessCollector(self.registry)  # type: ignore[no-untyped-call]
        else:
            from prometheus_client.process_collector import ProcessCollector

            ProcessCollector(registry=self.registry)
        self.registry.register(
            _Info({"model": model, "version": version, "artifact_id": artifact_id, "commit": commit or ""})
        )
        labels = ["model", "version"]
        self.requests = Counter(
            "legion_requests", "HTTP requests answered", [*labels, "endpoint", "status"], registry=reg
        )
        self.latency = Histogram(
            "legion_request_duration_seconds",
            "Time to answer a request",
            [*labels, "endpoint"],
            buckets=BUCKETS,
            registry=reg,
        )
        self.in_flight = Gauge(
            "legion_requests_in_flight", "Requests being answered", labels, registry=reg, multiprocess_mode="livesum"
        )
        self.rows = Counter("legion_predicted_rows", "Rows predicted", labels, registry=reg)
        self.captured = Counter(
            "legion_captured_records", "Records written to the feedback store", labels, registry=reg
        )
        self.capture_errors = Counter(
            "legion_capture_errors", "Records the feedback store could not take", labels, registry=reg
        )
        self.shipped = Counter(
            "legion_shipped_segments", "Capture segments uploaded to the store", labels, registry=reg
        )
        self.ship_errors = Counter(
            "legion_ship_errors",
            "Failed uploads of capture segments to the store (down or refusing; the segments wait on disk)",
            labels,
            registry=reg,
        )
        self.base = (model, version)
        self._requests: dict[tuple[str, int], Any] = {}
        self._latency: dict[str, Any] = {}
        self.flight = self.in_flight.labels(*self.base)
        self.rows_child = self.rows.labels(*self.base)
        self.captured_child = self.captured.labels(*self.base)
        self.capture_errors_child = self.capture_errors.labels(*self.base)
        self.shipped_child = self.shipped.labels(*self.base)
        self.ship_errors_child = self.ship_errors.labels(*self.base)

    def observe(self, endpoint: str, status: int, seconds: float) -> None:
        child = self._requests.get((endpoint, status))
        if child is None:
            child = self._requests[(endpoint, status)] = self.requests.labels(*self.base, endpoint, str(status))
        child.inc()
        hist = self._latency.get(endpoint)
        if hist is None:
            hist = self._latency[endpoint] = self.latency.labels(*self.base, endpoint)
        hist.observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
