"""Markdown/MDX-aware chunking: strip MDX noise, split on headings, keep the heading path.

Sections longer than ``max_chars`` are split on paragraph boundaries (then lines, then hard cuts),
with the heading path repeated on every piece. Code fences are never mistaken for headings.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from flywheel.knowledge._documents import Chunk, Document

__all__ = ["ChunkOptions", "chunk_document", "clean_mdx", "split_frontmatter"]

DEFAULT_MAX_CHARS = 1200
DEFAULT_MIN_CHARS = 80

_FRONTMATTER = re.compile(r"\A---\s*\n(.*?)\n---\s*\n", re.S)
_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
_FENCE = re.compile(r"^\s*(```|~~~)")
_TABLE_SEP = re.compile(r"\|?[\s:|-]*-[\s:|-]*\|?")


@dataclass(frozen=True)
class ChunkOptions:
    max_chars: int = DEFAULT_MAX_CHARS
    min_chars: int = DEFAULT_MIN_CHARS


def split_frontmatter(text: str) -> tuple[dict[str, str], str]:
    """YAML-ish front matter (key: value lines) and the body after it."""
    m = _FRONTMATTER.match(text)
    if not m:
        return {}, text
    meta = {}
    for line in m.group(1).splitlines():
        if ":" in line and not line.startswith((" ", "\t")):
            key, _, value = line.partition(":")
            meta[key.strip()] = value.strip().strip("\"'")
    return meta, text[m.end() :]


def _strip_jsx(line: str) -> str:
    # <APILink fn="mlflow.x">text</APILink> → text ; <Foo bar="…" /> → "" ; {/* c */} → ""
    line = re.sub(r"\{/\*.*?\*/\}", "", line)
    # <APILink fn="mlflow.x" /> names an API in the sentence: keep the name, as code
    line = re.sub(r"<[A-Z][\w.]*\b[^<>]*\bfn=\"([^\"]+)\"[^<>]*/>", r"`\1`", line)
    line = re.sub(r"<([A-Z][\w.]*)\b[^<>]*/>", "", line)
    line = re.sub(r"</?[A-Z][\w.]*\b[^<>]*>", "", line)
    line = re.sub(r"</?(div|span|br|img|details|summary|p|center|sup|sub)\b[^<>]*>", "", line)
    line = re.sub(r"!\[([^\]]*)\]\([^)]*\)", "", line)  # images: no text value
    line = re.sub(r"\[([^\]]+)\]\([^)]*\)", r"\1", line)  # links: keep the words
    return line


def clean_mdx(body: str) -> str:
    """Remove import/export lines, JSX components, admonition fences and images; keep code."""
    out: list[str] = []
    in_code = False
    in_jsx_attr = 0
    for raw in body.splitlines():
        if _FENCE.match(raw):
            in_code = not in_code
            out.append(raw.strip())
            continue
        if in_code:
            out.append(raw)
            continue
        line = raw
        stripped = line.strip()
        if re.match(r"^(import|export)\s", stripped):
            continue
        # a multi-line JSX opening tag: skip until it closes
        if in_jsx_attr:
            if stripped.endswith(">"):
                in_jsx_attr = 0
            continue
        if re.match(r"^<[A-Z][\w.]*\b[^>]*$", stripped):
            in_jsx_attr = 1
            continue
        if re.match(r"^:::", stripped):  # admonitions: keep the title words, drop the fence
            title = stripped.lstrip(":").split(None, 1)
            if len(title) == 2:
                out.append(title[1])
            continue
        line = _strip_jsx(line)
        out.append(line.strip() if not line.startswith(("    ", "\t", "- ", "* ")) else line.rstrip())
    text = "\n".join(out)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def _sections(text: str) -> list[tuple[list[str], str]]:
    """(heading path, body) for every section, in order."""
    sections: list[tuple[list[str], str]] = []
    path: list[tuple[int, str]] = []
    buf: list[str] = []
    in_code = False

    def flush() -> None:
        body = "\n".join(buf).strip()
        if body:
            sections.append(([h for _, h in path], body))
        buf.clear()

    for line in text.splitlines():
        if _FENCE.match(line):
            in_code = not in_code
        m = None if in_code else _HEADING.match(line)
        if m:
            flush()
            level = len(m.group(1))
            path = [(lvl, h) for lvl, h in path if lvl < level] + [(level, m.group(2).strip())]
            continue
        buf.append(line)
    flush()
    return sections


def _split_long(body: str, max_chars: int) -> list[str]:
    if len(body) <= max_chars:
        return [body]
    units = (
        unit
        for para in _paragraphs(body)
        for unit in ([para] if len(para) <= max_chars else _split_block(para, max_chars))
    )
    return _pack(units, max_chars, "\n\n")


def _paragraphs(body: str) -> list[str]:
    """Paragraphs split at blank lines, except inside a fenced code block: a block is one
    paragraph, blank lines and all (cut at a blank line, its halves would be unbalanced fences)."""
    paras: list[str] = []
    current: list[str] = []
    fence = ""
    for line in body.splitlines():
        m = _FENCE.match(line)
        if m and not fence:
            fence = m.group(1)
        elif m and line.strip().startswith(fence):
            fence = ""
        if not fence and not line.strip() and not m:
            if current:
                paras.append("\n".join(current))
            current = []
            continue
        current.append(line)
    if current:
        paras.append("\n".join(current))
    return paras


def _split_block(para: str, max_chars: int) -> list[str]:
    """A paragraph longer than ``max_chars``: a code block is cut between lines and every piece
    closes and reopens its fence; prose is cut by lines (:func:`_hard_split`)."""
    lines = para.splitlines()
    m = _FENCE.match(lines[0]) if lines else None
    if (
        not m
        and len(lines) > 2
        and lines[0].lstrip().startswith("|")
        and _TABLE_SEP.fullmatch(lines[1].strip())
    ):
        head = "\n".join(lines[:2])  # a long table: every piece repeats its header
        budget = max(40, max_chars - len(head) - 1)
        return [f"{head}\n{piece}" for piece in _hard_split("\n".join(lines[2:]), budget)]
    if not m:
        return _hard_split(para, max_chars)
    opening, fence = lines[0], m.group(1)
    inner = lines[1:-1] if len(lines) > 1 and lines[-1].strip().startswith(fence) else lines[1:]
    budget = max(40, max_chars - len(opening) - len(fence) - 2)
    return [f"{opening}\n{piece}\n{fence}" for piece in _hard_split("\n".join(inner), budget)]


def _hard_split(text: str, max_chars: int) -> list[str]:
    """Lines packed up to ``max_chars``; a line longer than that is cut."""
    lines = (
        line[i : i + max_chars] for line in text.splitlines() for i in range(0, max(len(line), 1), max_chars)
    )
    return _pack(lines, max_chars, "\n")


def _pack(units: Iterable[str], max_chars: int, sep: str) -> list[str]:
    """Join consecutive units with ``sep`` into pieces of at most ``max_chars`` (greedy)."""
    pieces: list[str] = []
    current = ""
    for unit in units:
        if current and len(current) + len(unit) + len(sep) > max_chars:
            pieces.append(current)
            current = unit
        else:
            current = f"{current}{sep}{unit}" if current else unit
    if current:
        pieces.append(current)
    return pieces


def chunk_document(doc: Document, options: ChunkOptions | None = None) -> list[Chunk]:
    """Split one (already cleaned) document into chunks that carry title, heading path and source."""
    opts = options or ChunkOptions()
    chunks: list[Chunk] = []
    pending: tuple[list[str], str] | None = None
    for headings, body in _sections(doc.text):
        # merge a tiny section into the next one so that no chunk is just a stub
        if pending:
            headings_prev, body_prev = pending
            body = f"{body_prev}\n\n{body}"
            headings = headings if len(headings) >= len(headings_prev) else headings_prev
            pending = None
        if len(body) < opts.min_chars:
            pending = (headings, body)
            continue
        for piece in _split_long(body, opts.max_chars):
            chunks.append(Chunk(doc.source, doc.title, headings, piece, len(chunks), doc.hash))
    if pending:
        headings, body = pending
        if chunks and chunks[-1].source == doc.source and len(chunks[-1].text) + len(body) <= opts.max_chars:
            chunks[-1].text += "\n\n" + body
        else:
            chunks.append(Chunk(doc.source, doc.title, headings, body, len(chunks), doc.hash))
    return chunks
