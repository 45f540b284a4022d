"""`python -m flywheel.serving`: run the agent server in the foreground (what `flywheel serve` starts)."""

from __future__ import annotations

import atexit
import logging
import os
from typing import Any

import uvicorn

from flywheel.config import install_redaction, load_settings, secret_values
from flywheel.registry import load_agent
from flywheel.serving._app import build_app


def _quiet() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    # one line per handled failure: the server logs the cause itself (request id, code, message);
    # these libraries would add a traceback or a line per retry on top
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("pymilvus").setLevel(logging.CRITICAL)
    logging.getLogger("opentelemetry.exporter.otlp").setLevel(logging.CRITICAL)  # the spool takes over
    # /feedback must answer within about a second: no minute of MLflow-client retries behind it
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")


def _flush_traces() -> None:
    from flywheel.tracking import flush_traces

    try:
        flush_traces(10)
    except Exception as exc:  # the tracking server is gone too: the spool keeps what it can
        logging.getLogger("flywheel.serving").warning("traces not flushed at exit: %s", exc)


def create_app() -> Any:
    """The app of one server process (each uvicorn worker calls this): settings from the
    environment, the agent, and the shared conversation store."""
    from flywheel.agent import make_store

    _quiet()
    settings = load_settings()
    install_redaction(secret_values(settings))
    loaded = load_agent(settings, settings.serve_model)
    # a graceful stop (SIGTERM: a rollout, `flywheel down`, a gate's clean-up) ships the traces of
    # the last answers first: the batch exporter would otherwise drop up to a second of them
    atexit.register(_flush_traces)
    loaded.agent.threads = make_store(
        settings.conversation_store,
        settings.data_path,
        settings.conversation_max_threads,
        settings.conversation_ttl_s,
    )
    return build_app(settings, loaded)


def main() -> None:
    settings = load_settings()
    if settings.serve_workers > 1:
        # each worker loads the agent (memory × N); conversations continue across them through the
        # shared store (FLYWHEEL_CONVERSATION_STORE: sqlite by default)
        uvicorn.run(
            "flywheel.serving.__main__:create_app",
            factory=True,
            workers=settings.serve_workers,
            host=settings.host,
            port=settings.agent_port,
            log_level="warning",
            access_log=False,
        )
        return
    uvicorn.run(
        create_app(), host=settings.host, port=settings.agent_port, log_level="warning", access_log=False
    )


if __name__ == "__main__":
    main()
