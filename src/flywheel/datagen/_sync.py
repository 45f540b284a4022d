"""Datasets kept in step with the documentation: ``status`` and ``refresh``.

Every item generated (or anchored) from the index records its supporting chunks in
``metadata.chunks``: id, content digest, page and section. Against the index as it is now, an item is

- **fresh**: every supporting chunk's words are still in its page (same digest; the chunk id may
  have changed because something else on the page did);
- **stale**: its page is still there but a supporting chunk's words changed;
- **orphaned**: its page is gone;
- **unanchored**: it records no chunks (written by hand, not yet anchored; ``refresh`` anchors the
  ones that name their page).

``refresh`` re-derives a stale item from its page's new chunk (the chunk of the same section most
like the old facts): each fact becomes the new chunk's sentence that states the same thing — so a
changed default value becomes the new fact — and the item is checked again (support); orphans are
retired; documents with no item get new ones from the generator; the result is a new version with a
change log. ``metadata.change`` marks what the last refresh did ("updated", "new") so that
``flywheel eval --only stale,new`` evaluates just that.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from flywheel.datagen._corpus import Corpus, CorpusChunk, chunk_ref
from flywheel.datagen._offline import units

__all__ = ["STATUSES", "DatasetStatus", "RefreshResult", "dataset_status", "refresh_dataset", "select"]

STATUSES = ("fresh", "stale", "orphaned", "unanchored", "n/a", "unchecked")


@dataclass
class DatasetStatus:
    items: dict[str, str]  # item id → status
    uncovered: list[str]  # documents of the corpus no item rests on
    changed: dict[str, list[str]] = field(default_factory=dict)  # item id → its changed chunk refs

    def counts(self) -> dict[str, int]:
        return {s: sum(1 for v in self.items.values() if v == s) for s in STATUSES}

    def stale_share(self) -> float:
        """Share of the anchored items that are stale or orphaned (0 when none is anchored)."""
        anchored = [v for v in self.items.values() if v not in ("unanchored", "n/a", "unchecked")]
        return sum(1 for v in anchored if v in ("stale", "orphaned")) / len(anchored) if anchored else 0.0


def _refs(item: Any) -> list[dict[str, str]]:
    """The item's supporting-chunk records that are well formed (id, digest and page as strings);
    anything else in ``metadata.chunks`` is ignored rather than trusted."""
    extra = item.metadata.model_extra or {}
    raw = extra.get("chunks")
    if not isinstance(raw, list):
        return []
    return [
        r
        for r in raw
        if isinstance(r, dict)
        and all(isinstance(r.get(k), str) and r.get(k) for k in ("id", "digest", "source"))
    ]


def _page_of(ref: dict[str, str], pages: dict[tuple[str, str], Any]) -> tuple[str, str] | None:
    """The (origin, source) key of a ref's page in the corpus, or None when the page is not there."""
    origin = ref.get("origin") or ""
    if origin:
        key = (origin, ref["source"])
        return key if key in pages else None
    return next((k for k in pages if k[1] == ref["source"]), None)


def dataset_status(dataset: Any, corpus: Corpus) -> DatasetStatus:
    pages = corpus.pages()
    digests = {key: {c.digest for c in chunks} for key, chunks in pages.items()}
    origins = corpus.origins
    items: dict[str, str] = {}
    changed: dict[str, list[str]] = {}
    covered: set[str] = set()
    for item in dataset.items:
        iid = item.metadata.id or item.question
        refs = _refs(item)
        if item.metadata.source:
            covered.add(item.metadata.source)
        if not refs:
            # attacks and off-topic questions rest on no passage: the docs changing does not age them
            items[iid] = "n/a" if item.kind in ("adversarial", "out_of_scope") else "unanchored"
            continue
        if any(r.get("origin") and r["origin"] not in origins for r in refs):
            items[iid] = "unchecked"  # its documentation is not in this index: nothing can be said
            continue
        keys = [_page_of(r, pages) for r in refs]
        gone = [r for r, k in zip(refs, keys, strict=True) if k is None]
        moved = [
            r for r, k in zip(refs, keys, strict=True) if k is not None and r["digest"] not in digests[k]
        ]
        covered.update(r["source"] for r in refs)
        if len(gone) == len(refs):
            items[iid] = "orphaned"
        elif gone or moved:
            items[iid] = "stale"
            changed[iid] = [r["id"] for r in gone + moved]
        else:
            items[iid] = "fresh"
    uncovered = [s for s in corpus.sources if s not in covered]
    return DatasetStatus(items, uncovered, changed)


def select(dataset: Any, corpus: Corpus | None, only: list[str]) -> Any:
    """The items of ``dataset`` whose status (against ``corpus``) or last change is in ``only``:
    ``stale`` (stale now, or updated by the last refresh), ``new`` (added by it), ``fresh``,
    ``orphaned``, ``unanchored``."""
    from flywheel.evaluation import Dataset

    status = dataset_status(dataset, corpus).items if corpus is not None else {}
    keep = []
    for item in dataset.items:
        iid = item.metadata.id or item.question
        change = (item.metadata.model_extra or {}).get("change")
        st = status.get(iid, "unanchored")
        tags = {st}
        if change == "updated":
            tags.add("stale")
        if change == "new":
            tags.add("new")
        if tags & set(only):
            keep.append(item)
    return Dataset(name=f"{dataset.name}-{'+'.join(only)}", items=keep)


@dataclass
class RefreshResult:
    dataset: Any
    updated: list[dict[str, Any]] = field(default_factory=list)  # {"id", "before", "after"}
    retired: list[dict[str, str]] = field(default_factory=list)  # {"id", "why"}
    added: list[str] = field(default_factory=list)
    anchored: list[str] = field(default_factory=list)
    unchanged: int = 0

    def changelog(self, before: str, after: str) -> dict[str, Any]:
        return {
            "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "from": before,
            "to": after,
            "updated": self.updated,
            "retired": self.retired,
            "added": self.added,
            "anchored": self.anchored,
            "unchanged": self.unchanged,
        }


def _sentences(chunk: CorpusChunk) -> list[str]:
    out = []
    for u in units(chunk.text):
        if (u.kind == "row" and len(u.cells) >= 2) or u.kind in ("sentence", "step"):
            out.append(u.text)
    return out


_NUM = re.compile(r"\d+(?:\.\d+)*")


class _Deriver:
    """Finds, in a new chunk, the sentence that states what an old fact stated (numbers aside)."""

    def __init__(self, settings: Any) -> None:
        from flywheel.evaluation import FactMatcher
        from flywheel.knowledge import facts_embedder, key_terms

        self.embed = facts_embedder(settings).embed_documents
        self.matcher = FactMatcher(self.embed)
        self.key_terms = key_terms

    def similarity(self, facts: list[str], sentences: list[str]) -> np.ndarray:
        vecs = np.asarray(self.embed(facts + sentences), dtype=float)
        vecs /= np.where(
            np.linalg.norm(vecs, axis=1, keepdims=True) == 0, 1, np.linalg.norm(vecs, axis=1, keepdims=True)
        )
        cos = vecs[: len(facts)] @ vecs[len(facts) :].T
        out = np.zeros_like(cos)
        for i, f in enumerate(facts):
            ft = {t for t in self.key_terms(f) if not _NUM.fullmatch(t)}
            for j, s in enumerate(sentences):
                st = self.key_terms(s)
                out[i, j] = 0.5 * cos[i, j] + 0.5 * (len(ft & st) / max(1, len(ft)))
        return out

    def rederive(
        self, facts: list[str], chunk: CorpusChunk, verbatim: bool, floor: float = 0.55
    ) -> list[str] | None:
        """Each fact as the new chunk states it; None when one has no counterpart there.
        ``verbatim``: the facts were copied from the passage (a generated item), so the passage's
        counterpart replaces a fact whenever its words differ; a hand-written fact is replaced only
        when the facts scorer no longer finds it in the passage."""
        sents = _sentences(chunk)
        if not sents or not facts:
            return None
        sim = self.similarity(facts, sents)
        out = []
        for i, fact in enumerate(facts):
            j = int(sim[i].argmax())
            new = sents[j] if sim[i, j] >= floor else None
            if new is not None and _norm(new) == _norm(fact):
                out.append(fact)
            elif not verbatim and self.matcher.match([fact], chunk.text)[0].credit >= 1.0:
                out.append(fact)  # still stated, in other words
            elif new is None:
                return None
            else:
                out.append(new)
        return out

    def best_chunk(
        self, facts: list[str], candidates: list[CorpusChunk], headings: str
    ) -> CorpusChunk | None:
        """The chunk of ``candidates`` most like ``facts``, preferring the same section."""
        if not candidates:
            return None
        same = [c for c in candidates if c.headings == headings] or candidates
        best, score = None, -1.0
        for c in same:
            sents = _sentences(c)
            if not sents:
                continue
            s = float(self.similarity(facts, sents).max(axis=1).mean()) if facts else 0.0
            if s > score:
                best, score = c, s
        return best


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", text.replace("`", "").replace("**", "")).strip().lower()


def refresh_dataset(
    settings: Any,
    dataset: Any,
    corpus: Corpus,
    generate_for: Any = None,
    per_document: int = 2,
    force: bool = False,
    max_retire: float = 0.5,
) -> RefreshResult:
    """A new version of ``dataset`` in step with ``corpus`` (see the module docstring).
    ``generate_for(sources, n)`` → items for uncovered documents (the generator), or None to skip.
    Retiring more than ``max_retire`` of the anchored items (a wrong collection, a folder not
    ingested) needs ``force``: nothing is written until then."""
    from flywheel.errors import InputError
    from flywheel.evaluation import Dataset, GoldenItem

    status = dataset_status(dataset, corpus)
    pages = corpus.pages()
    by_source = corpus.by_source()
    current = {(c.origin, c.source, c.digest): c for c in corpus.chunks}
    deriver = _Deriver(settings)
    result = RefreshResult(dataset=None)
    items: list[GoldenItem] = []
    for item in dataset.items:
        iid = item.metadata.id or item.question
        st = status.items.get(iid)
        data = item.model_dump(mode="json", exclude_none=True)
        meta = data.setdefault("metadata", {})
        meta.pop("change", None)
        if st == "orphaned":
            result.retired.append({"id": iid, "why": f"its page {item.metadata.source} is gone"})
            continue
        if st in ("n/a", "unchecked"):
            result.unchanged += 1
            items.append(GoldenItem.model_validate(data))
            continue
        if st == "unanchored":
            anchored = _anchor(deriver, item, by_source)
            if anchored:
                meta["chunks"] = [chunk_ref(anchored)]
                result.anchored.append(iid)
            else:
                result.unchanged += 1
            items.append(GoldenItem.model_validate(data))
            continue
        refs = _refs(item)
        if st == "fresh":
            # the words are unchanged; the chunk ids follow the page's new hash
            meta["chunks"] = [
                chunk_ref(c) if (c := _current(r, current, pages)) is not None else r for r in refs
            ]
            result.unchanged += 1
            items.append(GoldenItem.model_validate(data))
            continue
        # stale: re-derive from the page's chunk now standing where the old one stood
        why = _rederive(deriver, item, data, refs, pages)
        if why:
            result.retired.append({"id": iid, "why": why})
            continue
        meta["change"] = "updated"
        before = list(item.expected_output.response_facts)
        result.updated.append(
            {"id": iid, "before": before, "after": data["expected_output"]["response_facts"]}
        )
        items.append(GoldenItem.model_validate(data))
    anchored_n = sum(1 for v in status.items.values() if v in ("fresh", "stale", "orphaned"))
    if not force and anchored_n and len(result.retired) > max_retire * anchored_n:
        raise InputError("refresh_would_retire", retired=len(result.retired), anchored=anchored_n)
    if generate_for is not None:
        # pages no kept item rests on — also those whose items were all just retired
        kept = {i.metadata.source for i in items} | {r["source"] for i in items for r in _refs(i)}
        uncovered = [s for s in corpus.sources if s not in kept]
        if uncovered:
            for new in generate_for(uncovered, per_document * len(uncovered)):
                data = new.model_dump(mode="json", exclude_none=True)
                data["metadata"]["change"] = "new"
                if any(i.metadata.id == new.metadata.id for i in items):
                    continue
                items.append(GoldenItem.model_validate(data))
                result.added.append(new.metadata.id or new.question)
    result.dataset = Dataset(name=dataset.name, items=items)
    return result


def _current(
    ref: dict[str, str], current: dict[tuple[str, str, str], CorpusChunk], pages: dict[tuple[str, str], Any]
) -> CorpusChunk | None:
    key = _page_of(ref, pages)
    return current.get((key[0], key[1], ref["digest"])) if key else None


def _rederive(
    deriver: _Deriver,
    item: Any,
    data: dict[str, Any],
    refs: list[dict[str, str]],
    pages: dict[tuple[str, str], Any],
) -> str:
    """Update ``data`` (a stale item) from its page's new chunk; '' on success, else why it retires."""
    gen = (item.metadata.model_extra or {}).get("generator") or {}
    key = next((k for r in refs if (k := _page_of(r, pages)) is not None), None)
    if key is None:
        return "its page is gone"
    page = pages[key]
    facts = list(item.expected_output.response_facts)
    old_headings = refs[0].get("headings", "")
    chunk = deriver.best_chunk(facts or [item.question], page, old_headings)
    if chunk is None:
        return "its page has no passage left"
    if gen.get("shape") in ("heading", "procedure") and chunk.headings != old_headings:
        return f"its section {old_headings.split(' > ')[-1]!r} was renamed or removed"
    if gen.get("shape") == "table_default":
        new_facts = _table_fact(chunk, str(gen.get("subject", "")), gen.get("default_col"))
        if new_facts is None:
            return f"the table row of {gen.get('subject')} is gone"
    elif facts:
        new_facts = deriver.rederive(facts, chunk, verbatim=bool(gen))
        if new_facts is None:
            return "its passage changed and no longer states its facts"
    else:
        new_facts = facts
    # checked again: every fact must be found in the new chunk
    if new_facts and not all(m.credit >= 1.0 for m in deriver.matcher.match(new_facts, chunk.text)):
        return "its re-derived facts are not supported by the new passage"
    data.setdefault("expected_output", {})["response_facts"] = new_facts
    data["metadata"]["chunks"] = [chunk_ref(chunk)]
    return ""


def _table_fact(chunk: CorpusChunk, key: str, default_col: Any) -> list[str] | None:
    """The fact of a generated table-default item, read again from its row (the row whose key cell
    is the item's key; the column the generator read the default from)."""
    col = default_col if isinstance(default_col, int) else 1
    for u in units(chunk.text):
        if u.kind == "row" and len(u.cells) > col and u.cells[0].replace("`", "").strip() == key:
            value = u.cells[col].replace("`", "").strip()
            meaning = u.cells[-1].replace("`", "").strip()
            return [f"{key} defaults to {value}: {meaning}"]
    return None


def _anchor(deriver: _Deriver, item: Any, by_source: dict[str, list[CorpusChunk]]) -> CorpusChunk | None:
    """The chunk of the item's page that states its facts, for a hand-written item that names one."""
    src = item.metadata.source
    facts = list(item.expected_output.response_facts)
    if not src or not facts:
        return None
    page = by_source.get(src) or next((v for k, v in by_source.items() if k.endswith("/" + src)), [])
    chunk = deriver.best_chunk(facts, page, "")
    if chunk is None:
        return None
    credit = [m.credit for m in deriver.matcher.match(facts, chunk.text)]
    return chunk if sum(credit) / len(credit) >= 0.5 else None


def append_changelog(path: Path, entry: dict[str, Any]) -> Path:
    """Append a refresh's change log to ``<dataset>.changelog.jsonl`` beside the dataset file."""
    log = path.with_name(path.stem + ".changelog.jsonl")
    with log.open("a", encoding="utf-8") as fh:
        fh.write(json.dumps(entry, ensure_ascii=False) + "\n")
    return log


def dataset_origins(dataset: Any) -> list[str] | None:
    """The ingested origins (folders, URLs) the dataset's anchored items rest on; None: none recorded."""
    found = {r.get("origin") for item in dataset.items for r in _refs(item) if r.get("origin")}
    return sorted(found) or None  # type: ignore[arg-type]


def register_version(settings: Any, dataset: Any) -> str | None:
    """Register ``dataset`` as the MLflow dataset version NAME@DIGEST when the tracking server
    answers; its id, or None (the file is the dataset either way)."""
    from flywheel.evaluation import register_dataset
    from flywheel.tracking import setup_tracing

    if not setup_tracing(settings):
        return None
    import mlflow

    exp = mlflow.set_experiment(settings.experiment)
    return register_dataset(dataset, exp.experiment_id)


def corpus_for(settings: Any, dataset: Any, sources: list[str] | None = None) -> tuple[Any, Corpus]:
    """(knowledge base, corpus) a dataset is checked against: the chunks of ``sources``, else of
    the origins its items record, else the whole index."""
    from flywheel.datagen._corpus import origin_keys, read_corpus
    from flywheel.errors import InputError
    from flywheel.knowledge import KnowledgeBase

    kb = KnowledgeBase(settings)
    if not kb.index.exists():
        raise InputError("datagen_no_index", collection=settings.collection)
    origins = dataset_origins(dataset)
    if sources:
        origins = origin_keys(settings, list(sources))
    corpus = read_corpus(kb.index, origins)
    if origins and not corpus.chunks:
        raise InputError(
            "datagen_origin_missing",
            origins=", ".join(origins),
            collection=settings.collection,
            first=origins[0],
        )
    return kb, corpus
