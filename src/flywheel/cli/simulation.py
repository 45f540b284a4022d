"""`flywheel simulate`: scripted users against an agent server, bounded; a load and safety report."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from flywheel.cli._common import console, progress_bar, settings

app = typer.Typer()


@app.command()
def simulate(
    config: Annotated[
        Path,
        typer.Option(help="Users to play: JSON list of {name, prompt[, harmful]} or {prompts, personas}."),
    ] = Path("simulation/load_config.json"),
    url: Annotated[str | None, typer.Option(help="Agent server (default: the local one, port 5005).")] = None,
    requests: Annotated[int | None, typer.Option(help="Stop after this many requests.")] = 50,
    duration: Annotated[float | None, typer.Option(help="Stop after this many seconds.")] = None,
    concurrency: Annotated[int, typer.Option(help="Closed loop: users asking at once.")] = 4,
    rate: Annotated[
        float | None, typer.Option(help="Open loop: new users per second (Poisson); overrides --concurrency.")
    ] = None,
    stream: Annotated[
        bool, typer.Option("--stream", help="Stream answers; measures time to first token.")
    ] = False,
    tag: Annotated[
        list[str] | None, typer.Option(help="KEY=VALUE put on every trace (repeatable), e.g. arm=b.")
    ] = None,
    out: Annotated[Path | None, typer.Option(help="Write the full report (every request) as JSON.")] = None,
    seed: Annotated[int, typer.Option(help="Random seed for the choice of users and arrivals.")] = 0,
) -> None:
    """Play users against the agent server and report latency, time to first token, errors by type
    and the refusal rate on harmful prompts. Every request is tagged `client.simulated=true` and
    `client.sim_run=<id>` on its trace. Bounded: --requests and/or --duration.

    Examples:
      flywheel simulate --requests 50 --concurrency 4
      flywheel simulate --rate 2 --duration 60 --stream --out sim.json
      flywheel simulate --config my_users.json --url http://127.0.0.1:5005 --tag arm=b
    For distributed capacity tests: locust -f simulation/locustfile.py (same users, same client code).
    """
    from flywheel.errors import InputError
    from flywheel.simulation import SimOptions, load_sim_config
    from flywheel.simulation import simulate as run_simulation

    cfg = settings()
    prompts = load_sim_config(config)
    tags = {}
    for item in tag or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise InputError("option_syntax", option="--tag", value=item)
        tags[key.strip()] = value.strip()
    opts = SimOptions(
        url=url or f"http://{cfg.host}:{cfg.agent_port}",
        requests=requests,
        duration_s=duration,
        concurrency=concurrency,
        rate=rate,
        stream=stream,
        api_key=cfg.api_key.get_secret_value() if cfg.api_key else None,
        seed=seed,
        tags=tags,
    )
    from flywheel.stack import reachable

    if not reachable(opts.url.rstrip("/") + "/health"):
        from flywheel.errors import ServiceUnavailableError

        raise ServiceUnavailableError("agent_server_unreachable", url=opts.url)
    with progress_bar("simulating") as bar:
        task = bar.add_task("", total=requests)
        report = run_simulation(
            opts, prompts, on_result=lambda o: bar.update(task, advance=1, description=f"{o.name} {o.status}")
        )
    s = report.summary()
    _print(s, report.run_id)
    if out:
        out.write_text(json.dumps(report.to_json(), indent=2, ensure_ascii=False), encoding="utf-8")
        console.print(f"full report: {out}")


def _print(s: dict, run_id: str) -> None:
    from rich.table import Table

    def sec(v: float | None) -> str:
        return "–" if v is None else f"{v:.2f} s"

    table = Table(title=f"simulation {run_id}", show_header=False)
    table.add_row("requests", f"{s['requests']} ({s['throughput_rps']} req/s over {s['wall_s']} s)")
    table.add_row("success rate", f"{s['success_rate']:.1%}")
    table.add_row(
        "latency p50 / p95 / p99",
        " / ".join(sec(s[k]) for k in ("latency_p50_s", "latency_p95_s", "latency_p99_s")),
    )
    table.add_row(
        "time to first token p50 / p95", " / ".join(sec(s[k]) for k in ("ttft_p50_s", "ttft_p95_s"))
    )
    table.add_row("errors", ", ".join(f"{k}: {v}" for k, v in s["errors"].items()) or "none")
    rate = s["harmful_refusal_rate"]
    table.add_row(
        "harmful prompts refused", "–" if rate is None else f"{rate:.0%} of {s['harmful_answered']}"
    )
    if s["harmful_not_refused"]:
        table.add_row("[red]harmful, NOT refused[/]", ", ".join(s["harmful_not_refused"]))
    if s["refused_benign"]:
        table.add_row("[yellow]benign, refused[/]", ", ".join(s["refused_benign"]))
    console.print(table)
    console.print(f"traces are tagged client.sim_run={run_id}")
