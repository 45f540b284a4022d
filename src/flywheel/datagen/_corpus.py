"""The ingested documentation as the generator and the freshness check see it: every chunk of the
index with its content digest, and the corpus's own vocabulary (product name, secret names, settings).

A chunk's id changes whenever anything in its document changes (it is derived from the document's
hash); its *digest* (``content_hash`` of the chunk's text) changes only when the chunk's own words
do. Items record both: the digest says whether the words an item rests on are still there.
"""

from __future__ import annotations

import builtins
import keyword
import re
from collections import Counter
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from flywheel.knowledge import content_hash

__all__ = ["Corpus", "CorpusChunk", "chunk_ref", "origin_keys", "read_corpus"]

_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff]")
_SECRET = re.compile(r"\b[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)*_(?:API_KEY|KEY|TOKEN|SECRET|PASSWORD)\b")
_SETTING = re.compile(r"\b[A-Z][A-Z0-9]+(?:_[A-Z0-9]+){1,6}\b")
_WORD = re.compile(r"[A-Za-z][A-Za-z0-9.+-]{2,}")
_COMMON = frozenset(
    [
        "the",
        "and",
        "for",
        "with",
        "how",
        "what",
        "when",
        "your",
        "you",
        "use",
        "using",
        "guide",
        "overview",
        "introduction",
        "reference",
        "api",
        "docs",
        "documentation",
        "getting",
        "started",
        "quickstart",
        "configuration",
        "setup",
        "install",
        "installation",
        "concepts",
        "tutorial",
        "examples",
        "example",
        "index",
        "page",
        "new",
        "data",
        "model",
        "models",
        "run",
        "server",
        "client",
        "agent",
        "agents",
        "tools",
        "tool",
        "prompt",
        "prompts",
        "evaluation",
        "tracing",
    ]
)


@dataclass(frozen=True)
class CorpusChunk:
    id: str
    source: str
    title: str
    headings: str  # "A > B > C"
    text: str
    chunk_index: int
    origin: str = ""

    @cached_property
    def digest(self) -> str:
        """The chunk's words and the section it sits under: a renamed heading ages it too."""
        return content_hash(self.headings + "\n\n" + self.text)

    @property
    def heading(self) -> str:
        """The innermost heading the chunk sits under (or the page title)."""
        return (self.headings.split(" > ")[-1] if self.headings else "") or self.title


def chunk_ref(chunk: CorpusChunk) -> dict[str, str]:
    """What an item records of a supporting chunk: its id and content digest, where it is."""
    return {
        "id": chunk.id,
        "digest": chunk.digest,
        "source": chunk.source,
        "headings": chunk.headings,
        "origin": chunk.origin,
    }


@dataclass
class Corpus:
    chunks: list[CorpusChunk]
    product: str = ""  # the word the documentation is about ("MLflow", "flywheel")
    secrets: list[str] = field(default_factory=list)  # secret names it mentions (OPENAI_API_KEY)
    settings: list[str] = field(default_factory=list)  # setting names it mentions
    lang: str = "en"

    def by_source(self) -> dict[str, list[CorpusChunk]]:
        out: dict[str, list[CorpusChunk]] = {}
        for c in self.chunks:
            out.setdefault(c.source, []).append(c)
        for v in out.values():
            v.sort(key=lambda c: c.chunk_index)
        return out

    def pages(self) -> dict[tuple[str, str], list[CorpusChunk]]:
        """(origin, source) → the page's chunks in order: two folders may both have an index.md."""
        out: dict[tuple[str, str], list[CorpusChunk]] = {}
        for c in self.chunks:
            out.setdefault((c.origin, c.source), []).append(c)
        for v in out.values():
            v.sort(key=lambda c: c.chunk_index)
        return out

    @property
    def origins(self) -> set[str]:
        return {c.origin for c in self.chunks}

    @property
    def sources(self) -> list[str]:
        return sorted({c.source for c in self.chunks})


# words code starts with that name no product: shell tools, Python keywords and builtins
_NOT_PRODUCTS = frozenset(
    {"pip", "uv", "python", "npm", "git", "curl", "docker", "kubectl", "export", "cd", "make", "bash", "self"}
    | {k.lower() for k in keyword.kwlist}
    | {b.lower() for b in dir(builtins) if not b.startswith("_")}
)
_IDENT = re.compile(r"\b([A-Za-z][A-Za-z0-9]{2,20}_[A-Za-z0-9_]+)\b")
_CODE_SPAN = re.compile(r"`([A-Za-z][A-Za-z0-9_-]{2,30})(?=[ .`(/:])")


def _product(chunks: list[CorpusChunk]) -> str:
    """The name the documentation is about: the word that most documents' code starts with
    (``flywheel up``, ``mlflow.set_tracking_uri``, ``pydantic_ai.Agent``), as the prose spells it
    most often ("MLflow", "Pydantic AI"); else the most frequent distinctive title/heading word."""
    docs: Counter[str] = Counter()
    seen: set[tuple[str, str]] = set()
    for c in chunks:
        words = _CODE_SPAN.findall(c.text)
        # an identifier's first part names its owner: ACME_PORT, mlflow.set_tracking_uri, flywheel-docs
        words += [w.split("_")[0] for w in _IDENT.findall(c.text)]
        for w in words:
            low = w.lower()
            if low in _COMMON or low in _NOT_PRODUCTS:
                continue
            if (low, c.source) not in seen:
                seen.add((low, c.source))
                docs[low] += 1
    n_docs = len({c.source for c in chunks}) or 1
    if docs:
        word, df = docs.most_common(1)[0]
        if df >= max(2, n_docs * 0.15):
            pattern = re.compile(
                r"\b" + r"[ _-]?".join(map(re.escape, re.split(r"[_-]", word))) + r"\b", re.I
            )
            forms = Counter(m.group(0) for c in chunks[:3000] for m in pattern.finditer(_strip_code(c.text)))
            if forms:
                return forms.most_common(1)[0][0]
            return word
    forms_t: dict[str, Counter[str]] = {}
    tdocs: Counter[str] = Counter()
    for c in chunks:
        for w in set(_WORD.findall(f"{c.title} {c.headings}")):
            low = w.lower().strip(".-")
            if low in _COMMON or len(low) < 3:
                continue
            forms_t.setdefault(low, Counter())[w.strip(".-")] += 1
            tdocs[low] += 1
    if not tdocs:
        return ""
    best = tdocs.most_common(1)[0][0]
    return forms_t[best].most_common(1)[0][0]


def _strip_code(text: str) -> str:
    return re.sub(r"`[^`]*`", " ", re.sub(r"(?ms)^[ \t]*```.*?^[ \t]*```", " ", text))


def read_corpus(index: Any, origins: list[str] | None = None) -> Corpus:
    """Every chunk of the index (of ``origins`` when given), with the corpus's vocabulary."""
    rows = index.iter_rows(["id", "origin", "source", "title", "headings", "text", "chunk_index"])
    chunks = [
        CorpusChunk(
            id=r["id"],
            source=r["source"],
            title=r.get("title") or "",
            headings=r.get("headings") or "",
            text=r.get("text") or "",
            chunk_index=int(r.get("chunk_index") or 0),
            origin=r.get("origin") or "",
        )
        for r in rows
        if origins is None or r.get("origin") in origins
    ]
    chunks.sort(key=lambda c: (c.source, c.chunk_index))
    text = " ".join(c.text for c in chunks[:2000])
    secrets = [s for s, _ in Counter(_SECRET.findall(text)).most_common(12)]
    settings = [s for s, _ in Counter(_SETTING.findall(text)).most_common(40) if s not in secrets][:20]
    cjk = sum(1 for c in chunks if len(_CJK.findall(c.text)) > len(c.text) * 0.1)
    return Corpus(
        chunks=chunks,
        product=_product(chunks),
        secrets=secrets,
        settings=settings,
        lang="ja" if chunks and cjk > len(chunks) * 0.3 else "en",
    )


def origin_keys(settings: Any, sources: list[str]) -> list[str]:
    """The ingest origins (absolute folders, URLs) that ``sources`` name, as the index records them."""
    from flywheel.knowledge import resolve_origins
    from flywheel.web import FetchOptions

    return [o.key for o in resolve_origins(list(sources), FetchOptions.from_settings(settings))]
