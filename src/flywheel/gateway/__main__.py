"""`python -m flywheel.gateway --config FILE --port N`: the gateway process (`flywheel gateway start`)."""

from __future__ import annotations

import argparse
import logging


def main() -> None:
    import uvicorn

    from flywheel.config import install_redaction, load_settings, secret_values
    from flywheel.gateway import build_gateway

    parser = argparse.ArgumentParser(prog="python -m flywheel.gateway")
    parser.add_argument("--config", default="gateway/gateway_config.yaml")
    parser.add_argument("--host", default=None)
    parser.add_argument("--port", type=int, default=None)
    args = parser.parse_args()
    settings = load_settings()
    install_redaction(secret_values(settings))
    logging.getLogger("aiohttp").setLevel(logging.WARNING)
    storage = settings.gateway_limits_storage
    app = build_gateway(args.config, storage.get_secret_value() if storage else None)
    uvicorn.run(
        app,
        host=args.host or settings.host,
        port=args.port or settings.gateway_port,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        log_level="warning",
        access_log=False,
        backlog=2048,
        # per-request work a gateway does not need: it logs no client addresses (X-Forwarded-*),
        # and clients do not need Server/Date headers from it
        proxy_headers=False,
        server_header=False,
        date_header=False,
    )


if __name__ == "__main__":
    main()
