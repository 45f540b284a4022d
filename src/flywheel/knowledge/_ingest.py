"""Ingest: sources → documents → chunks → embeddings → index, incrementally by content hash."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from flywheel.config import Settings
from flywheel.errors import FlywheelError
from flywheel.knowledge._base import KnowledgeBase
from flywheel.knowledge._chunking import ChunkOptions, chunk_document
from flywheel.knowledge._documents import Document
from flywheel.knowledge._loaders import resolve_origins
from flywheel.web import FetchOptions

__all__ = ["IngestOptions", "IngestReport", "ingest"]

Progress = Callable[[str, int, int], None]  # (document name, done, total)


@dataclass
class IngestOptions:
    sources: list[str]
    rebuild: bool = False
    chunking: ChunkOptions = field(default_factory=ChunkOptions)
    embed_batch: int = 64
    # called with every document read (changed or not), e.g. to mine the guardrail check's questions
    on_document: Callable[[Document], None] | None = None


@dataclass
class IngestReport:
    documents: int = 0
    added: int = 0
    updated: int = 0
    skipped: int = 0
    removed: int = 0
    chunks: int = 0
    embedded_chunks: int = 0
    seconds: float = 0.0
    failed: list[tuple[str, str]] = field(default_factory=list)
    index_uri: str = ""
    collection: str = ""
    total_chunks_in_index: int = 0


def ingest(
    settings: Settings,
    options: IngestOptions,
    progress: Progress | None = None,
    kb: KnowledgeBase | None = None,
) -> IngestReport:
    """Bring the index in line with ``options.sources``; unchanged documents are not re-embedded."""
    t0 = time.perf_counter()
    kb = kb or KnowledgeBase(settings)
    report = IngestReport(index_uri=settings.index_uri, collection=settings.collection)
    fetch = FetchOptions.from_settings(settings)
    origins = list(resolve_origins(options.sources, fetch))  # validates every source before any write

    index = kb.index
    # the multilingual embedding of the same chunks, kept in step; an index that was built without
    # it gets it on --rebuild (or when empty); until then ``auto`` goes on without, an explicit one fails
    spec = kb.companion_spec()
    companion = spec[:2] if spec else None
    if spec and not options.rebuild and index.exists() and not spec[1].exists() and index.count():
        if not spec[2]:
            raise FlywheelError("companion_missing", collection=spec[1].collection)
        companion = None
    kb.__dict__.pop("companion", None)  # searched again after this ingest, with what it built
    if options.rebuild:
        index.drop()
        if companion:
            companion[1].drop()
    index.ensure()
    if companion:
        companion[1].ensure()
    for origin in origins:
        names = origin.list_documents()
        known = index.doc_hashes(origin.key)
        for n, name in enumerate(names, 1):
            report.documents += 1
            try:
                doc = origin.load(name)
            except FlywheelError as exc:
                report.failed.append((name, exc.parts()[0]))
                continue
            finally:
                if progress:
                    progress(name, n, len(names))
            if options.on_document:
                options.on_document(doc)
            if known.get(name) == doc.hash:
                report.skipped += 1
                continue
            chunks = chunk_document(doc, options.chunking)
            if name in known:
                index.delete_source(origin.key, name)
                if companion:
                    companion[1].delete_source(origin.key, name)
                report.updated += 1
            else:
                report.added += 1
            for i in range(0, len(chunks), options.embed_batch):
                batch = chunks[i : i + options.embed_batch]
                texts = [c.embedding_text() for c in batch]
                index.add(batch, kb.embedder.embed_documents(texts), origin.key)
                if companion:
                    companion[1].add(batch, companion[0].embed_documents(texts), origin.key)
            report.chunks += len(chunks)
            report.embedded_chunks += len(chunks)
        for gone in sorted(set(known) - set(names)):
            index.delete_source(origin.key, gone)
            if companion:
                companion[1].delete_source(origin.key, gone)
            report.removed += 1
    index.commit()
    if companion:
        companion[1].commit()
    report.total_chunks_in_index = index.count()
    report.seconds = time.perf_counter() - t0
    return report
