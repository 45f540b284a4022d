"""The trace spool: batches the tracking server cannot take wait on disk, survive a restart, are
delivered oldest first when it is back; the cap drops the oldest and counts them; feedback waits
for its trace."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from flywheel.tracking._spool import SpoolingSpanExporter, TraceSpool, mlflow_trace_id
from tests.conftest import free_port


class _Collector(BaseHTTPRequestHandler):
    received: ClassVar[list[bytes]] = []
    headers_seen: ClassVar[list[str]] = []

    def do_POST(self) -> None:
        self.received.append(self.rfile.read(int(self.headers["content-length"])))
        self.headers_seen.append(self.headers.get("x-mlflow-experiment-id", ""))
        self.send_response(200)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def _spans(exporter: SpoolingSpanExporter, n: int) -> list[str]:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")
    ids = []
    for i in range(n):
        with tracer.start_as_current_span(f"answer-{i}") as root:
            with tracer.start_as_current_span("retrieve"):
                pass
            ids.append(mlflow_trace_id(root.get_span_context().trace_id))
    return ids


def test_undeliverable_batches_wait_on_disk_and_arrive_when_the_server_is_back(tmp_path: Path) -> None:
    port = free_port()  # nothing listens yet: the tracking server is down
    endpoint = f"http://127.0.0.1:{port}/v1/traces"
    spool = TraceSpool(tmp_path / "spool", 10_000_000, endpoint, {"x-mlflow-experiment-id": "7"})
    exporter = SpoolingSpanExporter(spool, endpoint=endpoint, timeout=0.5)
    ids = _spans(exporter, 3)
    assert spool.stats()["spool_batches"] == 6  # one per span (simple processor)
    assert {spool.ledger.state(t) for t in ids} == {"spooled"}
    assert not spool.drain_once()  # still down

    # the agent server restarts: a new spool on the same folder knows what is waiting
    spool = TraceSpool(tmp_path / "spool", 10_000_000, endpoint, {"x-mlflow-experiment-id": "7"})
    assert {spool.ledger.state(t) for t in ids} == {"spooled"}

    _Collector.received, _Collector.headers_seen = [], []
    server = ThreadingHTTPServer(("127.0.0.1", port), _Collector)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        assert spool.drain_once()
    finally:
        server.shutdown()
    assert spool.stats()["spool_batches"] == 0
    assert {spool.ledger.state(t) for t in ids} == {"exported"}
    names = []
    for body in _Collector.received:
        req = ExportTraceServiceRequest.FromString(body)
        names += [s.name for rs in req.resource_spans for ss in rs.scope_spans for s in ss.spans]
    assert sorted(names) == sorted([f"answer-{i}" for i in range(3)] + ["retrieve"] * 3)
    assert set(_Collector.headers_seen) == {"7"}  # the experiment header travels with each batch


def test_the_cap_drops_the_oldest_batches_and_counts_their_traces(tmp_path: Path) -> None:
    endpoint = f"http://127.0.0.1:{free_port()}/v1/traces"
    spool = TraceSpool(tmp_path / "spool", 1500, endpoint, {})
    for i in range(20):
        spool.put(b"x" * 200, [f"tr-{i:032x}"])
    stats = spool.stats()
    assert stats["spool_bytes"] <= 1500
    assert stats["dropped_traces_total"] == 20 - stats["spool_batches"] > 0
    assert spool.ledger.state(f"tr-{0:032x}") == "lost"
    assert spool.ledger.state(f"tr-{19:032x}") == "spooled"


def test_feedback_waits_for_its_trace(tmp_path: Path) -> None:
    endpoint = f"http://127.0.0.1:{free_port()}/v1/traces"
    spool = TraceSpool(tmp_path / "spool", 1_000_000, endpoint, {})
    logged: list[dict[str, Any]] = []
    spool._feedback_log = lambda item: logged.append(item) or "a-1"  # type: ignore[assignment, func-returns-value]
    spool.put(b"batch", ["tr-1"])
    spool.queue_feedback({"trace_id": "tr-1", "value": False})
    spool.drain_feedback()
    assert not logged and spool.queued_feedback() == 1  # its trace is still spooled
    spool.ledger.unspooled(["tr-1"], delivered=True)
    spool.drain_feedback()
    assert [i["trace_id"] for i in logged] == ["tr-1"] and spool.queued_feedback() == 0
