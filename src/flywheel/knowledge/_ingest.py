"""Ingest: sources → documents → chunks → embeddings → index, incrementally by content hash.

Chunks of changed documents are buffered and embedded together (:data:`EMBED_BUFFER` at a time): the
embedder sorts one large batch by length, so little is padded, and the bf16 runtime pays off
(knowledge/_minilm.py). Each chunk's units (sentences, list items, table rows, code blocks) are
embedded in the same pass and stored with it (knowledge/_units.py), so no question re-embeds them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from flywheel.config import Settings
from flywheel.errors import FlywheelError
from flywheel.knowledge._base import KnowledgeBase
from flywheel.knowledge._chunking import ChunkOptions, chunk_document
from flywheel.knowledge._documents import Chunk, Document
from flywheel.knowledge._index import DocIndex
from flywheel.knowledge._loaders import resolve_origins
from flywheel.knowledge._units import MAX_STORED, encode_unit_vectors, split_units, unit_key
from flywheel.web import FetchOptions

__all__ = ["IngestOptions", "IngestReport", "ingest"]

_log = logging.getLogger(__name__)
Progress = Callable[[str, int, int], None]  # (document name, done, total)
EMBED_BUFFER = 256  # chunks embedded in one pass


@dataclass
class IngestOptions:
    sources: list[str]
    rebuild: bool = False
    chunking: ChunkOptions = field(default_factory=ChunkOptions)
    embed_batch: int = EMBED_BUFFER
    # called with every document read (changed or not), e.g. to mine the guardrail check's questions
    on_document: Callable[[Document], None] | None = None
    # called after every embedding pass with the chunks embedded so far and the seconds spent embedding
    on_embedded: Callable[[int, float], None] | None = None


@dataclass
class IngestReport:
    documents: int = 0
    added: int = 0
    updated: int = 0
    skipped: int = 0
    removed: int = 0
    chunks: int = 0
    embedded_chunks: int = 0
    embedded_units: int = 0
    embed_seconds: float = 0.0
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
    if index.schema_version < 2:
        _log.warning(
            "the index %r was built before chunks stored their sentence vectors: grounded answers "
            "embed them per question (slower) until `flywheel ingest <sources> --rebuild`",
            index.collection,
        )
    if companion:
        companion[1].ensure()
    pending: list[tuple[Chunk, str]] = []  # (chunk, origin key) waiting for the next embedding pass

    def flush() -> None:
        t = time.perf_counter()
        _embed_and_add(kb, index, companion, pending, report)
        report.embed_seconds += time.perf_counter() - t
        pending.clear()
        if options.on_embedded:
            options.on_embedded(report.embedded_chunks, report.embed_seconds)

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
            pending.extend((c, origin.key) for c in chunks)
            report.chunks += len(chunks)
            if len(pending) >= options.embed_batch:
                flush()
        for gone in sorted(set(known) - set(names)):
            index.delete_source(origin.key, gone)
            if companion:
                companion[1].delete_source(origin.key, gone)
            report.removed += 1
    if pending:
        flush()
    index.commit()
    if companion:
        companion[1].commit()
    report.total_chunks_in_index = index.count()
    report.seconds = time.perf_counter() - t0
    return report


def _embed_and_add(
    kb: KnowledgeBase,
    index: DocIndex,
    companion: tuple | None,
    pending: list[tuple[Chunk, str]],
    report: IngestReport,
) -> None:
    """One embedding pass: the chunks (main model and companion) and the chunks' units (main model),
    then one upsert per origin."""
    texts = [c.embedding_text() for c, _ in pending]
    vectors = kb.embedder.embed_documents(texts)
    fields = [""] * len(pending)
    if index.schema_version >= 2 and kb.settings.unit_vectors == "stored":
        per_chunk = [[u.text for u in split_units(c.text)][:MAX_STORED] for c, _ in pending]
        flat = list(dict.fromkeys(t for texts_ in per_chunk for t in texts_))  # each text once
        if flat:
            unit_vecs = np.asarray(kb.embedder.embed_documents(flat), dtype=np.float32)
            row = {t: i for i, t in enumerate(flat)}
            fields = [
                encode_unit_vectors([unit_key(t) for t in ts], unit_vecs[[row[t] for t in ts]]) if ts else ""
                for ts in per_chunk
            ]
        report.embedded_units += len(flat)
    extra = companion[0].embed_documents(texts) if companion else None
    by_origin: dict[str, list[int]] = {}
    for i, (_, key) in enumerate(pending):
        by_origin.setdefault(key, []).append(i)
    for key, rows in by_origin.items():
        index.add([pending[i][0] for i in rows], [vectors[i] for i in rows], key, [fields[i] for i in rows])
        if companion and extra is not None:
            companion[1].add([pending[i][0] for i in rows], [extra[i] for i in rows], key)
    report.embedded_chunks += len(pending)
