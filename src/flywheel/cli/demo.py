"""`flywheel demo`: the whole loop on embedded defaults, as labelled steps."""

from __future__ import annotations

import time

from rich.panel import Panel

from flywheel.cli._common import console, settings
from flywheel.stack import Stack


def _step(n: int, title: str) -> None:
    console.rule(f"[bold]Step {n}[/] · {title}", align="left")


def demo() -> None:
    """Run the flywheel end to end on embedded defaults and print where to look.

    Steps: start the stack, ask the local LLM. (Later steps — ingest, agent, register, serve,
    evaluate, gate, simulate, monitor — are added as they land.)

    Example: flywheel demo
    """
    cfg = settings()
    stack = Stack(cfg)
    t0 = time.monotonic()

    _step(1, "start the embedded stack")
    with console.status("Starting MLflow and the local LLM…"):
        stack.up(on_event=lambda name, what: console.print(f"  {name:<8} {what}"))
    console.print(f"  all healthy after {time.monotonic() - t0:.1f} s")

    _step(2, "ask the local LLM through the OpenAI client")
    from openai import OpenAI

    client = OpenAI(
        base_url=cfg.llm_url, api_key=cfg.openai_api_key.get_secret_value() if cfg.openai_api_key else "none"
    )
    question = "In one sentence, what is a documentation QA agent?"
    reply = client.chat.completions.create(
        model=cfg.llm_model, messages=[{"role": "user", "content": question}], max_tokens=80, temperature=0.2
    )
    console.print(f"  [bold]Q:[/] {question}")
    console.print(f"  [bold]A:[/] {(reply.choices[0].message.content or '').strip()}")

    _summary(stack)


def _summary(stack: Stack) -> None:
    lines = [f"{s.name:<8} {s.url:<28} {s.state}" for s in stack.status()]
    lines += [
        "",
        f"MLflow UI: {stack.settings.tracking_uri}",
        "Stop everything: flywheel down   (or: make clean)",
    ]
    console.print(Panel("\n".join(lines), title="flywheel is running", expand=False))
