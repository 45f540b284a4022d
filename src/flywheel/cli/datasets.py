"""`flywheel datasets push|pull`: move golden datasets between flywheel and Langfuse."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from flywheel.cli._common import console, settings

app = typer.Typer(
    help="Move golden datasets between flywheel (JSON/JSONL/CSV files) and Langfuse.",
    no_args_is_help=True,
)

_DEST = typer.Option(
    "--to",
    "--from",
    help="Where the dataset goes (push) or comes from (pull); only langfuse today.",
    case_sensitive=False,
)


def _check(dest: str) -> None:
    if dest.lower() != "langfuse":
        from flywheel.errors import InputError

        raise InputError("dataset_destination", dest=dest)


@app.command("push")
def push(
    dataset: Annotated[
        Path, typer.Argument(help="Golden dataset file (.json seed format, .jsonl, .csv).")
    ] = Path("datasets/flywheel-docs-golden.json"),
    dest: Annotated[str, _DEST] = "langfuse",
    name: Annotated[str | None, typer.Option(help="Dataset name in Langfuse (default: the file's).")] = None,
) -> None:
    """Create or update a Langfuse dataset from a golden dataset file (pushing twice updates).

    Needs LANGFUSE_PUBLIC_KEY, LANGFUSE_SECRET_KEY and LANGFUSE_HOST (the keys may come from AWS SSM).

    Example: flywheel datasets push datasets/flywheel-docs-golden.json --to langfuse --name strands-ai-mcp-agent-evaluation
    """
    _check(dest)
    from flywheel.evaluation import load_dataset
    from flywheel.evaluation._langfuse import push_dataset

    cfg = settings()
    ds = load_dataset(dataset)
    pushed, n = push_dataset(cfg, ds, name)
    counts = " · ".join(f"{k} {v}" for k, v in ds.counts().items() if v)
    console.print(f"pushed {n} items ({counts}) to Langfuse dataset [bold]{pushed}[/] at {cfg.langfuse_host}")


@app.command("pull")
def pull(
    name: Annotated[str, typer.Argument(help="Dataset name in Langfuse.")],
    dest: Annotated[str, _DEST] = "langfuse",
    out: Annotated[
        Path | None, typer.Option(help="File to write (.json seed format, .jsonl or .csv).")
    ] = None,
) -> None:
    """Write a Langfuse dataset as a golden dataset file, validated item by item.

    Example: flywheel datasets pull strands-ai-mcp-agent-evaluation --from langfuse --out datasets/seed.json
    """
    _check(dest)
    from flywheel.evaluation import save_dataset
    from flywheel.evaluation._langfuse import pull_dataset

    ds = pull_dataset(settings(), name)
    path = save_dataset(ds, out or Path("datasets") / f"{name}.json")
    counts = " · ".join(f"{k} {v}" for k, v in ds.counts().items() if v)
    console.print(f"pulled {len(ds.items)} items ({counts}) into {path} (digest {ds.digest})")
