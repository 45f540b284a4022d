"""``generate``: a golden dataset from ingested documentation, every item tied to its passages.

The pipeline: (ingest the sources, incrementally) → read every chunk of them from the index →
documents in a fixed order, visited round-robin with a per-document cap (balance) → each chunk's
candidates in order of preference until one passes every filter → edge cases from accepted items →
out-of-scope questions verified against the index → adversarial seeds in the corpus's words → a
dataset of ``n`` items (the budget), each with ``metadata.chunks`` (the supporting chunk ids and
their content digests) and ``metadata.generator``.

Filters, each counted in the report (a candidate dropped by one is not tried by the next):

- **de-duplication**: a question whose embedding (the scoring MiniLM) has cosine ≥ ``dedupe`` with
  an accepted one is a near-duplicate;
- **round trip**: the question, searched as the agent searches (hybrid, top 5), must retrieve its
  own chunk;
- **support**: every fact must be recognized in its chunk by the ``response_facts`` scorer's matcher
  (``evaluation._facts.FactMatcher`` with the facts instrument, same threshold).

The report also gives the rates *before* filtering (what the generator produces; the filtered set
passes by construction) — those are the figures ``bench/datagen.py`` reports.
"""

from __future__ import annotations

import hashlib
import math
import re
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from flywheel.config import Settings
from flywheel.datagen._corpus import Corpus, CorpusChunk, chunk_ref, read_corpus
from flywheel.datagen._offline import (
    PRIORITY,
    Candidate,
    OfflineGenerator,
    _header,
    _topic,
    japanese,
    keyword_query,
)
from flywheel.datagen._scope import adversarial_items, near_domain_questions, off_topic_questions
from flywheel.errors import InputError

__all__ = ["Checker", "GenerateOptions", "GenerationReport", "generate", "make_generator"]

Progress = Callable[[str, int, int], None]  # (stage, done, total)
SHARES = {"happy_path": 0.6, "edge_case": 0.15, "adversarial": 0.125, "out_of_scope": 0.125}


@dataclass
class GenerateOptions:
    sources: list[str] = field(default_factory=list)  # empty: what the index holds
    n: int = 40
    shares: dict[str, float] = field(default_factory=lambda: dict(SHARES))
    lang: str | None = None  # None: the corpus's language; "ja": Japanese questions
    generator: str = "auto"  # auto | offline | llm
    name: str = "generated"
    dedupe: float = 0.9
    k: int = 5
    ingest: bool = True  # bring the index in line with the sources first (incremental)


@dataclass
class GenerationReport:
    generator: dict[str, str] = field(default_factory=dict)
    documents: int = 0
    documents_covered: int = 0
    chunks: int = 0
    kinds: dict[str, int] = field(default_factory=dict)
    tried: int = 0  # answerable candidates checked
    dropped: dict[str, int] = field(default_factory=lambda: Counter())
    roundtrip_checked: int = 0
    roundtrip_passed: int = 0
    facts_checked: int = 0
    facts_supported: int = 0
    dedupe_checked: int = 0
    oos_checked: int = 0
    oos_passed: int = 0
    seconds: float = 0.0
    product: str = ""
    lang: str = "en"
    notes: list[str] = field(default_factory=list)
    examples: dict[str, list[str]] = field(default_factory=dict)  # filter → a few dropped questions

    def drop(self, why: str, question: str) -> None:
        self.dropped[why] += 1
        shown = self.examples.setdefault(why, [])
        if len(shown) < 5:
            shown.append(question)

    @property
    def items(self) -> int:
        return sum(self.kinds.values())

    def as_dict(self) -> dict[str, Any]:
        return {
            "generator": self.generator,
            "product": self.product,
            "lang": self.lang,
            "documents": self.documents,
            "documents_covered": self.documents_covered,
            "chunks": self.chunks,
            "items": self.items,
            "kinds": dict(self.kinds),
            "tried": self.tried,
            "dropped": dict(self.dropped),
            "roundtrip_rate": _rate(self.roundtrip_passed, self.roundtrip_checked),
            "fact_support_rate": _rate(self.facts_supported, self.facts_checked),
            "duplicate_rate": _rate(self.dropped.get("duplicate", 0), self.dedupe_checked),
            "oos_verified_rate": _rate(self.oos_passed, self.oos_checked),
            "seconds": round(self.seconds, 1),
            "items_per_minute": round(self.items / self.seconds * 60, 1) if self.seconds else 0.0,
            "notes": self.notes,
            "examples": self.examples,
        }


def _rate(a: int, b: int) -> float | None:
    return round(a / b, 4) if b else None


def make_generator(settings: Settings, name: str = "auto", lang: str | None = None) -> Any:
    """``offline`` (always available), ``llm`` (needs FLYWHEEL_GENERATOR_BASE_URL), ``auto``: the
    LLM one when a generator model is configured, else offline."""
    base = getattr(settings, "generator_base_url", None)
    if name == "llm" or (name == "auto" and base):
        if not base:
            raise InputError("generator_not_configured")
        from flywheel.datagen._llm import LLMGenerator

        key = getattr(settings, "generator_api_key", None)
        cache = settings.data_path / "datagen" / "llm-replies.jsonl"
        return LLMGenerator(
            base, settings.generator_model, key.get_secret_value() if key else None, lang, cache
        )
    if name not in ("auto", "offline"):
        raise InputError("generator_unknown", name=name)
    return OfflineGenerator(lang)


class Checker:
    """The filters, with the instruments they need (the knowledge base, the facts matcher)."""

    def __init__(self, kb: Any, settings: Settings, k: int = 5, dedupe: float = 0.9) -> None:
        from flywheel.evaluation import FactMatcher
        from flywheel.knowledge import facts_embedder, scoring_embedder

        self.kb, self.k, self.dedupe = kb, k, dedupe
        self._embed = scoring_embedder(settings).embed_documents
        self.matcher = FactMatcher(facts_embedder(settings).embed_documents)
        self.kept: list[np.ndarray] = []

    def vector(self, text: str) -> np.ndarray:
        v = np.asarray(self._embed([text])[0], dtype=float)
        return v / (np.linalg.norm(v) or 1.0)

    def duplicate(self, vec: np.ndarray) -> bool:
        return bool(self.kept) and float(np.max(np.stack(self.kept) @ vec)) >= self.dedupe

    def roundtrip(self, question: str, chunk: CorpusChunk) -> bool:
        hits = self.kb.search(question, k=self.k)
        return any(h.id == chunk.id or (h.source == chunk.source and h.text == chunk.text) for h in hits)

    def supported(self, facts: list[str], chunk: CorpusChunk) -> list[bool]:
        matches = self.matcher.match(facts, chunk.text)
        return [m.credit >= 1.0 for m in matches]

    def best_relevance(self, question: str) -> tuple[float, float]:
        """(the top hit's cosine as the agent sees it, the threshold it abstains below)."""
        from flywheel.agent import detect_language

        lang = detect_language(question)
        hits = self.kb.search(question, k=self.k)
        best = max((h.dense_score for h in hits), default=0.0)
        if getattr(hits, "relevance", None) is not None:
            best = max(best, float(hits.relevance))
        return best, float(self.kb.relevance_threshold(question, lang))


def _quotas(n: int, shares: dict[str, float]) -> dict[str, int]:
    total = sum(shares.values()) or 1.0
    q = {k: math.floor(n * v / total) for k, v in shares.items()}
    rest = n - sum(q.values())
    for k in sorted(shares, key=lambda k: -shares[k]):
        if rest <= 0:
            break
        q[k] += 1
        rest -= 1
    return q


def candidate_item(c: Candidate, generator: dict[str, str]) -> dict[str, Any]:
    """The golden item (seed format) of an accepted candidate."""
    return {
        "input": {"question": c.question},
        "expected_output": {
            "trajectory": ["doc_search"],
            "search_term": c.search_term,
            "response_facts": c.facts,
        },
        "metadata": {
            "id": c.item_id,
            "kind": c.kind,
            "source": c.chunk.source,
            "chunks": [chunk_ref(c.chunk)],
            "generator": {
                **generator,
                "shape": c.shape,
                "subject": c.subject,
                "lang": c.lang,
                **({"default_col": int(c.extra["default_col"])} if "default_col" in c.extra else {}),
            },
        },
    }


def generate(
    settings: Settings,
    options: GenerateOptions,
    kb: Any = None,
    progress: Progress | None = None,
    corpus: Corpus | None = None,
) -> tuple[Any, GenerationReport]:
    """A golden dataset for the documentation of ``options.sources`` (or the whole index)."""
    from flywheel.datagen._corpus import origin_keys
    from flywheel.evaluation import Dataset, GoldenItem
    from flywheel.knowledge import IngestOptions, KnowledgeBase, ingest

    t0 = time.perf_counter()
    kb = kb or KnowledgeBase(settings)
    generator = make_generator(settings, options.generator, options.lang)  # a bad choice fails first
    origins = None
    if options.sources:
        if options.ingest:
            ingest(settings, IngestOptions(list(options.sources)), kb=kb)
        origins = origin_keys(settings, list(options.sources))
    if corpus is None:
        if not kb.index.exists():
            raise InputError("datagen_no_index", collection=settings.collection)
        corpus = read_corpus(kb.index, origins)
    if not corpus.chunks:
        raise InputError("datagen_empty", sources=", ".join(options.sources) or settings.collection)
    report = GenerationReport(
        generator=generator.settings(), chunks=len(corpus.chunks), product=corpus.product, lang=corpus.lang
    )
    report.documents = len(corpus.sources)
    check = Checker(kb, settings, options.k, options.dedupe)
    quotas = _quotas(options.n, options.shares)
    lang = options.lang or corpus.lang
    items: list[dict[str, Any]] = []
    accepted: list[Candidate] = []
    covered: set[str] = set()

    def tick(stage: str) -> None:
        if progress:
            progress(stage, len(items), options.n)

    # -- answerable: documents round-robin, one accepted candidate per chunk visit
    by_source = corpus.by_source()
    headers: dict[tuple[str, str], tuple[str, ...]] = {}
    chunk_header: dict[str, tuple[str, ...] | None] = {}
    for src in by_source:
        for ch in by_source[src]:
            head = _header(ch.text)
            if head:
                headers[(src, ch.headings)] = head
            chunk_header[ch.id] = headers.get((src, ch.headings))
    order = sorted(by_source, key=lambda s: hashlib.sha1(s.encode()).hexdigest())
    # a question about a whole section (its heading, its steps) belongs to the section's first chunk
    first_of_section: set[str] = set()
    for src in order:
        heads: set[str] = set()
        for ch in by_source[src]:
            if ch.headings not in heads:
                heads.add(ch.headings)
                first_of_section.add(ch.id)
    tried: set[str] = set()
    # a cheap (offline) generator's candidates are all made up front and tried most specific shape
    # first; an LLM's are asked for chunk by chunk, only as far as the budget needs
    cheap = isinstance(generator, OfflineGenerator)
    # a subject many pages talk about ("What is DSPy?" over forty DSPy pages) has no one passage
    # that answers it: such candidates are tried after the ones only their own page is about
    # (the pages holding the subject's words, from an inverted index, are the only ones searched for
    # the phrase: thousands of pages stay fast)
    page_text = {src: " ".join(c.text for c in by_source[src]).lower() for src in order}
    pages_of: dict[str, set[str]] = {}
    for src, text in page_text.items():
        for word in set(re.findall(r"[a-z0-9_]{3,}", text)):
            pages_of.setdefault(word, set()).add(src)
    spread_of: dict[str, int] = {}

    def spread(subject: str) -> int:
        key = _plain_subject(subject)
        if key not in spread_of:
            words = re.findall(r"[a-z0-9_]{3,}", key)
            pages = set.intersection(*(pages_of.get(w, set()) for w in words)) if words else set(page_text)
            df = sum(1 for p in pages if key in page_text[p]) if len(key) >= 3 else 0
            spread_of[key] = 0 if df <= 2 else 1 if df <= 5 else 2
        return spread_of[key]

    queues: dict[str, deque[Any]] = {}
    for src in order:
        if cheap:
            cands = [
                c
                for ch in by_source[src]
                for c in generator.extract(ch, chunk_header.get(ch.id), lang, corpus.product)
                if c.shape not in ("heading", "procedure") or ch.id in first_of_section
            ]
            for c in cands:
                # "What is the Module object?" is asked by forty pages' worth of docs: name the page's topic
                topic = _topic(c.chunk.title or c.chunk.headings.split(" > ")[0], corpus.product)
                if (
                    c.shape == "definition"
                    and c.lang == "en"
                    and topic
                    and spread(c.subject)
                    and topic.lower() not in c.question.lower()
                ):
                    c.question = c.question.rstrip("?") + f" in {topic}?"
            cands.sort(key=lambda c: (spread(c.subject), PRIORITY.get(c.shape, 99), c.chunk.chunk_index))
            queues[src] = deque(cands)
        else:
            queues[src] = deque(by_source[src])
    need = quotas.get("happy_path", 0)
    per_doc: Counter[str] = Counter()
    used_chunks: set[str] = set()
    # candidates skipped because their chunk already gave an item: a second pass for small corpora
    deferred: dict[str, deque[Any]] = {src: deque() for src in order}
    cap = max(1, math.ceil(need / max(1, len(order))))
    second_pass = False
    while len(accepted) < need and (any(queues.values()) or (cheap and not second_pass)):
        if not any(queues.values()):
            queues, second_pass = deferred, True
            cap = max(cap, max(per_doc.values(), default=0) + 1)
            continue
        visited = False
        for src in order:
            if len(accepted) >= need:
                break
            if per_doc[src] >= cap or not queues[src]:
                continue
            visited = True
            while queues[src]:
                head = queues[src].popleft()
                if cheap:
                    if head.chunk.id in used_chunks and not second_pass:
                        deferred[src].append(head)
                        continue
                    batch = [head]
                else:
                    batch = list(generator.extract(head, chunk_header.get(head.id), lang, corpus.product))
                done = False
                for cand in batch:
                    if options.lang == "ja" and cand.lang != "ja":
                        ja = japanese(cand)
                        if ja is None:
                            report.dropped["no_ja_template"] += 1
                            continue
                        cand = ja
                    if cand.question.lower() in tried:
                        report.dedupe_checked += 1  # the same question again: a duplicate too
                        report.drop("duplicate", cand.question)
                        continue
                    tried.add(cand.question.lower())
                    if _accept(cand, check, report):
                        accepted.append(cand)
                        per_doc[src] += 1
                        covered.add(src)
                        used_chunks.add(cand.chunk.id)
                        items.append(candidate_item(cand, generator.settings()))
                        tick("answerable")
                        done = True
                        break
                if done:
                    break
        if not visited:
            cap += 1
    # -- edge cases: accepted items asked tersely (keywords) or in Japanese, alternately
    need = quotas.get("edge_case", 0)
    edges = 0
    for n, cand in enumerate(accepted):
        if edges >= need:
            break
        variants = [keyword_query(cand), japanese(cand) if lang == "en" else None]
        if n % 2:
            variants.reverse()
        for v in variants:
            if v is None or v.question == cand.question:
                continue
            vec = check.vector(v.question)  # a variant of an accepted item: its own filters, not counted
            if check.duplicate(vec) or not check.roundtrip(v.question, v.chunk):
                report.dropped["edge_variant"] += 1
                continue
            check.kept.append(vec)
            v.kind = "edge_case"
            items.append(candidate_item(v, generator.settings()))
            edges += 1
            tick("edge cases")
            break
    # -- out of scope: near the domain and off topic, verified against the index
    need = quotas.get("out_of_scope", 0)
    near = near_domain_questions(corpus, 10)
    off = off_topic_questions(corpus, 12)
    pool = [q for pair in zip(near, off, strict=False) for q in pair] + near[len(off) :] + off[len(near) :]
    oos = 0
    for q in pool:
        if oos >= need:
            break
        report.oos_checked += 1
        best, threshold = check.best_relevance(q)
        if best >= threshold:
            report.drop("oos_answerable", q)
            continue
        report.oos_passed += 1
        shape = "near_domain" if q in near else "off_topic"
        items.append(
            {
                "input": {"question": q},
                "expected_output": {},
                "metadata": {
                    "id": "gen-oos-" + hashlib.sha1(q.encode()).hexdigest()[:10],
                    "kind": "out_of_scope",
                    "generator": {**generator.settings(), "shape": shape},
                    "verified": {"best_relevance": round(best, 4), "threshold": round(threshold, 4)},
                },
            }
        )
        oos += 1
        tick("out of scope")
    # -- adversarial: the safety set's attack seeds in this corpus's words
    for row in adversarial_items(corpus, quotas.get("adversarial", 0)):
        items.append(
            {
                "input": {"question": row["question"]},
                "expected_output": {},
                "metadata": {
                    "id": "gen-adv-" + hashlib.sha1(row["question"].encode()).hexdigest()[:10],
                    "kind": "adversarial",
                    "family": row["family"],
                    "generator": {**generator.settings(), "shape": "safety_seed", "seed_id": row["seed_id"]},
                },
            }
        )
        tick("adversarial")
    for kind, want in quotas.items():
        got = sum(1 for i in items if i["metadata"]["kind"] == kind)
        if got < want:
            report.notes.append(
                f"{kind}: {got} of {want} (the documentation gave no more that pass the filters)"
            )
    failures = getattr(generator, "failures", None)
    if failures:
        report.notes.append(f"{len(failures)} passages gave no candidate: {failures[0]}")
    report.kinds = dict(Counter(i["metadata"]["kind"] for i in items))
    report.documents_covered = len(covered)
    report.seconds = time.perf_counter() - t0
    dataset = Dataset(name=options.name, items=[GoldenItem.model_validate(i) for i in items])
    return dataset, report


def _plain_subject(subject: str) -> str:
    return " ".join(subject.replace("`", "").lower().split())


def _accept(cand: Candidate, check: Checker, report: GenerationReport) -> bool:
    """Run the filters on one answerable candidate; count what they drop."""
    report.tried += 1
    vec = check.vector(cand.question)
    report.dedupe_checked += 1
    if check.duplicate(vec):
        report.drop("duplicate", cand.question)
        return False
    report.roundtrip_checked += 1
    if not check.roundtrip(cand.question, cand.chunk):
        report.drop("roundtrip", cand.question)
        return False
    report.roundtrip_passed += 1
    ok = check.supported(cand.facts, cand.chunk)
    report.facts_checked += len(ok)
    report.facts_supported += sum(ok)
    if not all(ok):
        report.drop("support", cand.question)
        return False
    check.kept.append(vec)
    return True
