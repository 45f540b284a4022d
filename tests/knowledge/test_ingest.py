"""Incremental ingest into a real Milvus Lite file: unchanged → nothing embedded; deleted → removed."""

from __future__ import annotations

from pathlib import Path

import pytest

from flywheel.config import load_settings
from flywheel.errors import FlywheelError, InputError
from flywheel.knowledge import IngestOptions, KnowledgeBase, ingest
from tests.fakes import HashEmbedder


def _docs(folder: Path) -> None:
    folder.mkdir()
    (folder / "retention.md").write_text("# Retention\n\nBy default, traces are retained indefinitely. " * 3)
    (folder / "aliases.mdx").write_text(
        "---\ntitle: Aliases\n---\n\n# Aliases\n\nA model alias is a mutable named reference to a version. "
        * 3
    )
    (folder / "sub").mkdir()
    (folder / "sub" / "gateway.html").write_text(
        "<h1>Gateway</h1><p>The gateway listens on port 5010 and splits traffic for A/B tests.</p>"
    )
    (folder / "notes.bin").write_bytes(b"\x00\x01")  # not a document type: ignored


@pytest.fixture
def kb(tmp_path: Path) -> KnowledgeBase:
    settings = load_settings(data_dir=tmp_path / "data", collection="test_docs")
    return KnowledgeBase(settings, embedder=HashEmbedder())


def test_ingest_is_incremental(tmp_path: Path, kb: KnowledgeBase) -> None:
    folder = tmp_path / "docs"
    _docs(folder)
    first = ingest(kb.settings, IngestOptions([str(folder)]), kb=kb)
    assert (first.documents, first.added, first.skipped) == (3, 3, 0)
    assert first.total_chunks_in_index == first.chunks > 0
    embedded = kb.embedder.embedded  # type: ignore[attr-defined]

    again = ingest(kb.settings, IngestOptions([str(folder)]), kb=kb)
    assert (again.added, again.updated, again.skipped, again.embedded_chunks) == (0, 0, 3, 0)
    assert kb.embedder.embedded == embedded  # type: ignore[attr-defined]  # nothing re-embedded

    (folder / "retention.md").write_text(
        "# Retention\n\nTraces are kept for 30 days unless configured otherwise."
    )
    changed = ingest(kb.settings, IngestOptions([str(folder)]), kb=kb)
    assert (changed.updated, changed.skipped) == (1, 2)

    (folder / "sub" / "gateway.html").unlink()
    removed = ingest(kb.settings, IngestOptions([str(folder)]), kb=kb)
    assert removed.removed == 1
    sources = {h.source for h in kb.search("gateway port 5010 traffic", k=10)}
    assert "sub/gateway.html" not in sources
    assert {"retention.md", "aliases.mdx"} <= sources


def test_search_finds_the_right_page_with_its_metadata(tmp_path: Path, kb: KnowledgeBase) -> None:
    folder = tmp_path / "docs"
    _docs(folder)
    ingest(kb.settings, IngestOptions([str(folder)]), kb=kb)
    hit = kb.search("what is a model alias", k=3)[0]
    assert hit.source == "aliases.mdx" and hit.title == "Aliases" and hit.headings == "Aliases"
    assert hit.dense_score > 0


def test_missing_source_is_a_clear_error_and_writes_nothing(tmp_path: Path, kb: KnowledgeBase) -> None:
    with pytest.raises(InputError) as info:
        ingest(kb.settings, IngestOptions([str(tmp_path / "nope")]), kb=kb)
    assert "does not exist" in info.value.render("en")
    assert not kb.index.exists()


def test_searching_an_empty_index_says_to_ingest(kb: KnowledgeBase) -> None:
    with pytest.raises(FlywheelError) as info:
        kb.search("anything")
    assert "flywheel ingest" in info.value.render("en")
