"""Trace export to other observability tools (Langfuse, Phoenix, Jaeger, an OpenTelemetry collector),
alongside MLflow.

flywheel keeps MLflow as its record of traces; this adds a second destination. Configuration:

- ``OTEL_EXPORTER_OTLP_ENDPOINT`` (base URL; ``/v1/traces`` is appended) or
  ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` (full URL), with ``OTEL_EXPORTER_OTLP_HEADERS``
  (``key=value,key=value``, values URL-encoded) — the OpenTelemetry SDK's own variables;
- or ``FLYWHEEL_TRACE_EXPORT=langfuse``: Langfuse's OTLP endpoint
  (``{LANGFUSE_HOST}/api/public/otel/v1/traces``) with basic auth from ``LANGFUSE_PUBLIC_KEY`` and
  ``LANGFUSE_SECRET_KEY`` (which may come from AWS SSM like every secret).

MLflow itself reads the same OpenTelemetry variables and would send its traces *only* there, away
from the tracking server; flywheel therefore takes them out of the environment when it starts
(``claim_env``) and adds its own batch processor to MLflow's tracer provider instead, so each span
goes to both. The exporter adds the attributes other tools read — OpenTelemetry's GenAI semantic
conventions (``gen_ai.*``) and OpenInference's (``openinference.span.kind``, ``input.value``,
``output.value``, ``llm.*``), which Phoenix and Langfuse show — derived from MLflow's own span
attributes at export time, so that serving pays nothing for them when no export is configured.

Failures never reach the caller: a batch the endpoint does not take is dropped and counted
(``export_stats()``; the agent server shows it in ``/metrics`` as
``flywheel_trace_export_dropped_spans_total``) and logged once per outage.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from flywheel.errors import ConfigError

__all__ = ["ExportTarget", "claim_env", "export_stats", "export_target", "install_export"]

log = logging.getLogger("flywheel.tracing")

# OpenInference span kinds and GenAI operation names for MLflow's span types
_KINDS = {
    "AGENT": ("AGENT", "invoke_agent"),
    "CHAT_MODEL": ("LLM", "chat"),
    "LLM": ("LLM", "chat"),
    "RETRIEVER": ("RETRIEVER", "retrieval"),
    "TOOL": ("TOOL", "execute_tool"),
    "GUARDRAIL": ("GUARDRAIL", None),
    "EMBEDDING": ("EMBEDDING", "embeddings"),
    "RERANKER": ("RERANKER", None),
    "CHAIN": ("CHAIN", None),
    "EVALUATOR": ("EVALUATOR", None),
}
_CLAIMED: dict[str, str] = {}
_CLAIM = {"done": False}
OWN_ENDPOINT_ENV = "FLYWHEEL_OTLP_OWN_ENDPOINT"  # what flywheel itself set (its tracking server)


@dataclass(frozen=True)
class ExportTarget:
    endpoint: str  # full URL of the OTLP/HTTP traces endpoint
    headers: dict[str, str] = field(default_factory=dict)
    name: str = "otlp"  # otlp | langfuse

    def redacted(self) -> str:
        return f"{self.name} {self.endpoint}"


def claim_env() -> None:
    """Take the OpenTelemetry export variables out of the environment (keeping them for
    ``export_target``) before MLflow reads them. Once per process, before flywheel's own OTLP path
    to the tracking server sets the TRACES variables; values a parent flywheel process set for its
    tracking server (inherited by a child) are not a destination of their own."""
    if _CLAIM["done"]:
        return
    _CLAIM["done"] = True
    own = os.environ.get(OWN_ENDPOINT_ENV, "")
    inherited = bool(own) and os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") == own
    for key in (
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "OTEL_EXPORTER_OTLP_HEADERS",
        "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
    ):
        if key not in os.environ:
            continue
        value = os.environ.pop(key)
        if inherited and "TRACES" in key:
            continue
        _CLAIMED[key] = value


def _parse_headers(raw: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for part in raw.split(","):
        if "=" in part:
            k, _, v = part.partition("=")
            out[unquote(k.strip())] = unquote(v.strip())
    return out


def export_target(settings: Any) -> ExportTarget | None:
    """Where traces go besides MLflow, from the settings and the claimed OpenTelemetry variables;
    None when nothing is configured."""
    mode = (getattr(settings, "trace_export", "") or "").strip().lower()
    if mode in ("", "otlp"):
        traces = _CLAIMED.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "")
        base = _CLAIMED.get("OTEL_EXPORTER_OTLP_ENDPOINT", "")
        endpoint = traces or (base.rstrip("/") + "/v1/traces" if base else "")
        if not endpoint:
            if mode == "otlp":
                raise ConfigError("trace_export_no_endpoint")
            return None
        headers = _parse_headers(
            _CLAIMED.get("OTEL_EXPORTER_OTLP_TRACES_HEADERS")
            or _CLAIMED.get("OTEL_EXPORTER_OTLP_HEADERS", "")
        )
        return ExportTarget(endpoint, headers, "otlp")
    if mode == "langfuse":
        pk, sk = settings.langfuse_public_key, settings.langfuse_secret_key
        if pk is None or sk is None:
            raise ConfigError("langfuse_keys", what="FLYWHEEL_TRACE_EXPORT=langfuse")
        token = base64.b64encode(f"{pk.get_secret_value()}:{sk.get_secret_value()}".encode()).decode()
        host = settings.langfuse_host.rstrip("/")
        # ingestion version 4: Langfuse's real-time OTLP path (what its own SDKs send)
        headers = {"Authorization": f"Basic {token}", "x-langfuse-ingestion-version": "4"}
        return ExportTarget(f"{host}/api/public/otel/v1/traces", headers, "langfuse")
    raise ConfigError(
        "config_invalid", name="FLYWHEEL_TRACE_EXPORT", detail=f"{mode!r} is not otlp or langfuse"
    )


class _Stats:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.exported = 0
        self.dropped = 0
        self.failing = False

    def snapshot(self) -> dict[str, int]:
        with self.lock:
            return {"exported_spans_total": self.exported, "dropped_spans_total": self.dropped}


_STATS = _Stats()
_INSTALLED: dict[str, Any] = {"processor": None, "provider": None, "target": None}


def export_stats() -> dict[str, int]:
    """Spans sent to the extra destination, and spans dropped (endpoint down, refused, queue full)."""
    return _STATS.snapshot()


def _attr_json(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def semantic_attributes(attrs: dict[str, Any]) -> dict[str, Any]:
    """GenAI and OpenInference attributes derived from an MLflow span's own (``mlflow.spanType``,
    ``mlflow.spanInputs``/``Outputs`` as JSON, flywheel's ``model``/``input_tokens``/…)."""
    out: dict[str, Any] = {}
    span_type = _attr_json(attrs.get("mlflow.spanType", "")) or "UNKNOWN"
    kind, operation = _KINDS.get(str(span_type), ("CHAIN", None))
    out["openinference.span.kind"] = kind
    if operation:
        out["gen_ai.operation.name"] = operation
    if "mlflow.spanInputs" in attrs:
        out["input.value"] = attrs["mlflow.spanInputs"]
        out["input.mime_type"] = "application/json"
    if "mlflow.spanOutputs" in attrs:
        out["output.value"] = attrs["mlflow.spanOutputs"]
        out["output.mime_type"] = "application/json"
    model = _attr_json(attrs.get("model", "")) or _attr_json(attrs.get("llm.model", ""))
    if model:
        out["gen_ai.request.model"] = str(model)
        out["llm.model_name"] = str(model)
    for ours, gen_ai, oi in (
        ("input_tokens", "gen_ai.usage.input_tokens", "llm.token_count.prompt"),
        ("output_tokens", "gen_ai.usage.output_tokens", "llm.token_count.completion"),
    ):
        if ours in attrs:
            try:
                n = int(_attr_json(attrs[ours]) or 0)
            except (TypeError, ValueError):
                continue
            out[gen_ai] = n
            out[oi] = n
    if kind == "AGENT":
        out["gen_ai.agent.name"] = "flywheel docs QA agent"
    if kind == "LLM":
        out["gen_ai.system"] = "openai"  # the wire protocol flywheel speaks to every LLM
    session = attrs.get("session.id")
    if session:
        out["session.id"] = session
    return out


def _exporter(target: ExportTarget) -> Any:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace import ReadableSpan
    from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

    class _SemanticExporter(SpanExporter):
        """OTLP/HTTP with the semantic attributes added and every outcome counted; never raises."""

        def __init__(self) -> None:
            self.inner = OTLPSpanExporter(endpoint=target.endpoint, headers=target.headers, timeout=5)

        def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
            enriched = [_enrich(s, ReadableSpan) for s in spans]
            try:
                result = self.inner.export(enriched)
            except Exception as exc:  # the exporter's own errors must not reach the batch thread
                log.debug("trace export failed: %s", exc)
                result = SpanExportResult.FAILURE
            with _STATS.lock:
                if result == SpanExportResult.SUCCESS:
                    _STATS.exported += len(spans)
                    if _STATS.failing:
                        log.warning("trace export to %s works again", target.redacted())
                    _STATS.failing = False
                else:
                    _STATS.dropped += len(spans)
                    if not _STATS.failing:
                        log.warning(
                            "trace export to %s failed: %d spans dropped (counted in "
                            "flywheel_trace_export_dropped_spans_total); serving goes on",
                            target.redacted(),
                            len(spans),
                        )
                    _STATS.failing = True
            return result

        def shutdown(self) -> None:
            self.inner.shutdown()

        def force_flush(self, timeout_millis: int = 30000) -> bool:
            return True

    return _SemanticExporter()


def _plain(key: str, value: Any) -> Any:
    """MLflow stores every attribute JSON-encoded (``"anonymous"`` with its quotes); other tools
    expect plain values. Scalars are decoded; objects stay JSON text; MLflow's own keys stay as
    MLflow wrote them (an MLflow server reading this export parses them)."""
    if key.startswith("mlflow.") or not isinstance(value, str):
        return value
    try:
        decoded = json.loads(value)
    except ValueError:
        return value
    if decoded is None:
        return ""
    return decoded if isinstance(decoded, str | int | float | bool) else value


def _enrich(span: Any, readable: Any) -> Any:
    attrs = {k: _plain(k, v) for k, v in (span.attributes or {}).items()}
    attrs.update(semantic_attributes(dict(span.attributes or {})))
    return readable(
        name=span.name,
        context=span.context,
        parent=span.parent,
        resource=span.resource,
        attributes=attrs,
        events=span.events,
        links=span.links,
        kind=span.kind,
        status=span.status,
        start_time=span.start_time,
        end_time=span.end_time,
        instrumentation_scope=span.instrumentation_scope,
    )


def install_export(settings: Any) -> ExportTarget | None:
    """Add the extra destination's batch processor to MLflow's current tracer provider (once per
    provider: MLflow builds a new one when tracing is reset). Returns the target, or None."""
    target = export_target(settings)
    if target is None:
        return None
    from mlflow.tracing.provider import _get_tracer, provider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    _get_tracer("flywheel")  # MLflow creates its provider lazily
    current = provider.get()
    if _INSTALLED["provider"] is current and _INSTALLED["target"] == target:
        return target
    add = getattr(current, "add_span_processor", None)
    if add is None:
        log.warning(
            "trace export to %s is off: MLflow's tracer provider takes no processors", target.redacted()
        )
        return None
    processor = BatchSpanProcessor(_exporter(target), max_queue_size=16384, schedule_delay_millis=1000)
    _wrap_on_end(processor)
    add(processor)
    _INSTALLED.update(processor=processor, provider=current, target=target)
    log.info("traces are also exported to %s", target.redacted())
    return target


def _wrap_on_end(processor: Any) -> None:
    """Count spans the batch queue refuses (full while the endpoint is slow or down) as dropped."""
    inner = processor.on_end
    limit = 16384

    def on_end(span: Any) -> None:
        queue = getattr(getattr(processor, "_batch_processor", None), "_queue", None)
        if queue is not None and len(queue) >= limit:
            with _STATS.lock:
                _STATS.dropped += 1
        inner(span)

    processor.on_end = on_end  # type: ignore[method-assign]


def uninstall_export() -> None:
    """Stop exporting to the extra destination (what was queued is sent first); a later
    ``install_export`` adds a fresh processor."""
    processor = _INSTALLED["processor"]
    if processor is not None:
        processor.shutdown()  # a shut processor ignores further spans
    _INSTALLED.update(processor=None, provider=None, target=None)


def flush_export(timeout_s: float = 10.0) -> None:
    processor = _INSTALLED["processor"]
    if processor is not None:
        processor.force_flush(int(timeout_s * 1000))
