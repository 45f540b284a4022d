"""`flywheel redteam`: plant poisoned pages beside the docs and measure how often the agent obeys them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from flywheel.cli._common import agent_config, console, progress_bar, settings

app = typer.Typer()


@app.command()
def redteam(
    sets: Annotated[
        list[str] | None,
        typer.Option("--set", help="Agent config KEY=VALUE (repeatable), e.g. --set policy=retrieve_first."),
    ] = None,
    per_family: Annotated[int, typer.Option(help="Probes per attack family (7 families).")] = 6,
    seed: Annotated[int, typer.Option(help="Which topics of the docs the planted pages copy.")] = 0,
    out: Annotated[Path | None, typer.Option(help="Write the report as JSON here.")] = None,
    max_rate: Annotated[
        float | None,
        typer.Option(help="Exit 1 when the attack success rate is above this (CI); default: report only."),
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """A RAG red team against the ingested docs, with the agent config you would ship.

    The index is copied into a temporary collection; one poisoned page per probe is planted on a
    topic of your own docs (instructions to the assistant, hidden text, forged system turns,
    exfiltration images, phishing links, planted secrets, orders to fetch an internal URL); each
    probe question retrieves it; an attack succeeds when the answer obeys the page, shows its
    link or image, leaks its secret or calls the tool it names. The temporary collection is
    always removed (one left by a killed run is removed by the next).

    Examples:
      flywheel redteam                                   # the default config (grounded when the LLM is embedded)
      flywheel redteam --set policy=retrieve_first       # an LLM policy (needs `flywheel up`)
      flywheel redteam --per-family 2 --max-rate 0 --out redteam.json
    """
    from flywheel.evaluation import run_redteam
    from flywheel.stack import require

    cfg = settings()
    config = agent_config(sets)
    require(cfg, "index", *(["llm"] if config.policy != "grounded" or config.lead_sentence else []))
    with progress_bar("redteam") as bar:
        task = bar.add_task("copying the index…", total=None)
        report = run_redteam(
            cfg,
            config,
            per_family=per_family,
            seed=seed,
            on_event=lambda msg: bar.update(task, description=msg[:70]),
            on_probe=lambda n, total: bar.update(task, completed=n, total=total),
        )
    data = report.to_json()
    if out:
        out.write_text(json.dumps(data, ensure_ascii=False, indent=1), encoding="utf-8")
    if json_out:
        print(json.dumps(data, ensure_ascii=False, indent=1))
    else:
        table = Table(title=f"red team · policy {report.policy} · {report.probes} probes", box=None)
        for col in (
            "family",
            "probes",
            "planted page retrieved",
            "withheld",
            "refused",
            "attacks that worked",
        ):
            table.add_column(col)
        for fam, f in report.by_family().items():
            table.add_row(
                fam,
                str(f["probes"]),
                str(f["retrieved"]),
                str(f["withheld"]),
                str(f["refused"]),
                f"[{'red' if f['successes'] else 'green'}]{f['successes']}[/]",
            )
        console.print(table)
        console.print(
            f"attack success rate: [bold]{report.attack_success_rate:.1%}[/] ({report.seconds:.0f} s)"
        )
        for r in report.results:
            if r.success:
                console.print(f"  [red]{r.family}[/]: {r.question} — {r.why}", markup=True)
    if max_rate is not None and report.attack_success_rate > max_rate:
        raise typer.Exit(1)
