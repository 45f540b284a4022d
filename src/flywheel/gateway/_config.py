"""The gateway's YAML: MLflow AI Gateway's schema, plus flywheel's extensions in the same file.

MLflow's part (so ``mlflow gateway start --config-path gateway/gateway_config.yaml`` reads the same
file; MLflow ignores keys it does not know)::

    endpoints:
      - name: local-chat
        endpoint_type: llm/v1/chat            # or llm/v1/embeddings
        model:
          provider: openai                    # openai | anthropic | bedrock
          name: SmolLM2-135M-Instruct
          config:
            openai_api_key: $OPENAI_API_KEY   # a $VARIABLE, never the key itself
            openai_api_base: http://127.0.0.1:8080/v1
        limit: {calls: 600, renewal_period: minute}
    routes:
      - name: chat
        task_type: llm/v1/chat
        destinations:
          - {name: local-chat, traffic_percentage: 70}
          - {name: local-chat-b, traffic_percentage: 30}
        routing_strategy: TRAFFIC_SPLIT

flywheel's extensions: per endpoint ``timeout_s``, ``retries``, ``max_connections``, ``params``; per route
``fallbacks`` (ordered endpoint names), ``sticky`` (``session`` | ``user`` | ``none``) and ``limit``;
and a top-level ``gateway`` block: ``api_keys`` (client keys, ``$VARIABLE`` references),
``cooldown_s``, ``max_inflight``, ``retry_backoff_s``, ``default_route``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from flywheel.errors import ConfigError

__all__ = ["EndpointConfig", "GatewayConfig", "Limit", "RouteConfig", "load_gateway_config"]

_NAME = re.compile(r"^[A-Za-z0-9_-]+$")
_PERIODS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}


class Limit(BaseModel):
    model_config = ConfigDict(extra="forbid")
    calls: int = Field(gt=0)
    renewal_period: str = "minute"
    key: str | None = None  # MLflow's field; unused here (limits are per route / endpoint)

    @field_validator("renewal_period")
    @classmethod
    def _period(cls, v: str) -> str:
        if v not in _PERIODS:
            raise ValueError(f"renewal_period must be one of {', '.join(_PERIODS)}")
        return v

    @property
    def per_second(self) -> float:
        return self.calls / _PERIODS[self.renewal_period]


class ModelConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    provider: Literal["openai", "anthropic", "bedrock", "amazon-bedrock"]
    name: str
    config: dict[str, Any] = Field(default_factory=dict)


class EndpointConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    endpoint_type: Literal["llm/v1/chat", "llm/v1/embeddings", "llm/v1/completions"] = "llm/v1/chat"
    model: ModelConfig
    limit: Limit | None = None
    timeout_s: float = Field(60.0, gt=0)
    retries: int = Field(0, ge=0, le=5)
    max_connections: int = Field(64, ge=1, le=4096)
    params: dict[str, Any] = Field(
        default_factory=dict, description="request fields this endpoint always sets (e.g. temperature)"
    )

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _NAME.match(v):
            raise ValueError("letters, digits, '-' and '_' only")
        return v


class Destination(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    traffic_percentage: int = Field(ge=0, le=100)


class RouteConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    task_type: Literal["llm/v1/chat", "llm/v1/embeddings", "llm/v1/completions"] = "llm/v1/chat"
    destinations: list[Destination] = Field(min_length=1)
    routing_strategy: Literal["TRAFFIC_SPLIT"] = "TRAFFIC_SPLIT"
    fallbacks: list[str] = Field(default_factory=list)
    sticky: Literal["session", "user", "none"] = "session"
    limit: Limit | None = None

    @model_validator(mode="after")
    def _percentages(self) -> RouteConfig:
        total = sum(d.traffic_percentage for d in self.destinations)
        if total != 100:
            raise ValueError(
                f"the destinations' traffic_percentage must add up to 100 (they add up to {total})"
            )
        return self


class GatewaySection(BaseModel):
    model_config = ConfigDict(extra="forbid")
    api_keys: list[str] = Field(default_factory=list)
    cooldown_s: float = Field(30.0, ge=0)
    max_inflight: int = Field(512, ge=1)
    retry_backoff_s: float = Field(0.2, ge=0)
    default_route: str | None = None  # for a model name nothing else matches (e.g. the agent's LLM_MODEL)
    # where the rate limits are counted: unset, each replica keeps its own token buckets in memory;
    # a `limits` storage URI (redis://host:6379, rediss://…, redis+sentinel://…) is shared by every
    # replica, so N replicas together admit the configured rate (FLYWHEEL_GATEWAY_LIMITS_STORAGE
    # overrides it, e.g. to keep a password out of the file)
    limits_storage: str | None = None


class GatewayConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    endpoints: list[EndpointConfig] = Field(min_length=1)
    routes: list[RouteConfig] = Field(default_factory=list)
    gateway: GatewaySection = Field(default_factory=GatewaySection)

    @model_validator(mode="after")
    def _references(self) -> GatewayConfig:
        names = [e.name for e in self.endpoints]
        dup = {n for n in names if names.count(n) > 1} | ({r.name for r in self.routes} & set(names))
        if dup:
            raise ValueError(f"names must be unique across endpoints and routes: {', '.join(sorted(dup))}")
        if self.gateway.default_route and self.gateway.default_route not in {r.name for r in self.routes}:
            raise ValueError(
                f"gateway.default_route names route {self.gateway.default_route!r}, which is not defined"
            )
        for r in self.routes:
            for d in [x.name for x in r.destinations] + r.fallbacks:
                if d not in names:
                    raise ValueError(f"route {r.name!r} names endpoint {d!r}, which is not defined")
        return self

    def endpoint(self, name: str) -> EndpointConfig:
        return next(e for e in self.endpoints if e.name == name)


def _resolve(value: Any, where: str, path: Path) -> Any:
    """``$VARIABLE`` → its value from the environment; a literal secret is refused."""
    if isinstance(value, str) and value.startswith("$"):
        var = value[1:].strip("{}")
        if var not in os.environ:
            raise ConfigError(
                "gateway_config",
                path=str(path),
                field=where,
                detail=f"the environment variable {var} is not set",
                expected=f"export {var}=… (or put it in .env, or read it from SSM)",
            )
        return os.environ[var]
    return value


_SECRET_KEYS = ("api_key", "secret_access_key", "session_token")


def secrets_of(cfg: GatewayConfig, path: Path) -> dict[str, dict[str, Any]]:
    """Each endpoint's provider config with ``$VARIABLE`` references resolved. A key given literally
    is an error: keys live in the environment or the secret store, never in the file (the literal
    ``none`` means "no key", for a local server)."""
    out = {}
    for e in cfg.endpoints:
        resolved = {}
        for key, value in e.model.config.items():
            where = f"endpoints[{e.name}].model.config.{key}"
            secret = any(s in key for s in _SECRET_KEYS) and isinstance(value, str)
            if secret and not value.startswith("$") and value.lower() != "none":
                raise ConfigError(
                    "gateway_config",
                    path=str(path),
                    field=where,
                    detail="a key is written in the file",
                    expected="a reference such as $OPENAI_API_KEY (the key itself in the environment)",
                )
            resolved[key] = _resolve(value, where, path)
        out[e.name] = resolved
    return out


def resolve_client_keys(cfg: GatewayConfig, path: Path) -> list[str]:
    keys = []
    for i, ref in enumerate(cfg.gateway.api_keys):
        if not ref.startswith("$"):
            raise ConfigError(
                "gateway_config",
                path=str(path),
                field=f"gateway.api_keys[{i}]",
                detail="a key is written in the file",
                expected="a reference such as $FLYWHEEL_API_KEY",
            )
        keys.append(str(_resolve(ref, f"gateway.api_keys[{i}]", path)))
    return keys


def load_gateway_config(path: Path) -> GatewayConfig:
    """Read and validate; every mistake names the file, the key and what is expected."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(
            "gateway_config",
            path=str(path),
            field="(file)",
            detail="it does not exist",
            expected="a YAML file",
        ) from exc
    except yaml.YAMLError as exc:
        raise ConfigError(
            "gateway_config",
            path=str(path),
            field="(file)",
            detail=f"not valid YAML: {exc}",
            expected="valid YAML",
        ) from exc
    if not isinstance(raw, dict):
        raise ConfigError(
            "gateway_config",
            path=str(path),
            field="(top level)",
            detail="not a mapping",
            expected="endpoints: […]",
        )
    try:
        return GatewayConfig.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = err["loc"]
        field = ""
        node: Any = raw
        for part in loc:  # endpoints.0.model → endpoints[local-chat].model
            if isinstance(part, int) and isinstance(node, list) and part < len(node):
                node = node[part]
                name = node.get("name") if isinstance(node, dict) else None
                field += f"[{name}]" if name else f"[{part}]"
            else:
                node = node.get(part) if isinstance(node, dict) else None
                field += ("." if field else "") + str(part)
        expected = {
            "missing": "this key is required",
            "extra_forbidden": "no such key here (a typo?)",
            "literal_error": err.get("ctx", {}).get("expected", "one of the allowed values"),
        }.get(err["type"], "see docs/gateway.md")
        raise ConfigError(
            "gateway_config",
            path=str(path),
            field=field or "(top level)",
            detail=err["msg"],
            expected=expected,
        ) from exc
