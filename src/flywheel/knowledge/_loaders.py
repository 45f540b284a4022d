"""Loaders: folders of .md/.mdx/.html/.txt, single files, URLs and sitemap.xml → Documents.

Every Document's ``source`` is the path relative to the ingested folder (or the file name, or the
URL), which is what answers cite and what golden datasets name in ``metadata.source``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from flywheel.errors import InputError
from flywheel.knowledge._chunking import clean_mdx, split_frontmatter
from flywheel.knowledge._documents import Document
from flywheel.web import FetchOptions, html_title, html_to_markdown, safe_get

__all__ = ["LOADERS", "SUFFIXES", "Origin", "is_url", "load_file_text", "read_documents", "resolve_origins"]

SUFFIXES = {".md": "md", ".mdx": "mdx", ".markdown": "md", ".html": "html", ".htm": "html", ".txt": "txt"}
_SKIP_DIRS = {".git", "node_modules", "__pycache__", ".venv", "venv", "_build"}


def is_url(source: str) -> bool:
    return urlsplit(source).scheme in ("http", "https")


def _first_h1(text: str) -> str:
    m = re.search(r"^#\s+(.+)$", text, re.M)
    return m.group(1).strip() if m else ""


def load_file_text(raw: str, fmt: str, source: str) -> Document:
    """Parse raw text of a given format into a Document (front matter → title; MDX noise removed)."""
    if fmt == "html":
        title = html_title(raw)
        text = html_to_markdown(raw)
    elif fmt == "txt":
        text, title = raw.strip(), ""
    else:
        meta, body = split_frontmatter(raw)
        text = clean_mdx(body)
        title = meta.get("title", "") or meta.get("sidebar_label", "")
    return Document(source=source, text=text, title=title or _first_h1(text) or Path(source).stem, fmt=fmt)


@dataclass
class Origin:
    """One thing the user asked to ingest; documents it no longer yields are removed from the index."""

    key: str  # stable identity: absolute path or URL
    kind: str  # folder | file | url | sitemap
    list_documents: Callable[[], list[str]]  # names of the documents it yields (cheap)
    load: Callable[[str], Document]  # load one by name


def _folder(path: Path) -> Origin:
    def names() -> list[str]:
        found = []
        for p in sorted(path.rglob("*")):
            if (
                p.is_file()
                and p.suffix.lower() in SUFFIXES
                and not (_SKIP_DIRS & set(p.relative_to(path).parts))
            ):
                found.append(p.relative_to(path).as_posix())
        return found

    def load(name: str) -> Document:
        p = path / name
        return load_file_text(
            p.read_text(encoding="utf-8", errors="replace"), SUFFIXES[p.suffix.lower()], name
        )

    return Origin(str(path.resolve()), "folder", names, load)


def _file(path: Path) -> Origin:
    fmt = SUFFIXES.get(path.suffix.lower())
    if fmt is None:
        raise InputError("unsupported_document", path=path, suffixes=", ".join(sorted(SUFFIXES)))
    return Origin(
        str(path.resolve()),
        "file",
        lambda: [path.name],
        lambda name: load_file_text(path.read_text(encoding="utf-8", errors="replace"), fmt, path.name),
    )


def _url(url: str, fetch: FetchOptions) -> Origin:
    def load(name: str) -> Document:
        res = safe_get(name, fetch)
        if res.status >= 400:
            raise InputError("page_http_error", url=name, status=res.status)
        fmt = "html" if "html" in res.content_type or res.text.lstrip().startswith("<") else "md"
        return load_file_text(res.text, fmt, name)

    return Origin(url, "url", lambda: [url], load)


def _sitemap(url: str, fetch: FetchOptions) -> Origin:
    def names() -> list[str]:
        res = safe_get(url, fetch)
        return re.findall(r"<loc>\s*([^<\s]+)\s*</loc>", res.text)

    return Origin(url, "sitemap", names, _url(url, fetch).load)


LOADERS = {"folder": _folder, "file": _file, "url": _url, "sitemap": _sitemap}


def resolve_origins(sources: list[str], fetch: FetchOptions) -> Iterator[Origin]:
    for source in sources:
        if is_url(source):
            yield _sitemap(source, fetch) if source.rstrip("/").endswith(".xml") else _url(source, fetch)
            continue
        path = Path(source).expanduser()
        if not path.exists():
            raise InputError(
                "path_not_found",
                path=source,
                what={"en": "document source", "ja": "文書の取り込み元"},
                cwd=Path.cwd(),
            )
        yield _folder(path) if path.is_dir() else _file(path)


def read_documents(
    sources: list[str], fetch: FetchOptions | None = None, formats: frozenset[str] | None = None
) -> Iterator[Document]:
    """Every document of ``sources`` as ingest would read it (same suffixes, skipped folders and
    errors), optionally only of ``formats`` ("md", "mdx", "html", "txt"); names are relative to
    their folder."""
    for origin in resolve_origins(sources, fetch or FetchOptions()):
        for name in origin.list_documents():
            doc = origin.load(name)
            if formats is None or doc.fmt in formats:
                yield doc
