"""`flywheel ask` and `flywheel mcp`: talk to the agent, or expose doc_search to MCP clients."""

from __future__ import annotations

import json
import logging
from typing import Annotated, Any

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
    local: Annotated[
        bool, typer.Option("--local", help="Answer in this process even when an agent server runs.")
    ] = False,
) -> None:
    """Ask the QA agent a question; prints the answer and its sources. Every run is an MLflow trace.

    When the stack's agent server runs (`flywheel up`, `flywheel serve`) with the same policy and
    top-k, the question goes to it: its models are loaded already, so the answer takes milliseconds
    instead of the ~10 s a fresh process spends loading them. `--local` answers in this process.

    Examples:
      flywheel ask "How do I start the embedded stack?"
      flywheel ask "What does flywheel doctor report?" --json
      flywheel ask "Which port does the agent server use?" --policy retrieve_first
    """
    from flywheel.errors import InputError

    if policy not in (None, "grounded", "retrieve_first", "react"):
        raise InputError("unknown_policy", policy=policy)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    cfg = settings()
    result = None if local else _ask_server(cfg, question, policy, top_k, thread, user)
    traced = True
    if result is None:
        from flywheel.agent import DocsAgent, default_config
        from flywheel.stack import require
        from flywheel.tracking import setup_tracing

        quiet_mlflow()
        overrides: dict[str, object] = {"top_k": top_k, **({"policy": policy} if policy else {})}
        config = default_config(cfg, **overrides)
        require(cfg, "index", *(["llm"] if config.policy != "grounded" else []))
        traced = setup_tracing(cfg)
        agent = DocsAgent(cfg, config)
        with console.status("Thinking…"):
            result = agent.ask(question, thread_id=thread, user_id=user).as_dict()
    if json_out:
        print(json.dumps(result, ensure_ascii=False, indent=2))
        return
    console.print(result["answer"], markup=False)
    if result["sources"]:
        console.print("\n[bold]Sources[/]")
        for s in result["sources"]:
            where = " › ".join(x for x in (s["title"], s["headings"]) if x)
            console.print(f"  [{s['n']}] {where} — {s['source']}", markup=False)
    tail = f"thread {result['thread_id']} · {result['latency_ms'] / 1000:.2f} s"
    if result.get("served_by"):
        tail += f" · {result['served_by']}"
    if traced and result.get("trace_id"):
        tail += f" · trace {result['trace_id']} ({cfg.tracking_uri})"
    console.print(f"[dim]{tail}[/]")


def _ask_server(
    cfg: Any, question: str, policy: str | None, top_k: int, thread: str | None, user: str | None
) -> dict[str, Any] | None:
    """The answer of the running agent server when it serves the same policy and top-k, else None
    (not running, another configuration, or it failed: the question is then answered here)."""
    import time

    import httpx

    url = f"http://{cfg.host}:{cfg.agent_port}"
    try:
        info = httpx.get(f"{url}/agent/info", timeout=0.5).json()
        served = info.get("config") or {}
        if (policy and served.get("policy") != policy) or served.get("top_k") != top_k:
            return None
        t0 = time.perf_counter()
        resp = httpx.post(
            f"{url}/responses",
            json={
                "input": [{"role": "user", "content": question}],
                **({"user": user} if user else {}),
                **({"conversation": thread} if thread else {}),
            },
            timeout=cfg.serve_timeout,
        )
    except (httpx.HTTPError, ValueError):
        return None
    if resp.status_code != 200:
        return None
    body = resp.json()
    out = body.get("custom_outputs") or {}
    text = "".join(
        part.get("text", "")
        for item in body.get("output", [])
        for part in item.get("content", []) or []
        if isinstance(part, dict)
    )
    return {
        **out,
        "answer": text,
        "sources": out.get("sources", []),
        "latency_ms": (time.perf_counter() - t0) * 1000,
        "served_by": f"agent server {url} ({info.get('name', '')})",
    }


@app.command()
def mcp() -> None:
    """Serve doc_search as an MCP server over stdio, for any MCP client (Claude Desktop, IDEs…).

    Example client config:  {"command": "flywheel", "args": ["mcp"]}
    """
    from flywheel.agent._mcp import serve_stdio

    serve_stdio(settings())
