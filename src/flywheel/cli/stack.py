"""`flywheel up | down | status | logs`: the embedded stack."""

from __future__ import annotations

import json
import time
from typing import Annotated

import typer
from rich.table import Table

from flywheel.cli._common import console, settings
from flywheel.stack import Stack

app = typer.Typer()

_STATE_STYLE = {"healthy": "green", "starting": "yellow", "stopped": "dim", "external": "cyan"}


@app.command()
def up(
    services: Annotated[list[str] | None, typer.Argument(help="Only these services (default: all).")] = None,
) -> None:
    """Start the embedded stack and wait until every service is healthy.

    Idempotent: services already running are left alone. Starts the MLflow tracking server
    (SQLite, port 5000) and the local LLM (SmolLM2 via llama.cpp, port 8080). A service whose
    address you configured yourself (MLFLOW_TRACKING_URI, LLM_BASE_URL) is not started.

    Example: flywheel up
    """
    stack = Stack(settings())
    t0 = time.monotonic()
    with console.status("Starting the embedded stack…") as status:

        def event(name: str, what: str) -> None:
            console.print(f"  {name:<8} {what}")
            status.update(f"Waiting for services to become healthy… ({time.monotonic() - t0:.0f} s)")

        rows = stack.up(services, on_event=event)
    console.print(f"[green]All healthy[/] in {time.monotonic() - t0:.1f} s.")
    _print_status(rows)
    console.print("Stop with [bold]flywheel down[/]. Logs: [bold]flywheel logs NAME[/].")


@app.command()
def down(
    services: Annotated[list[str] | None, typer.Argument(help="Only these services (default: all).")] = None,
) -> None:
    """Stop exactly what `flywheel up` started (children included), by PID.

    Example: flywheel down
    """
    stopped = Stack(settings()).down(services)
    console.print(f"Stopped: {', '.join(stopped)}" if stopped else "Nothing was running.")


@app.command()
def status(
    json_out: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Show each service: state, URL, PID, memory.

    Example: flywheel status --json
    """
    rows = Stack(settings()).status()
    if json_out:
        console.print_json(json.dumps([r.__dict__ for r in rows]))
        return
    _print_status(rows)


@app.command()
def logs(
    service: Annotated[str, typer.Argument(help="mlflow, llm, …")],
    lines: Annotated[int, typer.Option("-n", "--lines", help="How many lines.")] = 50,
    follow: Annotated[bool, typer.Option("-f", "--follow", help="Keep printing new lines.")] = False,
) -> None:
    """Print the end of a service's log (in the data folder's logs/).

    Example: flywheel logs mlflow -n 100
    """
    stack = Stack(settings())
    stack.specs([service])  # validates the name
    console.print(stack.tail(service, lines), markup=False)
    if follow:
        path = stack.log_file(service)
        with open(path, encoding="utf-8", errors="replace") as fh:
            fh.seek(0, 2)
            try:
                while True:
                    line = fh.readline()
                    if line:
                        console.print(line.rstrip("\n"), markup=False)
                    else:
                        time.sleep(0.3)
            except KeyboardInterrupt:
                pass


def _print_status(rows: list) -> None:
    table = Table(box=None, pad_edge=False)
    for col in ("service", "state", "url", "pid", "rss", "what"):
        table.add_column(col)
    for r in rows:
        style = _STATE_STYLE.get(r.state, "red")
        rss = f"{r.rss_mb:.0f} MB" if r.rss_mb else "-"
        table.add_row(r.name, f"[{style}]{r.state}[/]", r.url, str(r.pid or "-"), rss, r.detail)
    console.print(table)
