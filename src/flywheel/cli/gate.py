"""`flywheel gate` (candidate vs champion, promote or not, always clean up) and `flywheel runtime`."""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from flywheel.cli._common import console, quiet_mlflow, settings

app = typer.Typer()
runtime_app = typer.Typer(
    no_args_is_help=True,
    help="Agent runtimes: local child processes (default), Kubernetes, Docker or Bedrock AgentCore "
    "(--backend, or FLYWHEEL_RUNTIME_BACKEND).",
)
Backend = Annotated[
    str | None,
    typer.Option("--backend", help="local, kubernetes, docker or agentcore (default: the settings')."),
]


@app.command()
def gate(
    candidate: Annotated[
        str, typer.Option(help="models:/NAME/VERSION, models:/NAME@ALIAS, or 'config' with --set.")
    ] = "models:/docs-qa-agent@challenger",
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="AgentConfig KEY=VALUE for --candidate config.")
    ] = None,
    champion: Annotated[
        str | None,
        typer.Option(
            help="What to beat (default: the champion of the candidate's model; for --candidate config, models:/docs-qa-agent@champion)."
        ),
    ] = None,
    dataset: Annotated[Path, typer.Option(help="Golden dataset.")] = Path(
        "datasets/flywheel-docs-golden.json"
    ),
    thresholds: Annotated[Path | None, typer.Option(help="Thresholds JSON.")] = Path("gate/thresholds.json"),
    split: Annotated[
        str,
        typer.Option(help="all, or test: the half of the dataset `flywheel tune` (split: train) never saw."),
    ] = "all",
    promote: Annotated[
        bool, typer.Option("--promote/--no-promote", help="On pass, move champion to the candidate.")
    ] = False,
    out: Annotated[
        Path | None, typer.Option(help="Report folder (gate.md, junit.xml, decision.json).")
    ] = None,
    repeats: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Ask every item K times: generation noise told apart from item differences, "
            "an item's score its mean, adversarial items refused in all K (pass^k). "
            "Default: the thresholds file's (1).",
        ),
    ] = None,
    regressions: Annotated[
        str | None,
        typer.Option(
            help="The regressions set from `flywheel monitor curate`, asked beside the dataset: the "
            "candidate no worse than the champion on it, every corrected item answered. Default: "
            "DATA_DIR/datasets/regressions.json when it exists; 'none' to leave it out.",
        ),
    ] = None,
    detect: Annotated[
        float | None,
        typer.Option(
            help="A regression size the report says how many items would catch at 80 % power "
            "(default: the thresholds file's detect_delta, 0.1).",
        ),
    ] = None,
) -> None:
    """The quality gate: deploy the candidate and the champion as temporary runtimes, evaluate both on
    the same items, compare paired with bootstrap 95 % CIs, apply the thresholds file (floors,
    maximum regression, every adversarial item refused), report, promote on pass (--promote), and
    always remove the runtimes. Exit code 0 pass, 1 fail, 2 error.

    Examples:
      flywheel gate --candidate models:/docs-qa-agent@challenger --promote
      flywheel gate --candidate models:/docs-qa-agent@challenger --split test   # after flywheel tune
      flywheel gate --candidate config --set guardrails=false --no-promote   # must fail
      flywheel gate --candidate config --set top_k=3 --repeats 3 --detect 0.05   # noise and power
      flywheel gate --regressions datasets/regressions.json   # production failures (monitor curate)
    """
    from flywheel.cli._common import agent_config
    from flywheel.errors import FlywheelError, InputError
    from flywheel.evaluation import load_dataset
    from flywheel.gate import load_thresholds, run_gate
    from flywheel.stack import require

    cfg = settings()
    th = load_thresholds(thresholds)
    if repeats is not None:
        th.repeats = repeats
    if detect is not None:
        th.detect_delta = detect
    ds = load_dataset(dataset)
    if split not in ("all", "test"):
        raise InputError("option_value", option="--split", value=split, expected="all or test")
    if split == "test":
        ds = ds.split("test")
    reg_path = (
        None
        if regressions == "none"
        else Path(regressions)
        if regressions
        else cfg.data_path / "datasets" / "regressions.json"
    )
    if regressions and regressions != "none" and not Path(regressions).exists():
        raise InputError(
            "option_value", option="--regressions", value=regressions, expected="an existing file"
        )
    reg_ds = load_dataset(reg_path) if reg_path is not None and reg_path.exists() else None
    config = None
    if candidate == "config":
        config = agent_config(set_).model_dump(exclude_defaults=True)
    elif not candidate.startswith("models:/"):
        raise InputError(
            "option_value", option="--candidate", value=candidate, expected="models:/… or config"
        )
    require(cfg, "tracking")
    require(cfg, "index")
    quiet_mlflow()

    def on_term(signum: int, frame: Any) -> None:
        raise SystemExit(2)  # unwinds through run_gate's finally: the runtimes are removed

    signal.signal(signal.SIGTERM, on_term)
    try:
        with console.status("Running the gate…") as status:
            decision = run_gate(
                cfg,
                ds,
                candidate,
                config,
                champion,
                th,
                promote,
                out,
                on_event=lambda msg: status.update(msg),
                regressions=reg_ds,
            )
    except FlywheelError:
        raise
    except Exception as exc:  # an error is not a failed gate: exit code 2
        console.print(f"[red]gate error:[/] {type(exc).__name__}: {exc}")
        sys.exit(2)
    from rich.table import Table

    table = Table(title=f"quality gate: {'[green]PASS[/]' if decision.passed else '[red]FAIL[/]'}")
    for col in ("check", "result", "detail"):
        table.add_column(col)
    for c in decision.checks:
        mark = "[red]FAIL[/]" if not c["passed"] else "[yellow]warn[/]" if c.get("warning") else "pass"
        table.add_row(c["name"], mark, c["detail"])
    console.print(table)
    if decision.power:
        sizing = Table(title=f"what this dataset can see ({th.power:.0%} power, Holm over the metrics)")
        for col in ("metric", "smallest regression caught", f"items for a drop of {th.detect_delta}"):
            sizing.add_column(col)
        for metric, pw in decision.power.items():
            mde = pw["min_detectable"]
            sizing.add_row(
                metric,
                "—" if mde is None else f"{mde:.3f} (n={pw['n']})",
                "—" if pw.get("items_needed") is None else str(pw["items_needed"]),
            )
        console.print(sizing)
    leaked = decision.identity.get("leaked_runtimes_removed") or []
    if leaked:
        console.print(f"removed {len(leaked)} runtime(s) an earlier gate or tune leaked: {', '.join(leaked)}")
    console.print(
        f"reports: {decision.report_dir}/gate.md · junit.xml · decision.json"
        + (" · promoted to champion" if decision.promoted else "")
    )
    sys.exit(0 if decision.passed else 1)


@runtime_app.command("list")
def runtime_list(json_out: Annotated[bool, typer.Option("--json")] = False, backend: Backend = None) -> None:
    """Runtimes of the backend (name, purpose, URL, alive): for local, the ones this data folder started.

    Examples:
      flywheel runtime list
      flywheel runtime list --backend kubernetes --json
    """
    from flywheel.runtime import runtimes_for

    rts = runtimes_for(settings(), backend).all()
    rows = [
        {"name": r.name, "purpose": r.purpose, "url": r.url, "model": r.model_uri, "alive": r.alive()}
        for r in rts
    ]
    if json_out:
        console.print_json(json.dumps(rows))
        return
    for r in rows:
        console.print(
            f"{r['name']}  {r['purpose']}  {r['url']}  {r['model'] or 'local config'}  alive={r['alive']}"
        )
    if not rows:
        console.print("no runtimes")


@runtime_app.command("gc")
def runtime_gc(backend: Backend = None) -> None:
    """Remove the runtimes a gate or tune left behind (e.g. after kill -9): local ones whose owner
    process is gone, remote ones past their expiry (FLYWHEEL_RUNTIME_TTL_S).

    Examples:
      flywheel runtime gc
      flywheel runtime gc --backend kubernetes
    """
    from flywheel.runtime import runtimes_for

    removed = runtimes_for(settings(), backend).gc()
    console.print(
        f"removed {len(removed)} leaked runtime(s)" + (": " + ", ".join(removed) if removed else "")
    )


@runtime_app.command("delete")
def runtime_delete(
    name: Annotated[str, typer.Argument(help="Runtime name (flywheel runtime list).")],
    backend: Backend = None,
) -> None:
    """Stop and forget one runtime.

    Example:
      flywheel runtime delete gate-1a2b3c4d-candidate
    """
    from flywheel.runtime import runtimes_for

    stopped = runtimes_for(settings(), backend).delete(name)
    console.print(f"{name}: {'stopped' if stopped else 'was not running'}")
