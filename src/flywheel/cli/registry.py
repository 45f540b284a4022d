"""`flywheel log-model` and `flywheel prompts …`: agent versions and system prompts in MLflow."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from flywheel.cli._common import agent_config, console, quiet_mlflow, settings
from flywheel.stack import require

app = typer.Typer()
prompts_app = typer.Typer(
    help="System prompts in the MLflow prompt registry (push, list, alias).", no_args_is_help=True
)


@app.command("log-model")
def log_model(
    name: Annotated[str, typer.Option(help="Registered model name.")] = "docs-qa-agent",
    alias: Annotated[
        str, typer.Option(help="Alias to point at the new version ('' for none).")
    ] = "challenger",
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="AgentConfig override KEY=VALUE (repeatable).")
    ] = None,
    verify_question: Annotated[
        str, typer.Option("--question", help="Question asked when verifying.")
    ] = "How do I start the embedded stack?",
    skip_verify: Annotated[
        bool, typer.Option("--no-verify", help="Do not load and test the new version.")
    ] = False,
) -> None:
    """Log the agent as an MLflow model (from code), register a version, set an alias, verify it.

    Verification loads models:/NAME@ALIAS in a fresh Python process and answers a question.

    Examples:
      flywheel log-model
      flywheel log-model --alias champion --set top_k=8
    """
    from flywheel.registry import log_agent, verify

    quiet_mlflow()
    cfg = settings()
    require(cfg, "tracking")
    config = agent_config(set_)
    with console.status("Logging and registering the agent…"):
        logged = log_agent(cfg, config, name=name, alias=alias or None)
    table = Table(box=None, show_header=False, pad_edge=False)
    table.add_row("registered model", f"{logged.name} version {logged.version}")
    table.add_row("aliases", ", ".join(logged.aliases) or "-")
    table.add_row("model URI", logged.model_uri + (f"  (models:/{name}@{alias})" if alias else ""))
    table.add_row("logged model id", logged.model_id)
    table.add_row("run", f"{cfg.tracking_uri}/#/experiments/ · run {logged.run_id}")
    console.print(table)
    if skip_verify:
        return
    uri = f"models:/{name}@{alias}" if alias else logged.model_uri
    with console.status(f"Verifying {uri} in a fresh process…"):
        report = verify(cfg, uri, verify_question)
    console.print(f"[green]verified[/] {uri}: trace {report['trace_id']} · prompt {report['prompt']}")
    console.print(f"  Q: {verify_question}", markup=False)
    console.print(f"  A: {report['answer'][:300]}", markup=False)


@app.command("alias")
def set_model_alias(
    alias: Annotated[str, typer.Argument(help="Alias, e.g. champion.")],
    version: Annotated[int, typer.Argument(help="Version number to point it at.")],
    name: Annotated[str, typer.Option(help="Registered model name.")] = "docs-qa-agent",
) -> None:
    """Move a registered model alias (e.g. promote a version to champion).

    Example: flywheel alias champion 3
    """
    from flywheel.registry import set_alias

    cfg = settings()
    require(cfg, "tracking")
    set_alias(cfg, name, alias, version)
    console.print(f"models:/{name}@{alias} → version {version}")


@prompts_app.command("push")
def prompts_push(
    name: Annotated[str, typer.Option(help="Base prompt name (Japanese gets -ja).")] = "docs-qa-system",
    alias: Annotated[str, typer.Option(help="Alias to set on the pushed versions.")] = "production",
) -> None:
    """Register the built-in system prompts (English, Japanese) and alias them.

    A new version is created only when the text differs from the latest one.

    Example: flywheel prompts push --alias production
    """
    from flywheel.registry import push_default_prompts

    quiet_mlflow()
    cfg = settings()
    require(cfg, "tracking")
    for prompt, version in push_default_prompts(cfg, name, alias):
        console.print(f"prompts:/{prompt}@{alias} → version {version}")


@prompts_app.command("list")
def prompts_list() -> None:
    """List registered prompts with their latest version and aliases.

    Example: flywheel prompts list
    """
    import mlflow
    from mlflow import MlflowClient

    quiet_mlflow()
    cfg = settings()
    require(cfg, "tracking")
    from flywheel import tracking

    tracking.use(cfg)
    table = Table(box=None, pad_edge=False)
    for col in ("prompt", "latest", "aliases"):
        table.add_column(col)
    client = MlflowClient(cfg.tracking_uri)
    for p in mlflow.genai.search_prompts():
        latest = mlflow.genai.load_prompt(f"prompts:/{p.name}@latest")
        aliases = getattr(client.get_prompt(p.name), "aliases", None) or {}
        table.add_row(
            p.name, str(latest.version), ", ".join(f"{a}→{v}" for a, v in dict(aliases).items()) or "-"
        )
    console.print(table)


@prompts_app.command("alias")
def prompts_alias(
    name: Annotated[str, typer.Argument(help="Prompt name.")],
    alias: Annotated[str, typer.Argument(help="Alias, e.g. production.")],
    version: Annotated[int, typer.Argument(help="Version.")],
) -> None:
    """Point a prompt alias at a version.

    Example: flywheel prompts alias docs-qa-system production 2
    """
    import mlflow

    cfg = settings()
    require(cfg, "tracking")
    from flywheel import tracking

    tracking.use(cfg)
    mlflow.genai.set_prompt_alias(name, alias=alias, version=version)
    console.print(f"prompts:/{name}@{alias} → version {version}")
