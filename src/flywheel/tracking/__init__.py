"""The one home of MLflow plumbing, below the stages: the session (tracking URI, client,
reachability), tracing and its export (OTLP with an on-disk spool; also to Langfuse, Phoenix or a collector), registered models, assessments on traces, and the
``VersionIdentity`` every trace, run, trial and gate decision carries."""

from flywheel.tracking._assessments import assessment_values, log_expectation, log_feedback
from flywheel.tracking._export import export_stats, export_target
from flywheel.tracking._identity import VersionIdentity, git_commit
from flywheel.tracking._models import load_pyfunc, resolve_model, try_resolve_model
from flywheel.tracking._session import client, get_trace, search_traces, tracking_reachable, use
from flywheel.tracking._spool import TraceLedger, active_spool
from flywheel.tracking._tracing import flush_traces, set_trace_identity, setup_tracing, span, tracing_enabled

__all__ = [
    "TraceLedger",
    "VersionIdentity",
    "active_spool",
    "assessment_values",
    "client",
    "export_stats",
    "export_target",
    "flush_traces",
    "get_trace",
    "git_commit",
    "load_pyfunc",
    "log_expectation",
    "log_feedback",
    "resolve_model",
    "search_traces",
    "set_trace_identity",
    "setup_tracing",
    "span",
    "tracing_enabled",
    "tracking_reachable",
    "try_resolve_model",
    "use",
]
