"""Typed settings: defaults in one place, read from init > environment > .env > flywheel.toml.

Most keys are ``FLYWHEEL_*``; the few that the wider ecosystem already names (OPENAI_API_KEY,
EXA_API_KEY, LLM_MODEL, EMBEDDING_MODEL, MLFLOW_TRACKING_URI, LLM_BASE_URL, MILVUS_URI) keep those
names, and also accept a ``FLYWHEEL_`` prefix.
"""

from __future__ import annotations

import json
import os
import tomllib
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
    TomlConfigSettingsSource,
)

from flywheel.errors import ConfigError

__all__ = ["DEFAULT_HOST", "Settings", "load_settings", "secret_values"]

DEFAULT_HOST = "127.0.0.1"
DEFAULT_MLFLOW_PORT = 5000
DEFAULT_AGENT_PORT = 5005
DEFAULT_GATEWAY_PORT = 5010
DEFAULT_LLM_PORT = 8080
DEFAULT_MILVUS_PORT = 19530
DEFAULT_LLM_MODEL = "SmolLM2-135M-Instruct"
DEFAULT_EMBEDDING_MODEL = "all-MiniLM-L6-v2"


def _alias(name: str) -> Any:
    return Field(None, validation_alias=AliasChoices(name, f"FLYWHEEL_{name}", name.lower()))


class Settings(BaseSettings):
    """Every address, port, model and path flywheel uses. ``flywheel doctor`` prints them."""

    model_config = SettingsConfigDict(
        env_prefix="FLYWHEEL_",
        env_file=".env",
        env_file_encoding="utf-8",
        env_ignore_empty=True,  # VAR= means unset, as in a shell or a Kubernetes manifest
        extra="ignore",
        populate_by_name=True,
        toml_file="flywheel.toml",
    )

    # -- where things live
    data_dir: Path = Path("data")
    # -- environment: dev / tst / prd keep separate experiments, aliases, runtime names and secret
    # prefixes (None: one environment, the names as they are)
    profile: Literal["dev", "tst", "prd"] | None = None
    # -- secrets from AWS SSM Parameter Store (config/_secrets.py): a prefix such as
    # "/flywheel/{profile}/" (+ the variable name), and/or explicit paths per variable
    secrets_ssm_prefix: str | None = None
    secrets_ssm_paths: dict[str, str] = Field(default_factory=dict)
    aws_region: str | None = _alias("AWS_REGION")
    # -- where gate and tune deploy temporary runtimes (flywheel.runtime): local child processes, or
    # a cluster / engine / AgentCore with the agent image
    runtime_backend: Literal["local", "kubernetes", "docker", "agentcore"] = "local"
    runtime_image: str = "ghcr.io/flywheel/agent:latest"
    runtime_namespace: str = "flywheel"
    runtime_ttl_s: float = Field(7200, gt=0, description="remote gate/tune runtimes expire after this")
    agentcore_role_arn: str | None = None
    # -- tune: where the Optuna study lives when several workers share it (an SQLAlchemy URL, e.g.
    # postgresql://user:pass@host/optuna; unset: a local SQLite file per study) and how often a
    # running trial proves its worker alive (a trial silent for 3 intervals is retried elsewhere)
    tune_storage: SecretStr | None = None
    tune_heartbeat_s: float = Field(30.0, gt=0)
    # -- gate: evaluate champion and candidate at once (unset: yes unless the runtimes are local)
    gate_parallel: bool | None = None
    # -- online evaluation as N replicas: this one's share "I/N" (or N with a StatefulSet's ordinal)
    monitor_replica: str | None = None
    monitor_replicas: int | None = Field(None, ge=1)
    # -- gateway: a `limits` storage URI (redis://…) the replicas share their rate limits through;
    # overrides the YAML's gateway.limits_storage (a password stays out of the ConfigMap)
    gateway_limits_storage: SecretStr | None = None
    langfuse_public_key: SecretStr | None = _alias("LANGFUSE_PUBLIC_KEY")
    langfuse_secret_key: SecretStr | None = _alias("LANGFUSE_SECRET_KEY")
    langfuse_host: str = Field(
        "https://cloud.langfuse.com",
        validation_alias=AliasChoices("LANGFUSE_HOST", "FLYWHEEL_LANGFUSE_HOST", "langfuse_host"),
    )
    # -- traces also go to another tool (tracking/_export.py): "" = only when OTEL_EXPORTER_OTLP_ENDPOINT
    # is set; "otlp" = require it; "langfuse" = Langfuse's OTLP endpoint with the keys above
    trace_export: Literal["", "otlp", "langfuse"] = ""
    # evaluation and online-evaluation scores also go to Langfuse, on the traces exported there
    langfuse_scores: bool = False
    host: str = DEFAULT_HOST

    # -- ports of the embedded services (the book's: 5000 tracking, 5005 agent, 5010 gateway)
    mlflow_port: int = Field(DEFAULT_MLFLOW_PORT, ge=1, le=65535)
    agent_port: int = Field(DEFAULT_AGENT_PORT, ge=1, le=65535)
    gateway_port: int = Field(DEFAULT_GATEWAY_PORT, ge=1, le=65535)
    llm_port: int = Field(DEFAULT_LLM_PORT, ge=1, le=65535)
    milvus_port: int = Field(DEFAULT_MILVUS_PORT, ge=1, le=65535)

    # -- tracking: unset means the embedded MLflow server on host:mlflow_port
    mlflow_tracking_uri: str | None = _alias("MLFLOW_TRACKING_URI")
    experiment: str = "flywheel"

    # -- the LLM: unset LLM_BASE_URL means the embedded llama.cpp server on host:llm_port
    llm_model: str = Field(
        DEFAULT_LLM_MODEL, validation_alias=AliasChoices("LLM_MODEL", "FLYWHEEL_LLM_MODEL", "llm_model")
    )
    llm_base_url: str | None = _alias("LLM_BASE_URL")
    openai_api_key: SecretStr | None = _alias("OPENAI_API_KEY")
    llm_gguf_path: Path | None = None
    llm_parallel: int = Field(4, ge=1, le=64)
    llm_ctx_per_slot: int = Field(4096, ge=512)
    # llama.cpp keeps finished prompts' KV state in RAM for reuse, up to 8 GB by default: under load
    # with distinct prompts its RSS only grows. Capped here (0 turns the prompt cache off)
    llm_cache_ram_mb: int = Field(128, ge=0)
    llm_threads: int = Field(0, ge=0)  # 0: all cores

    # -- embeddings and the index
    embedding_model: str = Field(
        DEFAULT_EMBEDDING_MODEL,
        validation_alias=AliasChoices("EMBEDDING_MODEL", "FLYWHEEL_EMBEDDING_MODEL", "embedding_model"),
    )
    embedding_base_url: str | None = None
    # how all-MiniLM-L6-v2 runs (knowledge/_minilm.py): "auto" = ONNX Runtime for questions and small
    # batches, torch bf16 for ingest batches where the CPU has AMX/AVX512-BF16; or one of them pinned
    embedding_runtime: Literal["auto", "onnx", "torch", "torch-bf16"] = "auto"
    # the grounded policy's sentence vectors: "stored" = computed at ingest and read with the chunk;
    # "question_time" = embedded for every question, not at ingest (the old path, for bench/answers.py
    # and bench/ingest.py's baseline arms)
    unit_vectors: Literal["stored", "question_time"] = "stored"
    # a second, multilingual embedding of every chunk (its own collection) that serves the questions
    # the main model cannot read (Japanese beside English-only MiniLM): "auto" = USE multilingual
    # beside an English-only model (docs/ingest.md); a model name; "" or "off" = none
    companion_embedding_model: str = "auto"
    # Japanese questions over English docs: "auto" searches BM25 and an English-only embedder with the
    # question's English glosses (JMdict dictionary translation, knowledge/_translate.py); "off" = raw
    query_translation: Literal["auto", "off"] = "auto"
    milvus_uri: str | None = _alias("MILVUS_URI")
    milvus_token: SecretStr | None = _alias("MILVUS_TOKEN")
    collection: str = "flywheel_docs"

    # -- tools
    exa_api_key: SecretStr | None = _alias("EXA_API_KEY")
    open_url_allow_hosts: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # -- guardrail and input limits
    max_question_chars: int = Field(4000, ge=16, le=100_000, description="longest question accepted")
    guardrail_threshold: float | None = Field(
        None, ge=0, le=1, description="classifier threshold; None: the calibrated one (per language)"
    )
    guardrail_judge: bool = Field(False, description="ask the judge LLM about borderline questions")
    open_url_max_bytes: int = 2_000_000
    open_url_timeout: float = 10.0

    # -- the LLM gateway (flywheel gateway): its YAML (MLflow AI Gateway schema + extensions)
    gateway_config: Path = Path("gateway/gateway_config.yaml")

    # -- serving (agent server)
    api_key: SecretStr | None = None
    serve_model: str | None = None  # models:/NAME@ALIAS; None: the agent from a local AgentConfig
    # the local AgentConfig's fields that differ from the default, e.g. {"lead_sentence": true}
    # (FLYWHEEL_SERVE_AGENT_CONFIG='{"lead_sentence": true}'); ignored when serve_model is set
    serve_agent_config: dict[str, Any] = Field(default_factory=dict)
    serve_max_concurrency: int = Field(4, ge=1, le=1024)
    serve_max_queue: int = Field(32, ge=0)
    serve_timeout: float = Field(180.0, gt=0)
    serve_max_body_bytes: int = Field(64 * 1024, ge=1024)
    serve_trace: bool = True
    # otlp: spans go to the tracking server's OTLP endpoint (/v1/traces) in batches, a few ms of CPU
    # per trace on both sides; mlflow: MLflow's own exporter, one REST round of calls per trace
    # (~70 ms of tracking-server CPU per trace on SQLite: it falls behind above ~15 requests/s)
    serve_trace_export: Literal["otlp", "mlflow"] = "otlp"
    # trace batches the tracking server cannot take wait on disk (data/spool/) up to this size;
    # past it the oldest are dropped and counted (/metrics, /ready)
    serve_spool_max_mb: int = Field(256, ge=1)
    serve_body_timeout: float = Field(10.0, gt=0, description="seconds to read a request body")
    serve_workers: int = Field(1, ge=1, le=64, description="agent server processes (uvicorn workers)")
    # conversation threads of the agent server: memory (one process), sqlite (data/conversations.db,
    # shared by the workers of one machine), or postgresql://… (shared by replicas)
    conversation_store: str = "sqlite"
    conversation_ttl_s: float = Field(7 * 86400, gt=0)
    conversation_max_threads: int = Field(100_000, ge=100)

    # -- evaluation: an LLM judge (any OpenAI-compatible endpoint or the gateway); unset: local scorers
    judge_base_url: str | None = None
    judge_model: str = "gpt-4o-mini"
    judge_api_key: SecretStr | None = None
    judge_rps: float = Field(5.0, gt=0, description="requests per second to the judge")
    eval_concurrency: int = Field(4, ge=1, le=256)
    # -- dataset generation (flywheel datasets generate): a capable LLM (any OpenAI-compatible
    # endpoint, e.g. the gateway's /v1); unset: the offline generator (structure of the docs)
    generator_base_url: str | None = None
    generator_model: str = "gpt-4o-mini"
    generator_api_key: SecretStr | None = None

    # -- stack behaviour
    start_timeout: float = Field(120.0, gt=0)

    @field_validator("open_url_allow_hosts", mode="before")
    @classmethod
    def _split_hosts(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [h.strip().lower() for h in value.split(",") if h.strip()]
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml_path = Path(os.environ.get("FLYWHEEL_CONFIG", "flywheel.toml"))
        return (
            init_settings,
            env_settings,
            dotenv_settings,
            TomlConfigSettingsSource(settings_cls, toml_file=toml_path),
        )

    _CHILD_KEYS = (
        "host",
        "mlflow_port",
        "agent_port",
        "gateway_port",
        "llm_port",
        "milvus_port",
        "experiment",
        "collection",
        "llm_model",
        "serve_model",
        "serve_agent_config",
        "serve_max_concurrency",
        "serve_max_queue",
        "serve_timeout",
        "serve_max_body_bytes",
        "serve_trace_export",
        "serve_spool_max_mb",
        "serve_body_timeout",
        "mlflow_tracking_uri",
        "llm_base_url",
        "milvus_uri",
        "embedding_model",
        "companion_embedding_model",
        "embedding_runtime",
        "unit_vectors",
        "query_translation",
        "max_question_chars",
        "profile",
        "serve_workers",
        "conversation_store",
        "trace_export",
        "langfuse_host",
    )

    def to_env(self) -> dict[str, str]:
        """The settings in effect here (from code, .env or flywheel.toml) as FLYWHEEL_* variables, for a
        child process. Secrets are not copied: children inherit them from the environment or .env."""
        env = {
            f"FLYWHEEL_{k.upper()}": json.dumps(v) if isinstance(v := getattr(self, k), dict) else str(v)
            for k in self._CHILD_KEYS
            if getattr(self, k) is not None
        }
        env["FLYWHEEL_DATA_DIR"] = str(self.data_path)
        return env

    # -- the environment (profile)
    def model_post_init(self, context: Any) -> None:
        if self.profile and self.experiment == "flywheel":  # an explicit experiment name wins
            self.experiment = f"flywheel-{self.profile}"

    def alias(self, name: str) -> str:
        """A registry alias in this environment: ``champion`` in prd (or with no profile),
        ``tst-champion`` / ``dev-champion`` elsewhere, so environments never move each other's."""
        return name if self.profile in (None, "prd") else f"{self.profile}-{name}"

    def runtime_name(self, name: str) -> str:
        return f"{self.profile}-{name}" if self.profile else name

    # -- derived values
    @cached_property
    def data_path(self) -> Path:
        return self.data_dir.expanduser().resolve()

    @property
    def tracking_uri(self) -> str:
        return self.mlflow_tracking_uri or f"http://{self.host}:{self.mlflow_port}"

    @property
    def embedded_mlflow(self) -> bool:
        return self.mlflow_tracking_uri is None

    @property
    def llm_url(self) -> str:
        """OpenAI-compatible base URL (ending in /v1) of the LLM the agent talks to."""
        return self.llm_base_url or f"http://{self.host}:{self.llm_port}/v1"

    @property
    def embedded_llm(self) -> bool:
        return self.llm_base_url is None

    @property
    def index_uri(self) -> str:
        """MILVUS_URI; else the embedded Milvus service when it runs; else the Milvus Lite file
        (opened in-process, which only one process at a time can do)."""
        if self.milvus_uri:
            return self.milvus_uri
        run = self.data_path / "run" / "milvus.json"
        if run.exists():
            import json
            import socket

            try:
                url = json.loads(run.read_text())["url"]
                with socket.create_connection((self.host, self.milvus_port), timeout=0.5):
                    return url
            except (OSError, ValueError, KeyError):
                pass
        return str(self.data_path / "milvus.db")


def load_settings(**overrides: Any) -> Settings:
    """Settings from all sources (and AWS SSM for the secrets still unset, when configured); a bad
    value or file becomes a ConfigError (no traceback)."""
    try:
        settings = Settings(**overrides)
        if settings.secrets_ssm_prefix or settings.secrets_ssm_paths:
            from flywheel.config._secrets import load_ssm_secrets

            try:
                found = load_ssm_secrets(settings)
            except Exception as exc:  # no credentials, no network, no such parameter
                raise ConfigError(
                    name="secrets_ssm_prefix", detail=f"AWS SSM Parameter Store: {type(exc).__name__}: {exc}"
                ) from exc
            if found:
                settings = settings.model_copy(update=found)
        return settings
    except ValidationError as exc:
        first = exc.errors()[0]
        name = ".".join(str(p) for p in first["loc"]) or "?"
        raise ConfigError(name=name, detail=first["msg"]) from exc
    except SettingsError as exc:
        raise ConfigError(name=str(exc).split('"')[1] if '"' in str(exc) else "?", detail=str(exc)) from exc
    except tomllib.TOMLDecodeError as exc:
        path = os.environ.get("FLYWHEEL_CONFIG", "flywheel.toml")
        raise ConfigError("config_file", path=path, detail=str(exc)) from exc


def secret_values(settings: Settings) -> list[str]:
    """The configured secret values (API keys, tokens), for output redaction; never logged."""
    return [
        value.get_secret_value()
        for _, value in settings
        if isinstance(value, SecretStr) and value.get_secret_value()
    ]
