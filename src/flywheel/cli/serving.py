"""`flywheel serve`: the agent server on port 5005 (foreground, or in the background with --detach)."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from flywheel.cli._common import console, settings

app = typer.Typer()


@app.command()
def serve(
    model: Annotated[
        str | None, typer.Option(help="models:/NAME@ALIAS to serve (default: the local AgentConfig).")
    ] = None,
    port: Annotated[int | None, typer.Option(help="Port (default 5005, FLYWHEEL_AGENT_PORT).")] = None,
    detach: Annotated[
        bool, typer.Option("--detach", "-d", help="Run in the background; stop with `flywheel down agent`.")
    ] = False,
    workers: Annotated[
        int | None,
        typer.Option(help="Server processes; conversations are shared through FLYWHEEL_CONVERSATION_STORE."),
    ] = None,
) -> None:
    """Serve the agent: OpenAI Responses API (invoke + streaming), /health, /ready, chat page at /.

    Every request is an MLflow trace with the request id and the model/prompt versions.
    Set FLYWHEEL_API_KEY to require `Authorization: Bearer <key>`.

    Examples:
      flywheel serve --model models:/docs-qa-agent@champion
      flywheel serve --detach && curl -s localhost:5005/health
      flywheel serve --workers 2   # two processes, one conversation store (data/conversations.db)
    """
    if model:
        os.environ["FLYWHEEL_SERVE_MODEL"] = model
    if port:
        os.environ["FLYWHEEL_AGENT_PORT"] = str(port)
    if workers:
        os.environ["FLYWHEEL_SERVE_WORKERS"] = str(workers)
    cfg = settings()
    if cfg.serve_workers > 1 and cfg.conversation_store == "memory":
        from flywheel.errors import InputError

        raise InputError(
            "option_value",
            option="--workers",
            value=str(cfg.serve_workers),
            expected="1 with FLYWHEEL_CONVERSATION_STORE=memory (each process would keep its own "
            "conversations), or a shared store: sqlite or postgresql://…",
        )
    if (model or cfg.serve_model or "").startswith("models:/"):
        from flywheel.stack import require

        require(cfg, "tracking")  # fail now, not after "agent server on …" and minutes of retries
    if detach:
        from flywheel.stack import Stack

        with console.status("Starting the agent server…"):
            Stack(cfg).up(["agent"], on_event=lambda n, e: None)
        console.print(
            f"agent server on http://{cfg.host}:{cfg.agent_port} (chat page at /) · "
            f"{cfg.serve_model or 'local AgentConfig'} · stop with `flywheel down agent`"
        )
        return
    from flywheel.serving.__main__ import main

    console.print(f"agent server on http://{cfg.host}:{cfg.agent_port} (chat page at /) — Ctrl+C to stop")
    main()
