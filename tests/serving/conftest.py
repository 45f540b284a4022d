"""Run a FastAPI app on a real socket in a background thread (the OpenAI SDK needs real HTTP)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import uvicorn

from tests.conftest import free_port


@contextmanager
def serve(app) -> Iterator[tuple[str, uvicorn.Server]]:  # type: ignore[no-untyped-def]
    """The app on a free port in a background thread, until /health answers; (url, server) —
    ``server.should_exit = True`` stops it early (a provider going away mid-test)."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.05)
    try:
        yield url, server
    finally:
        server.should_exit = True
        thread.join(10)


@contextmanager
def running(app) -> Iterator[str]:  # type: ignore[no-untyped-def]
    with serve(app) as (url, _):
        yield url
