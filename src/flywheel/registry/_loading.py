"""Load the agent to run (a server, an evaluation): a registered version (models:/NAME@ALIAS) or a local AgentConfig."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from flywheel.agent import AgentConfig, DocsAgent, default_config
from flywheel.config import Settings
from flywheel.errors import InputError
from flywheel.tracking import load_pyfunc, resolve_model, setup_tracing

__all__ = ["LoadedAgent", "load_agent"]

log = logging.getLogger("flywheel.registry")


@dataclass
class LoadedAgent:
    agent: DocsAgent
    identity: dict[str, str] = field(default_factory=dict)
    model_name: str = "flywheel-agent"


def load_agent(
    settings: Settings,
    model_uri: str | None = None,
    config: AgentConfig | None = None,
    *,
    trace_export: str | None = None,
    **agent_kwargs: Any,
) -> LoadedAgent:
    """Load the agent to serve; tracing is set up first so every request is a trace (exported the
    server's way, ``serve_trace_export``, unless ``trace_export`` says otherwise)."""
    from flywheel.registry._prompts import prompt_loader

    if settings.serve_trace:
        setup_tracing(
            settings,
            export=trace_export or settings.serve_trace_export,
            spool_dir=settings.data_path / "spool" / f"traces-{settings.agent_port}",
        )
    if model_uri:
        identity = resolve_model(settings, model_uri)
        model = load_pyfunc(settings, model_uri)
        impl = model._model_impl  # ResponsesAgent models are wrapped as `responses_agent`, not `python_model`
        wrapper = getattr(impl, "responses_agent", None) or getattr(impl, "python_model", None)
        if wrapper is None or not hasattr(wrapper, "agent"):
            raise InputError("not_an_agent_model", uri=model_uri)
        wrapper.settings = settings  # this process's settings, not only what the environment says
        agent: DocsAgent = wrapper.agent
        agent.identity.update(identity)
        name = f"{identity['registered_model.name']}/{identity['registered_model.version']}"
        return LoadedAgent(agent, identity, name)
    agent = DocsAgent(
        settings,
        config or default_config(settings, **settings.serve_agent_config),
        prompt_loader=prompt_loader(settings),
        **agent_kwargs,
    )
    return LoadedAgent(agent, {"model_uri": "local"}, "flywheel-agent-local")
