"""Which agent a server runs: a registered version (models:/NAME@ALIAS) or a local AgentConfig."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from flywheel.agent import AgentConfig, DocsAgent, default_config, setup_tracing
from flywheel.config import Settings
from flywheel.errors import InputError

__all__ = ["LoadedAgent", "load_agent"]

log = logging.getLogger("flywheel.serving")


@dataclass
class LoadedAgent:
    agent: DocsAgent
    identity: dict[str, str] = field(default_factory=dict)
    model_name: str = "flywheel-agent"


def _resolve(uri: str, settings: Settings) -> dict[str, str]:
    """models:/NAME@ALIAS or models:/NAME/VERSION → registered model name, version, alias."""
    from mlflow import MlflowClient

    body = uri.removeprefix("models:/")
    client = MlflowClient(settings.tracking_uri)
    if "@" in body:
        name, alias = body.split("@", 1)
        version = client.get_model_version_by_alias(name, alias).version
    elif "/" in body:
        name, version = body.rsplit("/", 1)
        alias = ""
    else:
        raise InputError("model_uri_invalid", uri=uri)
    return {
        "registered_model.name": name,
        "registered_model.version": str(version),
        "registered_model.alias": alias,
        "model_uri": uri,
    }


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
    from flywheel.registry import prompt_loader

    if settings.serve_trace:
        setup_tracing(
            settings,
            export=trace_export or settings.serve_trace_export,
            spool_dir=settings.data_path / "spool" / f"traces-{settings.agent_port}",
        )
    if model_uri:
        import mlflow

        mlflow.set_tracking_uri(settings.tracking_uri)
        identity = _resolve(model_uri, settings)
        model = mlflow.pyfunc.load_model(model_uri)
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
