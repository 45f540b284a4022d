"""The MLflow session: which tracking server this process talks to, a client for it, and whether it
answers. Every stage goes through here instead of calling ``mlflow.set_tracking_uri`` itself."""

from __future__ import annotations

import threading
from functools import lru_cache
from typing import Any

import httpx

from flywheel.config import Settings

__all__ = ["client", "get_trace", "search_traces", "tracking_reachable", "use"]

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


def search_traces(
    settings: Settings,
    experiment_id: str,
    filter_string: str = "",
    limit: int = 5000,
    order_by: list[str] | None = None,
    include_spans: bool = True,
) -> list[Any]:
    """Up to ``limit`` traces of an experiment, page by page (the client caps one page at 500)."""
    c = client(settings)
    out: list[Any] = []
    token = None
    while len(out) < limit:
        page = c.search_traces(
            locations=[experiment_id],
            filter_string=filter_string or None,
            order_by=order_by or ["timestamp_ms ASC"],
            max_results=min(500, limit - len(out)),
            page_token=token,
            include_spans=include_spans,
        )
        out += list(page)
        token = getattr(page, "token", None)
        if not token or not page:
            break
    return out


def get_trace(settings: Settings, trace_id: str) -> Any | None:
    """One trace with its spans and assessments, or None when the server does not know the id
    (a server that cannot be reached raises)."""
    try:
        return client(settings).get_trace(trace_id)
    except Exception as exc:
        if getattr(exc, "error_code", "") in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            return None
        raise
