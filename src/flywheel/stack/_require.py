"""Fail fast: one reachability check (a few seconds at most) before a command that needs a service,
instead of a client library's minute of retries. The error names the service, its URL and the fix."""

from __future__ import annotations

import socket
import time
from urllib.parse import urlsplit

import httpx

from flywheel.config import Settings
from flywheel.errors import ServiceUnavailableError
from flywheel.tracking import tracking_reachable

__all__ = ["NEEDS", "reachable", "require"]

TIMEOUT = 3.0

# purpose of each service, in both languages (the error explains why the command needs it)
NEEDS = {
    "tracking": (
        {"en": "The MLflow tracking server", "ja": "MLflow トラッキングサーバー"},
        {
            "en": "This command reads or writes the registry, prompts or traces, which live in the tracking server.",
            "ja": "このコマンドはトラッキングサーバーにあるレジストリ、プロンプト、トレースを読み書きします。",
        },
        "MLFLOW_TRACKING_URI",
    ),
    "llm": (
        {"en": "The LLM server", "ja": "LLM サーバー"},
        {
            "en": "This answer policy asks the LLM to write the answer.",
            "ja": "この回答ポリシーでは LLM が回答を書きます。",
        },
        "LLM_BASE_URL",
    ),
    "index": (
        {"en": "Milvus (the vector index)", "ja": "Milvus(ベクトルインデックス)"},
        {
            "en": "Questions are answered from the documentation indexed in Milvus.",
            "ja": "質問には Milvus に取り込んだドキュメントから答えます。",
        },
        "MILVUS_URI",
    ),
}


def reachable(url: str, timeout: float = TIMEOUT) -> bool:
    """Any HTTP answer (even 401/404) means the server is up; for endpoints whose health route is
    unknown, e.g. an OpenAI-compatible LLM's ``/models``."""
    try:
        httpx.get(url, timeout=timeout)
        return True
    except httpx.HTTPError:
        return False


def _tcp_ok(url: str, timeout: float) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 80), timeout=timeout):
            return True
    except OSError:
        return False


def _target(settings: Settings, need: str) -> tuple[str, bool | None]:
    """(URL to show, reachable?) — None when there is nothing to check (a local store)."""
    if need == "tracking":
        uri = settings.tracking_uri
        return uri, (tracking_reachable(settings) if uri.startswith("http") else None)
    if need == "llm":
        return settings.llm_url, reachable(settings.llm_url.rstrip("/") + "/models")
    uri = settings.index_uri
    return uri, (_tcp_ok(uri, TIMEOUT) if uri.startswith(("http://", "https://", "tcp://")) else None)


def require(settings: Settings, *needs: str) -> None:
    """Raise ServiceUnavailableError for the first needed service that does not answer in time."""
    for need in needs:
        t0 = time.monotonic()
        url, ok = _target(settings, need)
        if ok is False:
            service, purpose, env_key = NEEDS[need]
            raise ServiceUnavailableError(
                "service_needed",
                service=service,
                url=url,
                purpose=purpose,
                env_key=env_key,
                seconds=f"{time.monotonic() - t0:.1f}",
            )
