"""`flywheel serve`: the agent server on port 5005 (foreground, or in the background with --detach)."""

from __future__ import annotations

import os
from typing import Annotated, Any

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
    challenger: Annotated[
        str | None,
        typer.Option(
            help="Online A/B: serve this version beside --model (default models:/docs-qa-agent@champion) "
            "behind one port, a sticky share of users to it; `flywheel monitor ab` decides."
        ),
    ] = None,
    share: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="With --challenger: the share of users sent to it.")
    ] = 0.1,
    experiment: Annotated[
        str, typer.Option(help="With --challenger: the A/B experiment's name (its state in data/ab/).")
    ] = "default",
) -> None:
    """Serve the agent: OpenAI Responses API (invoke + streaming), /health, /ready, chat page at /.

    Every request is an MLflow trace with the request id and the model/prompt versions.
    Set FLYWHEEL_API_KEY to require `Authorization: Bearer <key>`.

    Examples:
      flywheel serve --model models:/docs-qa-agent@champion
      flywheel serve --detach && curl -s localhost:5005/health
      flywheel serve --workers 2   # two processes, one conversation store (data/conversations.db)
      flywheel serve --challenger models:/docs-qa-agent@challenger --share 0.1   # online A/B
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
    if challenger:
        if detach:
            from flywheel.errors import InputError

            raise InputError(
                "option_value", option="--detach", value="with --challenger", expected="in the foreground"
            )
        _serve_ab(
            cfg, model or cfg.serve_model or "models:/docs-qa-agent@champion", challenger, share, experiment
        )
        return
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


def _serve_ab(cfg, champion: str, challenger: str, share: float, name: str) -> None:  # type: ignore[no-untyped-def]
    """Both versions as runtimes (each an agent server of its own), the A/B router on the agent port."""
    import signal
    import time

    import uvicorn

    from flywheel.errors import InputError
    from flywheel.runtime import runtimes_for
    from flywheel.serving._ab import ABExperiment, build_ab_app, load_experiment, save_experiment
    from flywheel.stack import require
    from flywheel.tracking import try_resolve_model

    require(cfg, "tracking")
    versions = {}
    for arm, uri in (("champion", champion), ("challenger", challenger)):
        resolved = try_resolve_model(cfg, uri)
        if resolved is None:
            raise InputError(
                "option_value",
                option=f"--{'model' if arm == 'champion' else arm}",
                value=uri,
                expected="a registered model version or alias",
            )
        versions[arm] = resolved[1]
    exp = load_experiment(cfg, name)
    if exp is None or exp.challenger_version != versions["challenger"] or exp.status != "running":
        exp = ABExperiment(
            name,
            champion,
            challenger,
            share,
            started_ms=int(time.time() * 1000),
            champion_version=versions["champion"],
            challenger_version=versions["challenger"],
        )
    exp.share = share if exp.status == "running" else exp.share
    save_experiment(cfg, exp)

    def on_term(signum: int, frame: Any) -> None:
        raise SystemExit(0)  # uvicorn re-raises SIGTERM after its shutdown: unwind through finally

    signal.signal(signal.SIGTERM, on_term)
    runtimes = runtimes_for(cfg)
    started: list[str] = []
    try:
        urls = deploy_arms(runtimes, exp, started)
        console.print(
            f"A/B router on http://{cfg.host}:{cfg.agent_port}: {share:.0%} of users → {challenger} "
            f"(v{versions['challenger']}), the rest → {champion} (v{versions['champion']}) — "
            "decide with `flywheel monitor ab`; Ctrl+C to stop"
        )
        uvicorn.run(build_ab_app(cfg, urls, name), host=cfg.host, port=cfg.agent_port, log_level="warning")
    finally:
        for rt_name in started:
            runtimes.delete(rt_name)


def deploy_arms(runtimes: Any, exp: Any, started: list[str]) -> dict[str, str]:
    """Both arms of the A/B experiment ``exp`` as runtimes; their names go to ``started`` as they
    start (the caller removes them), their URLs are returned."""
    urls = {}
    for arm, uri in (("champion", exp.champion), ("challenger", exp.challenger)):
        with console.status(f"Starting the {arm} ({uri})…"):
            rt = runtimes.deploy(uri, None, purpose="ab", name=f"ab-{exp.path_name}-{arm}")
        started.append(rt.name)
        urls[arm] = rt.url
    return urls
