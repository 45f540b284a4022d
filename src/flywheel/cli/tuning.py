"""`flywheel tune`: search agent configurations, choose on evidence, register the best as challenger."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Annotated, Any

import typer

from flywheel.cli._common import console, quiet_mlflow, settings

app = typer.Typer()


@app.command()
def tune(
    config: Annotated[Path, typer.Option("--config", "-c", help="Tuning file (JSON).")] = Path(
        "tuning/tuning.json"
    ),
    name: Annotated[
        str | None, typer.Option(help="Study name (default: derived from the file: reruns resume).")
    ] = None,
    strategy: Annotated[str | None, typer.Option(help="Override the file: grid or optuna.")] = None,
    n_trials: Annotated[int | None, typer.Option(help="Override the file's trial budget.")] = None,
    fresh: Annotated[bool, typer.Option("--fresh", help="Forget finished trials and start over.")] = False,
    register: Annotated[
        bool, typer.Option("--register/--no-register", help="Register the chosen configuration.")
    ] = True,
    storage: Annotated[
        str | None,
        typer.Option(
            help="Share the study through this database (postgresql://…; default FLYWHEEL_TUNE_STORAGE): "
            "this process coordinates, `flywheel tune --worker` processes on any machine join."
        ),
    ] = None,
    worker: Annotated[
        bool,
        typer.Option(
            "--worker", help="Join the shared study --name in --storage (its tuning file comes from there)."
        ),
    ] = False,
) -> None:
    """Hyperparameter search: every trial is deployed as a temporary runtime, evaluated on the
    golden dataset (a child MLflow run of the tune's run) and deleted. The report has the Pareto
    front (quality ↑, latency ↓, cost ↓) and the choice — the fastest front trial within
    `tolerance` of the best quality — which is registered as a new model version with alias
    `challenger` (then: flywheel gate). Interrupted? Run it again: finished trials are kept.

    The file reads the seed's hpo_config.json shape (models × system_prompts) plus any AgentConfig
    field under "search" (policy, top_k, temperature, tools, min_relevance…); see docs/tune.md.

    Examples:
      flywheel tune --config tuning/tuning.json
      flywheel tune --config tuning/tuning.json --strategy optuna --n-trials 6
      flywheel tune --config my-tuning.json --no-register --fresh

    On several machines (one Optuna study in PostgreSQL; trials claimed once; a killed worker's
    trial is retried by another; the last worker to finish writes the report and registers):
      flywheel tune --config tuning/tuning.json --storage postgresql://u:p@db/optuna --name sweep1
      flywheel tune --worker --storage postgresql://u:p@db/optuna --name sweep1   # × N, anywhere
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from flywheel.stack import require
    from flywheel.tuning import load_spec, run_tune

    cfg = settings()
    url = storage or (cfg.tune_storage.get_secret_value() if cfg.tune_storage else None)
    if worker:
        if not url or not name:
            from flywheel.errors import InputError

            raise InputError(
                "option_value", option="--worker", value="(without --storage or --name)", expected="both"
            )
        _tune_worker(cfg, url, name, register)
        return
    spec = load_spec(config)
    if strategy:
        if strategy not in ("grid", "optuna"):
            from flywheel.errors import InputError

            raise InputError("option_value", option="--strategy", value=strategy, expected="grid or optuna")
        spec = spec.model_copy(update={"strategy": strategy})
    if n_trials:
        spec = spec.model_copy(update={"n_trials": n_trials})
    require(cfg, "tracking")
    require(cfg, "index")
    quiet_mlflow()
    signal.signal(signal.SIGTERM, _on_term)
    grid_n = len(spec.grid())  # already capped by n_trials
    total = grid_n if spec.strategy == "grid" else (spec.n_trials or min(grid_n, 10))
    with Progress(
        TextColumn("[bold]tune[/]"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[msg]}"),
        console=console,
        transient=True,
    ) as progress:
        task = progress.add_task("tune", total=total, msg="")

        def on_trial(done: int, total: int, trial: Any) -> None:
            progress.update(task, completed=done, total=total)
            q = (
                "error"
                if trial.error
                else f"quality {trial.quality:.3f}"
                if trial.quality is not None
                else "—"
            )
            progress.console.print(f"  {done}/{total}  {trial.label()}  → {q}")

        result = run_tune(
            cfg,
            spec,
            name=name,
            fresh=fresh,
            register=register,
            on_event=lambda msg: progress.update(task, msg=msg[:70]),
            on_trial=on_trial,
            storage=url,
        )
    _print_result(result)


def _on_term(signum: int, frame: Any) -> None:
    raise SystemExit(2)  # unwinds through every trial's finally: its runtime is removed


def _tune_worker(cfg: Any, url: str, name: str, register: bool) -> None:
    """One worker of a shared study: plain lines (it runs in a Job's log, not a terminal)."""
    from flywheel.stack import require
    from flywheel.tuning import run_tune_worker

    require(cfg, "tracking")
    require(cfg, "index")
    quiet_mlflow()
    signal.signal(signal.SIGTERM, _on_term)

    def on_trial(done: int, total: int, trial: Any) -> None:
        q = "error" if trial.error else f"quality {trial.quality:.3f}" if trial.quality is not None else "—"
        console.print(f"  {done}/{total}  {trial.label()}  → {q}", highlight=False)

    result = run_tune_worker(
        cfg,
        url,
        name,
        register=register,
        on_event=lambda msg: console.print(f"[dim]{msg}[/]", highlight=False),
        on_trial=on_trial,
    )
    _print_result(result)


def _print_result(result: Any) -> None:
    from rich.table import Table

    if not result.finalized:
        console.print(
            f"worker done: ran {result.ran} trial(s) of {result.study}; the last worker to finish "
            "writes the report and registers the choice"
        )
        return

    table = Table(title=f"{result.study}: {len(result.trials)} trials", title_justify="left")
    for col in ("", "trial", "quality", "p50", "feasible"):
        table.add_column(col)
    best = result.best.key if result.best else None
    for t in sorted(result.trials, key=lambda t: -(t.quality or -1)):
        mark = "★" if t.key == best else ("◆" if t.key in result.front else "")
        table.add_row(
            mark,
            t.label(),
            "—" if t.quality is None else f"{t.quality:.3f}",
            "—" if t.latency_p50_ms is None else f"{t.latency_p50_ms / 1000:.1f} s",
            "error" if t.error else ("yes" if t.feasible else "no: " + "; ".join(t.violations)),
        )
    console.print(table)
    console.print("★ chosen · ◆ Pareto front (quality ↑, latency ↓, cost ↓)")
    for t in result.failed:
        console.print(f"[red]trial failed[/] {t.label()}: {t.error} (it runs again when you rerun the tune)")
    if result.leaked_removed:
        console.print(f"removed {len(result.leaked_removed)} runtime(s) an earlier gate or tune leaked")
    if result.registered:
        r = result.registered
        console.print(
            f"registered {r['model_uri']} as @{r['alias']} · next: flywheel gate --candidate models:/{r['name']}@{r['alias']}"
        )
    elif result.best is None:
        console.print("[yellow]no feasible trial: nothing registered[/]")
    console.print(f"report: {result.folder}/tune.md · pareto.png · trials.csv ({result.seconds:.0f} s)")
