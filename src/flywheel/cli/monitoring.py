"""`flywheel monitor`: online evaluation of production traces (sampled, resumable, never silent)."""

from __future__ import annotations

import json
import time
from typing import Annotated

import typer

from flywheel.cli._common import console, quiet_mlflow, settings

app = typer.Typer(no_args_is_help=True, help="Online evaluation of production traces.")


def _monitor(
    experiment: str | None,
    sample_rate: float = 1.0,
    filters: list[str] | None = None,
    exclude_simulated: bool = False,
):  # type: ignore[no-untyped-def]
    from flywheel.errors import InputError
    from flywheel.evaluation import ScorerContext
    from flywheel.evaluation._judge import make_judge
    from flywheel.knowledge import get_embedder
    from flywheel.monitoring import MonitorOptions, OnlineMonitor
    from flywheel.stack import require

    cfg = settings()
    require(cfg, "tracking")
    quiet_mlflow()
    if not 0 < sample_rate <= 1:
        raise InputError("set_value", key="--sample-rate", value=sample_rate, expected="a number in (0, 1]")
    pairs = {}
    for f in filters or []:
        key, sep, value = f.partition("=")
        if not sep:
            raise InputError("set_syntax", value=f)
        pairs[key.strip()] = value.strip()
    opts = MonitorOptions(sample_rate=sample_rate, filters=pairs, exclude_simulated=exclude_simulated)
    ctx = ScorerContext(embed=get_embedder(cfg).embed_documents, judge=make_judge(cfg))
    return OnlineMonitor(cfg, opts, ctx, experiment)


@app.command("run")
def run(
    sample_rate: Annotated[
        float, typer.Option(help="Share of new traces to score (0-1], by trace-id hash.")
    ] = 1.0,
    filter_: Annotated[
        list[str] | None,
        typer.Option("--filter", help="TAG=VALUE a trace must carry (repeatable), e.g. client.arm=b."),
    ] = None,
    exclude_simulated: Annotated[bool, typer.Option(help="Skip traces of `flywheel simulate`.")] = False,
    experiment: Annotated[
        str | None, typer.Option(help="Experiment to follow (default: FLYWHEEL_EXPERIMENT).")
    ] = None,
    duration: Annotated[
        float | None, typer.Option(help="Stop after this many seconds (default: until Ctrl+C).")
    ] = None,
    max_traces: Annotated[int | None, typer.Option(help="Stop after scoring this many traces.")] = None,
    once: Annotated[bool, typer.Option("--once", help="Score what has arrived, then stop.")] = False,
    poll: Annotated[float, typer.Option(help="Seconds between polls.")] = 2.0,
) -> None:
    """Follow new traces, sample them, score them with reference-free scorers (safety, groundedness,
    answer relevance, latency, response quality) and record `online/<scorer>` assessments on them.
    Resumes where it stopped (a cursor in data/monitor/).

    Examples:
      flywheel monitor run --once
      flywheel monitor run --sample-rate 0.2 --filter client.arm=b --duration 600
      flywheel monitor status
    """
    mon = _monitor(experiment, sample_rate, filter_, exclude_simulated)
    until = time.monotonic() + duration if duration else None
    if once:
        n = mon.poll_once()
        console.print(f"scored {n} trace(s)")
    else:
        console.print(f"following experiment {mon.experiment_id} (Ctrl+C to stop) …")

        def report(n: int) -> None:
            if n:
                console.print(f"scored {n} trace(s)")

        try:
            mon.run(
                poll_s=poll,
                until=until,
                max_traces=max_traces,
                on_poll=report,
            )
        except KeyboardInterrupt:
            console.print("stopped; the cursor is saved, `flywheel monitor run` resumes")
    _print_status(mon.status())


@app.command("status")
def status(
    experiment: Annotated[str | None, typer.Option(help="Experiment (default: FLYWHEEL_EXPERIMENT).")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Counters of the online evaluation: traces seen, scored, sampled out; failures per scorer; lag
    from trace to assessment; mean online scores.

    Example:
      flywheel monitor status --json
    """
    s = _monitor(experiment).status()
    if json_out:
        console.print_json(json.dumps(s))
    else:
        _print_status(s)


def _print_status(s: dict) -> None:
    from rich.table import Table

    t = Table(title=f"online evaluation · experiment {s['experiment_id']}", show_header=False)
    t.add_row("traces seen / scored", f"{s['seen']} / {s['scored']}")
    t.add_row("sampled out / filtered out", f"{s['sampled_out']} / {s['filtered_out']}")
    lag = "–" if s["lag_p50_s"] is None else f"{s['lag_p50_s']:.1f} s / {s['lag_p95_s']:.1f} s"
    t.add_row("lag trace → assessment p50 / p95", lag)
    fails = ", ".join(f"{k}: {v}" for k, v in s["failures"].items())
    t.add_row("failures", f"[red]{fails}[/]" if fails else "none")
    for name, mean in sorted(s["means"].items()):
        t.add_row(f"mean online/{name}", f"{mean:.3f}")
    console.print(t)
