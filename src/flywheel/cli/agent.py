"""`flywheel ask` and `flywheel mcp`: talk to the agent, or expose doc_search to MCP clients."""

from __future__ import annotations

import json
import logging
from typing import Annotated

import typer

from flywheel.cli._common import console, quiet_mlflow, settings

app = typer.Typer()


@app.command()
def ask(
    question: Annotated[str, typer.Argument(help="Your question about the documentation.")],
    policy: Annotated[
        str | None,
        typer.Option(
            help="grounded (extractive; the default with the embedded LLM), retrieve_first (the default "
            "with LLM_BASE_URL) or react (tool-calling models)."
        ),
    ] = None,
    top_k: Annotated[int, typer.Option("--top-k", help="Excerpts to retrieve.")] = 5,
    thread: Annotated[str | None, typer.Option(help="Conversation id, to continue a thread.")] = None,
    user: Annotated[str | None, typer.Option(help="User id recorded on the trace.")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Ask the QA agent a question; prints the answer and its sources. Every run is an MLflow trace.

    Examples:
      flywheel ask "How do I start the embedded stack?"
      flywheel ask "What does flywheel doctor report?" --json
      flywheel ask "Which port does the agent server use?" --policy retrieve_first
    """
    from flywheel.agent import DocsAgent, default_config
    from flywheel.errors import InputError
    from flywheel.stack import require
    from flywheel.tracking import setup_tracing

    if policy not in (None, "grounded", "retrieve_first", "react"):
        raise InputError("unknown_policy", policy=policy)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    quiet_mlflow()
    cfg = settings()
    overrides: dict[str, object] = {"top_k": top_k, **({"policy": policy} if policy else {})}
    config = default_config(cfg, **overrides)
    require(cfg, "index", *(["llm"] if config.policy != "grounded" else []))
    traced = setup_tracing(cfg)
    agent = DocsAgent(cfg, config)
    with console.status("Thinking…"):
        result = agent.ask(question, thread_id=thread, user_id=user)
    if json_out:
        print(json.dumps(result.as_dict(), ensure_ascii=False, indent=2))
        return
    console.print(result.answer, markup=False)
    if result.sources:
        console.print("\n[bold]Sources[/]")
        for s in result.sources:
            where = " › ".join(x for x in (s["title"], s["headings"]) if x)
            console.print(f"  [{s['n']}] {where} — {s['source']}", markup=False)
    tail = f"thread {result.thread_id} · {result.latency_ms / 1000:.1f} s"
    if traced and result.trace_id:
        tail += f" · trace {result.trace_id} ({cfg.tracking_uri})"
    console.print(f"[dim]{tail}[/]")


@app.command()
def mcp() -> None:
    """Serve doc_search as an MCP server over stdio, for any MCP client (Claude Desktop, IDEs…).

    Example client config:  {"command": "flywheel", "args": ["mcp"]}
    """
    from flywheel.agent._mcp import serve_stdio

    serve_stdio(settings())
