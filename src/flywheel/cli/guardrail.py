"""`flywheel guardrail`: how the guardrail treats a team's own documentation vocabulary."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from flywheel.cli._common import console, settings
from flywheel.errors import FlywheelError

_DOC_FORMATS = frozenset({"md", "mdx", "html"})
app = typer.Typer(help="Check the guardrail against your own documentation.", no_args_is_help=True)


@app.command()
def check(
    corpus: Annotated[
        list[Path] | None,
        typer.Option("--corpus", help="Folder of .md/.mdx/.html docs to mine questions from (repeatable)."),
    ] = None,
    examples: Annotated[int, typer.Option(help="How many refused questions to show.")] = 15,
    json_out: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """False refusals on questions mined from YOUR documentation.

    Every sentence or heading of the docs that uses the guardrail's trigger vocabulary (system
    prompt, API key, override, ignore, delete, silently, export, developer mode, red team, PII …)
    becomes an ordinary question a user would ask; each is screened as the agent would, under the
    full input screen (policies that call an LLM) and the extractive one (grounded). The report
    lists the refusal rate and the rules that fired. Without --corpus it shows the report the last
    `flywheel ingest` saved for the documents it read.

    Examples:
      flywheel guardrail check                       # the docs of the last ingest
      flywheel guardrail check --corpus my-docs/
      flywheel guardrail check --corpus docs/ --json
    """
    import json

    from flywheel.safety import GuardrailCheck, check_questions, mine_questions

    cfg = settings()
    if corpus:
        from flywheel.knowledge import read_documents

        docs = [(d.source, d.text) for d in read_documents([str(c) for c in corpus], formats=_DOC_FORMATS)]
        report = check_questions(
            mine_questions(docs), corpus=", ".join(map(str, corpus)), threshold=cfg.guardrail_threshold
        )
    else:
        loaded = GuardrailCheck.load(cfg.data_path)
        if loaded is None:
            raise FlywheelError("guardrail_check_missing")
        report = loaded
    if json_out:
        print(json.dumps(report.to_json(), ensure_ascii=False, indent=1))
        return
    table = Table(box=None, pad_edge=False)
    for col in ("profile", "questions", "refused", "rate", "rules that fired"):
        table.add_column(col)
    for profile in ("full", "extractive"):
        rules = ", ".join(f"{r} ×{n}" for r, n in report.rules.get(profile, {}).items()) or "–"
        table.add_row(
            profile,
            str(report.questions),
            str(report.refused.get(profile, 0)),
            f"{report.rate(profile):.1%}",
            rules,
        )
    console.print(
        f"questions mined from {report.documents} documents of {report.corpus or 'the last ingest'}"
    )
    console.print(table)
    for ex in report.examples[:examples]:
        console.print(f"  [yellow]refused[/] ({ex['rule']}): {ex['question']}  [dim]{ex['source']}[/]")
    if report.rate("full") > 0.03:
        console.print(
            "[yellow]More than 3 % of ordinary questions about these docs are refused.[/] Add such "
            "questions as benign rows to datasets/safety/ and retrain (docs/security.md), or register "
            "a narrower rule with flywheel.safety.register_rule."
        )
