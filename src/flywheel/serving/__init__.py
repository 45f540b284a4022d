"""Serving: the Agent Server (Responses API, invoke + stream) on port 5005, and its chat page.

The protocol (request context, response reader) is imported at once and is light — the evaluation
target and the simulator read answers with it; the server itself (FastAPI, the registry) loads
on first use."""

from typing import Any

from flywheel.serving._protocol import (
    RequestContext,
    ResponseAnswer,
    ResponsesRequest,
    StreamWriter,
    question_of,
    read_response,
    request_context,
)

__all__ = [
    "ABExperiment",
    "LoadedAgent",
    "RequestContext",
    "ResponseAnswer",
    "ResponsesRequest",
    "ServerLimits",
    "StreamWriter",
    "ab_dir",
    "build_ab_app",
    "build_app",
    "load_agent",
    "load_experiment",
    "question_of",
    "read_response",
    "request_context",
    "save_experiment",
]

_LAZY = {
    "ABExperiment": ("flywheel.serving._ab", "ABExperiment"),
    "ab_dir": ("flywheel.serving._ab", "ab_dir"),
    "build_ab_app": ("flywheel.serving._ab", "build_ab_app"),
    "load_experiment": ("flywheel.serving._ab", "load_experiment"),
    "save_experiment": ("flywheel.serving._ab", "save_experiment"),
    "LoadedAgent": ("flywheel.registry", "LoadedAgent"),
    "load_agent": ("flywheel.registry", "load_agent"),
    "ServerLimits": ("flywheel.serving._app", "ServerLimits"),
    "build_app": ("flywheel.serving._app", "build_app"),
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'flywheel.serving' has no attribute {name!r}")
