"""Prometheus metrics of the agent server (``GET /metrics``, text exposition format).

Counters are kept as requests pass; the gauges (queue depth, slots in use, dependency health, trace
spool) are read at scrape time from the objects that own them, so they are never stale.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

__all__ = ["CONTENT_TYPE", "ServerMetrics"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_PATHS = {"/responses", "/v1/responses", "/invocations", "/feedback", "/ready", "/health", "/metrics"}


class _Live(Collector):
    def __init__(self, read: Callable[[], dict[str, Any]]) -> None:
        self.read = read

    def collect(self) -> Iterator[Any]:
        state = self.read()
        for name, help_text in (
            ("queue_depth", "requests waiting for a slot"),
            ("slots_in_use", "requests being answered"),
            ("slots_total", "concurrent answers allowed"),
        ):
            yield GaugeMetricFamily(f"flywheel_{name}", help_text, value=state.get(name, 0))
        deps = GaugeMetricFamily(
            "flywheel_dependency_up", "1 when the dependency answered the last check", labels=["dependency"]
        )
        for dep, up in state.get("dependencies", {}).items():
            deps.add_metric([dep], 1.0 if up else 0.0)
        yield deps
        spool = state.get("spool") or {}
        yield GaugeMetricFamily(
            "flywheel_trace_spool_batches",
            "trace batches waiting on disk",
            value=spool.get("spool_batches", 0),
        )
        yield GaugeMetricFamily(
            "flywheel_trace_spool_bytes", "bytes of trace batches on disk", value=spool.get("spool_bytes", 0)
        )
        yield GaugeMetricFamily(
            "flywheel_feedback_queued",
            "feedback waiting for its trace",
            value=spool.get("feedback_queued", 0),
        )
        for key in ("dropped_traces_total", "spooled_batches_total", "delivered_batches_total"):
            name = "flywheel_trace_" + key.removesuffix("_total")
            yield CounterMetricFamily(name, key.replace("_", " "), value=spool.get(key, 0))
        # the extra trace destination (OTLP endpoint, Langfuse), when one is configured
        from flywheel.tracking import export_stats

        for key, value in export_stats().items():
            name = "flywheel_trace_export_" + key.removesuffix("_total")
            yield CounterMetricFamily(name, "spans " + key.replace("_", " ") + " (OTLP export)", value=value)


class ServerMetrics:
    """One registry per app (tests build several apps in one process)."""

    def __init__(self, read_state: Callable[[], dict[str, Any]]) -> None:
        self.registry = CollectorRegistry()
        self._requests = Counter(
            "flywheel_requests",
            "HTTP requests answered, by path and status",
            ["path", "status"],
            registry=self.registry,
        )
        self.registry.register(_Live(read_state))

    def requests(self, path: str, status: int) -> None:
        self._requests.labels(path if path in _PATHS else "other", str(status)).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
