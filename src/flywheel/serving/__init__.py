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
    "LoadedAgent",
    "RequestContext",
    "ResponseAnswer",
    "ResponsesRequest",
    "ServerLimits",
    "StreamWriter",
    "build_app",
    "load_agent",
    "question_of",
    "read_response",
    "request_context",
]

_LAZY = {
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
