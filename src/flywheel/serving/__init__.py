"""Serving: the Agent Server (Responses API, invoke + stream) on port 5005, and its chat page."""

from flywheel.registry import LoadedAgent, load_agent
from flywheel.serving._app import ServerLimits, build_app
from flywheel.serving._protocol import (
    RequestContext,
    ResponsesRequest,
    StreamWriter,
    question_of,
    request_context,
)

__all__ = [
    "LoadedAgent",
    "RequestContext",
    "ResponsesRequest",
    "ServerLimits",
    "StreamWriter",
    "build_app",
    "load_agent",
    "question_of",
    "request_context",
]
