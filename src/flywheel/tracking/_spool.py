"""No lost traces: a durable, size-capped spool for trace batches the tracking server cannot take.

The agent server ships traces as OTLP/HTTP batches (see ``_tracing``). When a batch cannot be
delivered (the tracking server is down or restarting), :class:`SpoolingSpanExporter` writes the
exact OTLP request bytes to a file in the spool folder instead of letting OpenTelemetry drop them; a
background thread posts the spooled batches, oldest first, once the server answers again. Files
survive a restart of the agent server and are sent by the next one. When the spool would grow past
its cap the oldest batches are dropped, and the traces lost that way are counted (``/ready`` and
``/metrics`` show them).

Feedback on a trace that has not reached the tracking server yet is queued in the same folder
(``feedback.jsonl``) and logged once the trace has arrived.

The ledger remembers the state of the traces this process produced (``pending`` until exported,
``spooled``, ``exported``), so ``/feedback`` knows at once whether an id is one of ours.

MLflow 3.17 has no public hook for choosing its OTLP exporter; :func:`install` replaces the
factory ``mlflow.tracing.provider.get_otlp_exporter`` before the tracer provider is (re)built. If
a future MLflow drops that name, tracing keeps working without the spool and says so in the log.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExportResult

__all__ = ["SpoolingSpanExporter", "TraceLedger", "TraceSpool", "active_spool", "install"]

log = logging.getLogger("flywheel.tracing")
_ACTIVE: dict[str, TraceSpool | None] = {"spool": None}
PENDING_TTL_S = 300.0  # a trace still "pending" after this long is treated as unknown


def mlflow_trace_id(otel_trace_id: int) -> str:
    return f"tr-{otel_trace_id:032x}"


class TraceLedger:
    """The state of the traces this process produced, bounded (oldest forgotten first)."""

    def __init__(self, capacity: int = 100_000) -> None:
        self.capacity = capacity
        self._state: OrderedDict[str, tuple[str, float]] = OrderedDict()
        self._spooled_refs: dict[str, int] = {}
        self._lock = threading.Lock()

    def _put(self, trace_id: str, state: str) -> None:
        self._state[trace_id] = (state, time.monotonic())
        self._state.move_to_end(trace_id)
        while len(self._state) > self.capacity:
            old, _ = self._state.popitem(last=False)
            self._spooled_refs.pop(old, None)

    def answered(self, trace_id: str) -> None:
        """An answer handed out this id: pending until its spans are exported."""
        if not trace_id:
            return
        with self._lock:
            if trace_id not in self._state:
                self._put(trace_id, "pending")

    def exported(self, trace_ids: Sequence[str]) -> None:
        with self._lock:
            for tid in trace_ids:
                if not self._spooled_refs.get(tid):
                    self._put(tid, "exported")

    def spooled(self, trace_ids: Sequence[str]) -> None:
        with self._lock:
            for tid in trace_ids:
                self._spooled_refs[tid] = self._spooled_refs.get(tid, 0) + 1
                self._put(tid, "spooled")

    def unspooled(self, trace_ids: Sequence[str], delivered: bool) -> list[str]:
        """A spooled batch left the spool; the ids with no other batch spooled are returned."""
        done = []
        with self._lock:
            for tid in trace_ids:
                left = self._spooled_refs.get(tid, 1) - 1
                if left > 0:
                    self._spooled_refs[tid] = left
                    continue
                self._spooled_refs.pop(tid, None)
                self._put(tid, "exported" if delivered else "lost")
                done.append(tid)
        return done

    def state(self, trace_id: str) -> str | None:
        """``pending``, ``spooled``, ``exported``, ``lost``, or None (not one of this process's)."""
        with self._lock:
            entry = self._state.get(trace_id)
        if entry is None:
            return None
        state, since = entry
        if state == "pending" and time.monotonic() - since > PENDING_TTL_S:
            return None
        return state


class TraceSpool:
    """Spooled OTLP batches on disk (``<seq>.otlp``: a JSON line of trace ids, then the protobuf)."""

    def __init__(
        self,
        directory: Path,
        max_bytes: int,
        endpoint: str,
        headers: dict[str, str],
        *,
        ledger: TraceLedger | None = None,
        interval_s: float = 1.0,
        post_timeout_s: float = 5.0,
    ) -> None:
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.max_bytes, self.endpoint, self.headers = max_bytes, endpoint, headers
        self.ledger = ledger or TraceLedger()
        self.interval_s, self.post_timeout_s = interval_s, post_timeout_s
        self.counters = {
            "spooled_batches_total": 0,
            "delivered_batches_total": 0,
            "dropped_traces_total": 0,
            "feedback_queued_total": 0,
            "feedback_delivered_total": 0,
            "feedback_dropped_total": 0,
        }
        self._lock = threading.RLock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._feedback_log: Callable[[dict[str, Any]], str] | None = None
        self._seq = max((int(p.stem) for p in self.dir.glob("*.otlp") if p.stem.isdigit()), default=0)
        for path in self._files():  # left by an earlier process: its traces are still to deliver
            self.ledger.spooled(self._ids(path))

    # -- the spool
    def _files(self) -> list[Path]:
        return sorted(self.dir.glob("*.otlp"))

    @staticmethod
    def _ids(path: Path) -> list[str]:
        try:
            with path.open("rb") as fh:
                return list(json.loads(fh.readline()))
        except (OSError, ValueError):
            return []

    def size_bytes(self) -> int:
        return sum(p.stat().st_size for p in self._files() if p.exists())

    def pending(self) -> bool:
        return any(True for _ in self.dir.glob("*.otlp"))

    def put(self, data: bytes, trace_ids: Sequence[str]) -> None:
        """Keep one undelivered batch; drop the oldest batches when the cap would be passed."""
        record = json.dumps(sorted(set(trace_ids))).encode() + b"\n" + data
        with self._lock:
            files = self._files()
            if not files:
                log.warning(
                    "tracking server not taking traces: spooling them to %s until it is back", self.dir
                )
            total = sum(p.stat().st_size for p in files)
            while files and total + len(record) > self.max_bytes:
                oldest = files.pop(0)
                ids = self._ids(oldest)
                total -= oldest.stat().st_size
                oldest.unlink(missing_ok=True)
                self._dropped(len(self.ledger.unspooled(ids, delivered=False)))
            if len(record) > self.max_bytes:
                self._dropped(len(set(trace_ids)))
                return
            self._seq += 1
            path = self.dir / f"{self._seq:012d}.otlp"
            tmp = path.with_suffix(".tmp")
            tmp.write_bytes(record)
            tmp.replace(path)
            self.counters["spooled_batches_total"] += 1
            self.ledger.spooled(list(set(trace_ids)))
        self._wake.set()

    def _dropped(self, n_traces: int) -> None:
        self.counters["dropped_traces_total"] += n_traces
        log.warning("trace spool full (%d bytes): dropped %d trace(s)", self.max_bytes, n_traces)

    def _post(self, data: bytes) -> int:
        import httpx

        resp = httpx.post(
            self.endpoint,
            content=data,
            headers={**self.headers, "Content-Type": "application/x-protobuf"},
            timeout=self.post_timeout_s,
            trust_env=False,
        )
        return resp.status_code

    def drain_once(self) -> bool:
        """Deliver spooled batches oldest first; False when the tracking server did not take one."""
        import httpx

        for path in self._files():
            try:
                raw = path.read_bytes()
            except OSError:
                continue
            head, _, data = raw.partition(b"\n")
            ids = list(json.loads(head or b"[]"))
            try:
                status = self._post(data)
            except httpx.HTTPError:
                return False
            if status >= 500 or status == 429:
                return False
            with self._lock:
                path.unlink(missing_ok=True)
            if status >= 400:  # refused for good (e.g. the experiment was deleted): counted, not retried
                log.warning("tracking server refused a spooled trace batch (HTTP %d): dropped", status)
                self.counters["dropped_traces_total"] += len(self.ledger.unspooled(ids, delivered=False))
            else:
                self.ledger.unspooled(ids, delivered=True)
                self.counters["delivered_batches_total"] += 1
                if not self.pending():
                    log.warning("trace spool delivered: the tracking server has every trace again")
        return True

    # -- feedback waiting for its trace
    @property
    def _feedback_path(self) -> Path:
        return self.dir / "feedback.jsonl"

    def _read_feedback(self) -> list[dict[str, Any]]:
        try:
            lines = self._feedback_path.read_text(encoding="utf-8").splitlines()
        except OSError:
            return []
        return [json.loads(line) for line in lines if line.strip()]

    def _write_feedback(self, items: list[dict[str, Any]]) -> None:
        tmp = self._feedback_path.with_suffix(".tmp")
        tmp.write_text("".join(json.dumps(i) + "\n" for i in items), encoding="utf-8")
        tmp.replace(self._feedback_path)

    def queue_feedback(self, item: dict[str, Any]) -> None:
        with self._lock:
            self._write_feedback([*self._read_feedback(), {**item, "attempts": 0}])
            self.counters["feedback_queued_total"] += 1
        self._wake.set()

    def queued_feedback(self) -> int:
        return len(self._read_feedback())

    def drain_feedback(self) -> None:
        """Log queued feedback whose trace has arrived; give up on an item after 30 failed tries."""
        if self._feedback_log is None:
            return
        with self._lock:
            items = self._read_feedback()
        if not items:
            return
        keep: list[dict[str, Any]] = []
        for n, item in enumerate(items):
            if self.ledger.state(item["trace_id"]) in ("pending", "spooled"):
                keep.append(item)
                continue
            try:
                self._feedback_log(item)
                self.counters["feedback_delivered_total"] += 1
            except ConnectionError:
                keep.extend(items[n:])
                break
            except Exception as exc:
                item["attempts"] = item.get("attempts", 0) + 1
                if item["attempts"] >= 30:
                    log.warning("feedback on trace %s dropped: %s", item["trace_id"], str(exc)[:200])
                    self.counters["feedback_dropped_total"] += 1
                else:
                    keep.append(item)
        with self._lock:  # items queued meanwhile are kept
            newer = self._read_feedback()[len(items) :]
            self._write_feedback(keep + newer)

    # -- the background thread
    def start(self, feedback_log: Callable[[dict[str, Any]], str] | None = None) -> None:
        self._feedback_log = feedback_log or self._feedback_log
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="flywheel-trace-spool", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()

    def _run(self) -> None:
        backoff = self.interval_s
        while not self._stop.is_set():
            self._wake.wait(backoff)
            self._wake.clear()
            try:
                ok = self.drain_once()
                if ok:
                    self.drain_feedback()
            except Exception:  # the spool thread must never die
                log.exception("trace spool: drain failed")
                ok = False
            backoff = self.interval_s if ok else min(backoff * 2, 10.0)

    def stats(self) -> dict[str, int]:
        files = self._files()
        return {
            "spool_batches": len(files),
            "spool_bytes": sum(p.stat().st_size for p in files if p.exists()),
            "feedback_queued": self.queued_feedback(),
            **self.counters,
        }


class SpoolingSpanExporter(OTLPSpanExporter):
    """The OTLP/HTTP exporter, but a batch it cannot deliver goes to the spool, not away. While the
    spool holds batches, new ones join it directly (order is kept, no 3 s timeout per batch)."""

    def __init__(self, spool: TraceSpool, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.spool = spool

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        ids = sorted({mlflow_trace_id(s.context.trace_id) for s in spans if s.context is not None})
        if not self.spool.pending():
            result = super().export(spans)
            if result is SpanExportResult.SUCCESS:
                self.spool.ledger.exported(ids)
                return result
        try:
            self.spool.put(encode_spans(spans).SerializePartialToString(), ids)
        except Exception:
            log.exception("trace spool: could not keep %d span(s)", len(spans))
            return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS


def install(spool: TraceSpool, timeout_s: float = 3.0) -> bool:
    """Make MLflow's OTLP tracer provider use the spooling exporter (call before it is rebuilt)."""
    try:
        import mlflow.tracing.provider as provider
    except ImportError:  # pragma: no cover
        return False
    if not hasattr(provider, "get_otlp_exporter"):
        log.warning("this MLflow has no get_otlp_exporter: traces are exported without the spool")
        return False
    provider.get_otlp_exporter = lambda: SpoolingSpanExporter(  # type: ignore[attr-defined]
        spool, endpoint=spool.endpoint, headers=spool.headers, timeout=timeout_s
    )
    _ACTIVE["spool"] = spool
    return True


def active_spool() -> TraceSpool | None:
    return _ACTIVE["spool"]
