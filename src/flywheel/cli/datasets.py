"""`flywheel datasets generate|status|refresh|push|pull`: golden datasets from the docs, kept in step
with them, and moved between flywheel and Langfuse."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from flywheel.cli._common import console, progress_bar, quiet_mlflow, settings

app = typer.Typer(
    help="Golden datasets: generate them from your docs, keep them in step with the docs (status, "
    "refresh), move them to and from Langfuse.",
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


# ---------------------------------------------------------------- generated, doc-change-aware datasets


@app.command("generate")
def generate_cmd(
    sources: Annotated[
        list[str] | None,
        typer.Argument(
            help="Documentation folders or URLs (ingested first, incrementally); none: the whole index."
        ),
    ] = None,
    out: Annotated[
        Path, typer.Option(help="Dataset file to write (.json seed format, .jsonl, .csv).")
    ] = Path("datasets/generated.json"),
    n: Annotated[int, typer.Option("--n", min=4, max=5000, help="Size budget: items in all.")] = 40,
    lang: Annotated[
        str | None, typer.Option(help="Question language: default the corpus's; ja: Japanese questions.")
    ] = None,
    generator: Annotated[
        str, typer.Option(help="auto (LLM when FLYWHEEL_GENERATOR_BASE_URL is set) | offline | llm.")
    ] = "auto",
    name: Annotated[str | None, typer.Option(help="Dataset name (default: the file's).")] = None,
    show: Annotated[int, typer.Option(help="Items to print as examples.")] = 5,
    register: Annotated[bool, typer.Option(help="Register the version in MLflow when it answers.")] = True,
    json_out: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Generate a golden dataset from your documentation: every kind of item (happy path, edge case,
    out of scope, adversarial), each answerable one tied to the chunks it came from by content digest.

    Filters (each reported): round trip (the question retrieves its own chunk in the top 5), support
    (every fact is found in its chunk), near-duplicates, balance across documents, the --n budget.
    Offline by default (built from headings, definitions, defaults, steps); with
    FLYWHEEL_GENERATOR_BASE_URL/_MODEL an LLM writes the questions and the same filters apply.

    Examples:
      flywheel datasets generate docs/ --out datasets/generated.json
      flywheel datasets generate ../my-docs --n 80 --lang ja --out datasets/my-docs-ja.json
      FLYWHEEL_GENERATOR_BASE_URL=http://127.0.0.1:5010/v1 flywheel datasets generate docs/ --generator llm
    """
    from flywheel.datagen import GenerateOptions, generate
    from flywheel.datagen._sync import register_version
    from flywheel.evaluation import save_dataset
    from flywheel.stack import require

    quiet_mlflow()
    cfg = settings()
    require(cfg, "index")
    if lang not in (None, "en", "ja"):
        from flywheel.errors import InputError

        raise InputError("datagen_lang", lang=lang)
    with progress_bar("generate") as bar:
        task = bar.add_task("reading the documentation", total=n)

        def progress(stage: str, done: int, total: int) -> None:
            bar.update(task, completed=done, total=total, description=stage)

        ds, report = generate(
            cfg,
            GenerateOptions(
                sources=list(sources or []), n=n, lang=lang, generator=generator, name=name or out.stem
            ),
            progress=progress,
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    save_dataset(ds, out)
    if out.suffix.lower() == ".csv":
        console.print(
            "[yellow]note:[/] a CSV file keeps no chunk digests: write .json or .jsonl to use status/refresh"
        )
    version = register_version(cfg, ds) if register else None
    if json_out:
        print(
            json.dumps(
                {"path": str(out), "digest": ds.digest, **report.as_dict()}, indent=2, ensure_ascii=False
            )
        )
        return
    _print_generation(ds, report, out, version, show)


def _print_generation(ds, report, out: Path, version: str | None, show: int) -> None:  # type: ignore[no-untyped-def]
    from rich.table import Table

    r = report.as_dict()
    console.print(
        f"[bold]{ds.name}[/]: {r['items']} items from {r['documents_covered']} of {r['documents']} documents"
    )
    table = Table(box=None)
    table.add_column("kind")
    table.add_column("items", justify="right")
    for kind, count in ds.counts().items():
        table.add_row(kind, str(count))
    console.print(table)
    console.print(f"filters ({r['tried']} answerable candidates tried):")
    drops = Table(box=None)
    drops.add_column("filter")
    drops.add_column("dropped", justify="right")
    drops.add_column("rate before filtering", justify="right")
    rates = {
        "roundtrip": r["roundtrip_rate"],
        "support": r["fact_support_rate"],
        "duplicate": r["duplicate_rate"],
    }
    for f in ("duplicate", "roundtrip", "support", "oos_answerable", "no_ja_template", "edge_variant"):
        if f in r["dropped"] or f in rates:
            rate = rates.get(f)
            label = {
                "roundtrip": "found its chunk",
                "support": "facts supported",
                "duplicate": "near-duplicates",
            }
            drops.add_row(
                f, str(r["dropped"].get(f, 0)), f"{rate:.0%} {label.get(f, '')}" if rate is not None else ""
            )
    console.print(drops)
    for note in r["notes"]:
        console.print(f"[yellow]note:[/] {note}")
    for item in ds.items[:show]:
        facts = "; ".join(item.expected_output.response_facts)[:140]
        console.print(
            f"  [bold]{item.kind}[/] {item.question}"
            + (f"\n     [dim]facts: {facts} — {item.metadata.source}[/]" if facts else ""),
            highlight=False,
        )
    console.print(
        f"wrote {out} (digest {ds.digest}, {r['seconds']:.0f} s, {r['items_per_minute']:.0f} items/min, "
        f"generator {r['generator'].get('name')}, product {r['product']!r})"
        + (f" · MLflow dataset {ds.name}@{ds.digest}" if version else "")
    )
    console.print(
        f"next: flywheel eval --dataset {out}  ·  after the docs change: flywheel datasets status {out}"
    )


def _corpus_for(cfg, ds, source: list[str] | None):  # type: ignore[no-untyped-def]
    from flywheel.datagen import corpus_for

    return corpus_for(cfg, ds, source)


@app.command("status")
def status_cmd(
    dataset: Annotated[Path, typer.Argument(help="Dataset file (generated, or anchored by refresh).")],
    source: Annotated[
        list[str] | None,
        typer.Option("--source", help="Documentation the dataset is about (default: what its items record)."),
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the status as JSON.")] = False,
) -> None:
    """Which items still rest on the documentation as it is now: fresh, stale (a supporting chunk
    changed), orphaned (its page is gone), unanchored (no chunks recorded); and documents no item covers.

    Example: flywheel ingest docs/ && flywheel datasets status datasets/generated.json
    """
    from flywheel.datagen import dataset_status
    from flywheel.evaluation import load_dataset
    from flywheel.stack import require

    cfg = settings()
    require(cfg, "index")
    ds = load_dataset(dataset)
    _, corpus = _corpus_for(cfg, ds, source)
    st = dataset_status(ds, corpus)
    if json_out:
        print(json.dumps({"counts": st.counts(), "items": st.items, "uncovered": st.uncovered}, indent=2))
        return
    from rich.table import Table

    console.print(f"[bold]{ds.name}[/] against the index ({len(corpus.sources)} documents)")
    table = Table(box=None)
    for col in ("id", "kind", "status", "source", "question"):
        table.add_column(col)
    colour = {"fresh": "green", "stale": "yellow", "orphaned": "red", "unanchored": "dim", "n/a": "dim"}
    for item in ds.items:
        s = st.items.get(item.metadata.id or item.question, "unanchored")
        if s == "n/a" or (s == "fresh" and len(ds.items) > 30):
            continue  # attacks and off-topic items rest on no page; long sets: only what needs attention
        table.add_row(
            item.metadata.id or "",
            item.kind,
            f"[{colour.get(s, 'dim')}]{s}[/]",
            item.metadata.source or "",
            item.question[:70],
        )
    console.print(table)
    counts = " · ".join(f"{k} {v}" for k, v in st.counts().items())
    console.print(
        f"{counts} · documents with no item: {len(st.uncovered)}"
        + (f" ({', '.join(st.uncovered[:6])}{' …' if len(st.uncovered) > 6 else ''})" if st.uncovered else "")
    )
    if st.counts()["stale"] or st.counts()["orphaned"] or st.uncovered:
        console.print(f"next: flywheel datasets refresh {dataset}")


@app.command("refresh")
def refresh_cmd(
    dataset: Annotated[Path, typer.Argument(help="Dataset file to bring in step with the index.")],
    out: Annotated[
        Path | None, typer.Option(help="Where the new version goes (default: the same file).")
    ] = None,
    source: Annotated[
        list[str] | None,
        typer.Option("--source", help="Documentation the dataset is about (default: what its items record)."),
    ] = None,
    per_document: Annotated[
        int, typer.Option(min=0, help="Items to generate for each uncovered document.")
    ] = 2,
    register: Annotated[bool, typer.Option(help="Register the version in MLflow when it answers.")] = True,
    force: Annotated[
        bool, typer.Option(help="Retire items even when more than half of them would go (pages really gone).")
    ] = False,
) -> None:
    """Bring a dataset in step with the documentation: stale items get their facts re-derived from the
    new passage (a changed default becomes the new fact), orphans are retired, uncovered documents
    get new items, hand-written items that name their page are anchored. Writes a new version and
    appends a change log (NAME.changelog.jsonl). Evaluate just what changed with
    flywheel eval --only stale,new.

    Example: flywheel datasets refresh datasets/generated.json
    """
    from flywheel.datagen import GenerateOptions, generate
    from flywheel.datagen._sync import append_changelog, refresh_dataset, register_version
    from flywheel.evaluation import load_dataset, save_dataset
    from flywheel.stack import require

    quiet_mlflow()
    cfg = settings()
    require(cfg, "index")
    ds = load_dataset(dataset)
    kb, corpus = _corpus_for(cfg, ds, source)

    def generate_for(sources: list[str], n: int) -> list:  # type: ignore[type-arg]
        sub = type(corpus)(
            chunks=[c for c in corpus.chunks if c.source in set(sources)],
            product=corpus.product,
            secrets=corpus.secrets,
            settings=corpus.settings,
            lang=corpus.lang,
        )
        shares = {"happy_path": 1.0}
        new, _ = generate(cfg, GenerateOptions(n=max(1, n), shares=shares, name=ds.name), kb=kb, corpus=sub)
        return list(new.items)

    with console.status("Refreshing against the index…"):
        result = refresh_dataset(cfg, ds, corpus, generate_for if per_document else None, per_document, force)
    target = out or dataset
    save_dataset(result.dataset, target)
    log = append_changelog(target, result.changelog(ds.digest, result.dataset.digest))
    version = register_version(cfg, result.dataset) if register else None
    for u in result.updated:
        console.print(f"  [yellow]updated[/] {u['id']}")
        for a, b in zip(u["before"], u["after"], strict=False):
            if a != b:
                console.print(f"     [red]- {a}[/]\n     [green]+ {b}[/]", highlight=False)
    for r in result.retired:
        console.print(f"  [red]retired[/] {r['id']}: {r['why']}")
    for a in result.added:
        console.print(f"  [green]new[/] {a}")
    console.print(
        f"{len(result.updated)} updated · {len(result.retired)} retired · {len(result.added)} new · "
        f"{len(result.anchored)} anchored · {result.unchanged} unchanged → {target} (digest "
        f"{result.dataset.digest}; change log {log})"
        + (f" · MLflow dataset {ds.name}@{result.dataset.digest}" if version else "")
    )
    if result.updated or result.added:
        console.print(f"next: flywheel eval --dataset {target} --only stale,new")
