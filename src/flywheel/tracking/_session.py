"""The MLflow session: which tracking server this process talks to, a client for it, and whether it
answers. Every stage goes through here instead of calling ``mlflow.set_tracking_uri`` itself."""

from __future__ import annotations

import threading
from functools import lru_cache
from typing import Any

import httpx

from flywheel.config import Settings

__all__ = ["client", "tracking_reachable", "use"]

_lock = threading.Lock()


def use(settings: Settings, experiment: str | None = None) -> None:
    """Point this process's MLflow fluent API at ``settings.tracking_uri`` (and, when given, an
    experiment, created if missing). Setting the same URI again is free."""
    import mlflow

    with _lock:
        if mlflow.get_tracking_uri() != settings.tracking_uri:
            mlflow.set_tracking_uri(settings.tracking_uri)
    if experiment:
        mlflow.set_experiment(experiment)


@lru_cache(maxsize=8)
def _client(uri: str) -> Any:
    from mlflow import MlflowClient

    return MlflowClient(uri)


def client(settings: Settings) -> Any:
    """An ``MlflowClient`` for the settings' tracking server (one per URI, shared)."""
    return _client(settings.tracking_uri)


def tracking_reachable(settings: Settings, timeout: float = 2.0) -> bool:
    """The tracking server (traces, registry, prompts) answers; a non-HTTP store always does."""
    uri = settings.tracking_uri
    if not uri.startswith("http"):
        return True
    try:
        return httpx.get(uri.rstrip("/") + "/health", timeout=timeout).status_code == 200
    except httpx.HTTPError:
        return False
