"""Documents and chunks: the units that flow from loaders through chunking into the index."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

__all__ = ["Chunk", "Document", "content_hash"]


def content_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


@dataclass
class Document:
    """One page: where it came from (a path relative to the ingested folder, or a URL) and its text."""

    source: str
    text: str
    title: str = ""
    fmt: str = "md"  # md | mdx | html | txt

    @property
    def hash(self) -> str:
        return content_hash(self.fmt + "\0" + self.text)


@dataclass
class Chunk:
    """A piece of a document small enough to embed, with the heading path it sits under."""

    source: str
    title: str
    headings: list[str]
    text: str
    index: int
    doc_hash: str
    metadata: dict[str, str] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return hashlib.sha1(f"{self.source}\0{self.index}\0{self.doc_hash}".encode()).hexdigest()

    @property
    def heading_path(self) -> str:
        return " > ".join(self.headings)

    def embedding_text(self) -> str:
        """What is embedded and BM25-indexed: title and heading path give the chunk its context."""
        head = " > ".join(h for h in [self.title, *self.headings] if h)
        return f"{head}\n\n{self.text}" if head else self.text
