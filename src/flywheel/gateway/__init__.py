"""The LLM gateway (port 5010): providers, A/B traffic split, fallback, limits, keys."""

from flywheel.gateway._app import Gateway
from flywheel.gateway._config import GatewayConfig, load_gateway_config

__all__ = ["Gateway", "GatewayConfig", "build_gateway", "load_gateway_config"]


def build_gateway(path: str, limits_storage: str | None = None) -> Gateway:
    """Load and validate the YAML at ``path``, resolve its key references, return the ASGI app;
    ``limits_storage`` (FLYWHEEL_GATEWAY_LIMITS_STORAGE) overrides the YAML's shared limit store."""
    from pathlib import Path

    return Gateway(load_gateway_config(Path(path)), Path(path), limits_storage)
