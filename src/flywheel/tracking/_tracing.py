"""Tracing helpers: MLflow spans when a tracking server is set up, no-ops (and a warning) when not.

Two ways to ship a finished trace to the tracking server:

- ``mlflow`` (MLflow's default exporter): per trace a ``start_trace`` call plus span uploads. Simple,
  and right for a CLI run or an evaluation, but on the SQLite tracking server it costs ~70 ms of
  server CPU per trace, so a server answering more than ~15 requests/s builds a backlog and, once
  MLflow's queue (1,000) is full, drops traces.
- ``otlp`` (the agent server's default): MLflow's tracer with OpenTelemetry's batch processor and
  OTLP/HTTP exporter, posting to the tracking server's own ``/v1/traces`` endpoint — hundreds of
  spans per request, ~2.5 ms of server CPU per trace. Same traces, same UI, same search.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

from flywheel.config import Settings
from flywheel.tracking._session import tracking_reachable, use

__all__ = ["flush_traces", "set_trace_identity", "setup_tracing", "span", "tracing_enabled"]

log = logging.getLogger("flywheel.tracing")
_STATE: dict[str, Any] = {"enabled": False, "uri": None, "export": None}

# OpenTelemetry batch processor defaults tuned for a server: export at least every second (feedback
# and online evaluation look traces up soon after the answer), and a queue deep enough for bursts
_OTLP_DEFAULTS = {"OTEL_BSP_SCHEDULE_DELAY": "1000", "OTEL_BSP_MAX_QUEUE_SIZE": "16384"}


def setup_tracing(
    settings: Settings,
    experiment: str | None = None,
    *,
    export: str | None = None,
    spool_dir: Path | None = None,
) -> bool:
    """Point MLflow at the tracking server and experiment; False (tracing off) if it is unreachable.

    ``export`` is ``mlflow`` or ``otlp`` (batched, for servers; see the module docstring); None keeps
    what this process set up before (code that runs inside a server, such as a logged model being
    loaded, must not switch the server's exporter), else ``mlflow``. With ``spool_dir`` (OTLP only),
    batches the tracking server cannot take wait on disk there and are sent when it is back
    (``_spool``)."""
    import mlflow

    from flywheel.tracking._export import claim_env, install_export

    claim_env()  # a user's OTEL_EXPORTER_OTLP_* is an extra destination, not MLflow's only one
    export = export or _STATE["export"] or "mlflow"
    uri = settings.tracking_uri
    key = (uri, experiment or settings.experiment, export)
    if _STATE["uri"] == key:
        return bool(_STATE["enabled"])
    if not tracking_reachable(settings):
        log.warning(
            "tracking server %s is not reachable: this run is not traced (start it with `flywheel up`)", uri
        )
        mlflow.tracing.disable()
        _STATE.update(enabled=False, uri=key)
        return False
    use(settings)
    exp = mlflow.set_experiment(experiment or settings.experiment)
    if export == "otlp" and uri.startswith(("http://", "https://")):
        headers = _use_otlp(uri, exp.experiment_id)
        if spool_dir is not None:
            from flywheel.tracking._spool import TraceSpool, install

            spool = TraceSpool(
                spool_dir, settings.serve_spool_max_mb * 1024 * 1024, uri.rstrip("/") + "/v1/traces", headers
            )
            install(spool)
            spool.start()
        mlflow.tracing.reset()
    else:
        if _STATE["export"] == "otlp":  # switching back: MLflow reads the OTLP variables at reset
            for k in ("ENDPOINT", "PROTOCOL", "HEADERS"):
                os.environ.pop(f"OTEL_EXPORTER_OTLP_TRACES_{k}", None)
            mlflow.tracing.reset()
        export = "mlflow"
    mlflow.tracing.enable()
    _STATE.update(enabled=True, uri=key, export=export)
    install_export(settings)  # also to Langfuse / Phoenix / a collector, when configured
    return True


def _use_otlp(uri: str, experiment_id: str) -> dict[str, str]:
    """Configure MLflow's OTLP path (read from OTEL_* variables when its tracer provider starts);
    the headers each batch carries are returned."""
    from mlflow.tracing.utils.otlp import build_otlp_headers

    from flywheel.tracking._export import OWN_ENDPOINT_ENV

    headers = build_otlp_headers(experiment_id)  # the experiment, and the tracking server's auth if set
    os.environ["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"] = uri.rstrip("/") + "/v1/traces"
    os.environ[OWN_ENDPOINT_ENV] = os.environ["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"]
    os.environ["OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"] = "http/protobuf"
    os.environ["OTEL_EXPORTER_OTLP_TRACES_HEADERS"] = ",".join(
        f"{k}={quote(v, safe='')}" for k, v in headers.items()
    )
    for k, v in _OTLP_DEFAULTS.items():
        os.environ.setdefault(k, v)
    return headers


def tracing_enabled() -> bool:
    return bool(_STATE["enabled"])


def set_trace_identity(root: Any, tags: dict[str, str], session_id: str | None, user_id: str | None) -> None:
    """Tag the current trace and record its session and user, whichever way it is exported.

    On the OTLP path MLflow 3.17 cannot carry trace tags set with ``update_current_trace`` (its
    processor writes them onto the already-ended root span and loses the span), so there they go
    on the root span as the attributes the tracking server turns back into tags and metadata."""
    import mlflow

    if _STATE["export"] == "otlp":
        attrs: dict[str, Any] = {}
        # tags something else put on the trace (e.g. MLflow's own, when a logged model is loaded)
        # would trip the same bug: move them onto the root span too
        from mlflow.tracing.trace_manager import InMemoryTraceManager

        trace_id = getattr(root, "trace_id", None)
        if trace_id:
            with InMemoryTraceManager.get_instance().get_trace(trace_id) as trace:
                if trace is not None:
                    for k in [k for k in trace.info.tags if not k.startswith("mlflow.")]:
                        attrs[f"mlflow.traceTag.{k}"] = str(trace.info.tags.pop(k))
        attrs.update({f"mlflow.traceTag.{k}": str(v) for k, v in tags.items()})
        attrs["session.id"] = session_id or ""
        attrs["user.id"] = user_id or "anonymous"
        root.set_attributes(attrs)
        return
    if mlflow.get_current_active_span() is None:  # e.g. MLflow's own predict while logging a model
        return
    mlflow.update_current_trace(
        metadata={"mlflow.trace.session": session_id or "", "mlflow.trace.user": user_id or "anonymous"},
        tags=tags,
    )


def flush_traces(timeout_s: float = 30.0) -> None:
    """Wait until the traces finished so far have reached the tracking server."""
    import mlflow

    if _STATE["export"] == "otlp":
        from mlflow.tracing.provider import provider

        # every processor of the provider: MLflow's OTLP batches and the extra destination's
        provider.get().force_flush(int(timeout_s * 1000))  # type: ignore[no-untyped-call]
    else:
        from flywheel.tracking._export import flush_export

        flush_export(timeout_s)  # MLflow's own exporter has its queue, flushed below
    mlflow.flush_trace_async_logging()


@contextlib.contextmanager
def span(name: str, span_type: str, inputs: Any = None) -> Iterator[Any]:
    """An MLflow span (or a stand-in with the same methods when tracing is off)."""
    if not _STATE["enabled"]:
        yield _NullSpan()
        return
    import mlflow

    with mlflow.start_span(name=name, span_type=span_type) as sp:
        if inputs is not None:
            sp.set_inputs(inputs)
        yield sp


class _NullSpan:
    trace_id = None
    request_id = None

    def set_inputs(self, *_: Any) -> None: ...

    def set_outputs(self, *_: Any) -> None: ...

    def set_attribute(self, *_: Any) -> None: ...

    def set_attributes(self, *_: Any) -> None: ...
