"""`flywheel ingest` and `flywheel search`: build the document index and look into it."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from flywheel.cli._common import console, progress_bar, settings

app = typer.Typer()


@app.command()
def ingest(
    sources: Annotated[
        list[str], typer.Argument(help="Folders, files (.md .mdx .html .txt), URLs or sitemap.xml URLs.")
    ],
    rebuild: Annotated[bool, typer.Option(help="Drop the index first and embed everything again.")] = False,
    max_chars: Annotated[int, typer.Option(help="Largest chunk, in characters.")] = 1200,
) -> None:
    """Ingest documentation into the vector index (Milvus Lite by default), incrementally.

    Unchanged documents (same content hash) are skipped; documents that disappeared from a
    folder or sitemap are removed from the index. URLs go through the same SSRF guard as the
    agent's open_url tool.

    Examples:
      flywheel ingest docs/
      flywheel ingest ../shared/corpora/mlflow-docs --rebuild
      flywheel ingest https://example.com/docs/sitemap.xml
    """
    from flywheel.knowledge import ChunkOptions, Document, IngestOptions
    from flywheel.knowledge import ingest as run_ingest
    from flywheel.safety import MinedQuestion, check_questions, mine_questions

    cfg = settings()
    mined: list[MinedQuestion] = []

    def mine(doc: Document) -> None:  # the guardrail check's questions, from every document read
        mined.extend(mine_questions([(doc.source, doc.text)]))

    with progress_bar("ingest") as bar:
        task = bar.add_task("loading the embedding model…", total=None)
        embedded = bar.add_task("embedding", total=None, visible=False)

        def progress(name: str, done: int, total: int) -> None:
            bar.update(task, completed=done, total=total, description=name[-60:])

        def on_embedded(chunks: int, seconds: float) -> None:  # chunks/s of the embedding passes
            rate = chunks / seconds if seconds else 0.0
            bar.update(embedded, completed=chunks, visible=True, description=f"chunks · {rate:.0f}/s")

        options = IngestOptions(
            sources,
            rebuild=rebuild,
            chunking=ChunkOptions(max_chars=max_chars),
            on_document=mine,
            on_embedded=on_embedded,
        )
        report = run_ingest(cfg, options, progress)
    rate = report.embedded_chunks / report.seconds if report.seconds else 0
    table = Table(box=None, pad_edge=False, show_header=False)
    for key, value in [
        ("documents", report.documents),
        ("added", report.added),
        ("updated", report.updated),
        ("skipped (unchanged)", report.skipped),
        ("removed", report.removed),
        ("chunks embedded", f"{report.embedded_chunks} ({rate:.1f}/s)"),
        ("sentences embedded", f"{report.embedded_units} (stored with their chunks)"),
        ("chunks in index", report.total_chunks_in_index),
        ("seconds", f"{report.seconds:.1f}"),
        ("index", f"{report.index_uri} · {report.collection}"),
    ]:
        table.add_row(key, str(value))
    console.print(table)
    for name, why in report.failed:
        console.print(f"[yellow]skipped {name}:[/] {why}")
    if mined:
        check = check_questions(mined, corpus=", ".join(sources), threshold=cfg.guardrail_threshold)
        check.save(cfg.data_path)
        rate = check.rate("full")
        colour = "green" if rate <= 0.03 else "yellow"
        console.print(
            f"[{colour}]guardrail:[/] {check.refused['full']} of {check.questions} questions mined from "
            f"these docs would be refused ({rate:.1%}) — details: flywheel guardrail check"
        )


@app.command()
def search(
    query: Annotated[str, typer.Argument(help="What to look for.")],
    k: Annotated[int, typer.Option("-k", help="How many chunks.")] = 5,
    mode: Annotated[str, typer.Option(help="hybrid (dense + BM25) or dense.")] = "hybrid",
    json_out: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Search the index the way the agent's doc_search tool does (no LLM).

    Example: flywheel search "delete old traces" -k 3
    A Japanese question is also searched with its English glosses, shown first:
    flywheel search "古いトレースを削除するには？"
    """
    from flywheel.knowledge import KnowledgeBase

    hits = KnowledgeBase(settings()).search(query, k=k, mode=mode)
    if json_out:
        print(json.dumps([h.as_dict() for h in hits], ensure_ascii=False, indent=2))
        return
    if hits.translated:
        from rich.markup import escape

        console.print(f"[dim]also searched as: {escape(hits.translated)}[/]")
    for n, h in enumerate(hits, 1):
        console.print(f"[bold][{n}][/] {h.title} › {h.headings}  [dim]{h.source}  cos={h.dense_score:.2f}[/]")
        console.print("    " + h.text[:200].replace("\n", " ") + "…", markup=False)
