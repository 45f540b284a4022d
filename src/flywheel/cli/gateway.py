"""`flywheel gateway start | check | stats`: the LLM gateway on :5010."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Annotated

import typer

from flywheel.cli._common import console, settings

app = typer.Typer(
    no_args_is_help=True,
    help="The LLM gateway on :5010: OpenAI-compatible, A/B traffic split, fallback, rate limits, keys.",
)
Config = Annotated[
    Path | None, typer.Option("--config", "-c", help="Gateway YAML (default: FLYWHEEL_GATEWAY_CONFIG).")
]


@app.command()
def start(
    config: Config = None,
    port: Annotated[int | None, typer.Option(help="Port (default 5010, FLYWHEEL_GATEWAY_PORT).")] = None,
    detach: Annotated[
        bool, typer.Option("--detach", help="Run in the background as a stack service (stop: flywheel down).")
    ] = False,
) -> None:
    """Serve the gateway: point any OpenAI client (or the agent: LLM_BASE_URL=http://127.0.0.1:5010/v1)
    at it. The YAML follows MLflow AI Gateway's schema (endpoints, routes with traffic_percentage)
    plus flywheel's extensions (fallbacks, retries, limits, timeouts, client keys); see docs/gateway.md.

    Examples:
      flywheel gateway start
      flywheel gateway start --config gateway/gateway_ab_test.yaml --detach
    """
    from flywheel.gateway import build_gateway

    cfg = settings()
    updates: dict[str, object] = {}
    if config:
        updates["gateway_config"] = config
    if port:
        updates["gateway_port"] = port
    cfg = cfg.model_copy(update=updates)
    build_gateway(str(cfg.gateway_config))  # a mistake in the file is reported here, before anything starts
    if detach:
        from flywheel.stack import Stack

        Stack(cfg).up(["gateway"])
        console.print(
            f"gateway on http://{cfg.host}:{cfg.gateway_port}/v1 · {cfg.gateway_config} · stop: flywheel down gateway"
        )
        return
    import subprocess
    import sys

    console.print(
        f"gateway on http://{cfg.host}:{cfg.gateway_port}/v1 · {cfg.gateway_config} · Ctrl-C stops it"
    )
    cmd = [
        sys.executable,
        "-m",
        "flywheel.gateway",
        "--config",
        str(cfg.gateway_config),
        "--port",
        str(cfg.gateway_port),
    ]
    with contextlib.suppress(KeyboardInterrupt):
        subprocess.run(cmd, check=False)


@app.command()
def check(config: Config = None) -> None:
    """Validate a gateway YAML (schema, references, key variables) without starting anything.

    Example:
      flywheel gateway check --config gateway/gateway_ab_test.yaml
    """
    from flywheel.gateway import build_gateway

    path = config or settings().gateway_config
    gw = build_gateway(str(path))
    console.print(
        f"{path}: {len(gw.endpoints)} endpoint(s) ({', '.join(gw.endpoints)}), "
        f"{len(gw.routes)} route(s) ({', '.join(gw.routes) or '-'}) · ok"
    )


@app.command()
def stats(
    url: Annotated[str | None, typer.Option(help="Gateway URL (default: this machine's :5010).")] = None,
    json_out: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Per-arm requests, errors, fallbacks and latency (p50/p95), and per-endpoint health.

    Example:
      flywheel gateway stats
    """
    import httpx
    from rich.table import Table

    from flywheel.errors import ServiceUnavailableError

    cfg = settings()
    base = (url or f"http://{cfg.host}:{cfg.gateway_port}").rstrip("/")
    headers = {"Authorization": f"Bearer {cfg.api_key.get_secret_value()}"} if cfg.api_key else {}
    try:
        data = httpx.get(base + "/stats", headers=headers, timeout=5).json()
    except httpx.HTTPError as exc:
        raise ServiceUnavailableError(
            service="the gateway",
            url=base,
            detail=str(exc),
            env_key="--url or FLYWHEEL_GATEWAY_PORT; start it with `flywheel gateway start`",
        ) from exc
    if json_out:
        console.print_json(data=data)
        return
    table = Table(title=f"gateway {base} · up {data['uptime_s']:.0f} s", title_justify="left")
    for col in ("route", "arm", "requests", "errors", "fallbacks", "p50 ms", "p95 ms"):
        table.add_column(col)
    for a in data["arms"]:
        table.add_row(
            a["route"],
            a["arm"],
            str(a["requests"]),
            str(a["errors"]),
            str(a["fallbacks"]),
            str(a["latency_p50_ms"] or "–"),
            str(a["latency_p95_ms"] or "–"),
        )
    console.print(table)
    for e in data["endpoints"]:
        cool = f" · cooling down {e['cooling_down_s']} s" if e["cooling_down_s"] else ""
        console.print(f"  {e['endpoint']}: {e['requests']} calls, {e['errors']} failed{cool}")
