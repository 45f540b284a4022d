"""`python -m flywheel.serving`: run the agent server in the foreground (what `flywheel serve` starts)."""

from __future__ import annotations

import logging
import os

import uvicorn

from flywheel.config import install_redaction, load_settings, secret_values
from flywheel.registry import load_agent
from flywheel.serving._app import build_app


def main() -> None:
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
    settings = load_settings()
    install_redaction(secret_values(settings))
    loaded = load_agent(settings, settings.serve_model)
    app = build_app(settings, loaded)
    uvicorn.run(app, host=settings.host, port=settings.agent_port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
