"""The dense index follows the collection's size: exact FLAT while small, IVF_FLAT once large."""

from __future__ import annotations

from pathlib import Path

import pytest

from flywheel.config import load_settings
from flywheel.knowledge import IngestOptions, KnowledgeBase, _index, ingest
from tests.fakes import HashEmbedder


def test_a_large_collection_switches_to_ivf_and_still_finds_its_chunks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    for i in range(12):
        (folder / f"p{i}.md").write_text(f"# Page {i}\n\nPage {i} explains setting number {i} in detail.\n")
    settings = load_settings(
        data_dir=tmp_path / "data", collection="ivf_test", companion_embedding_model="off"
    )
    kb = KnowledgeBase(settings, embedder=HashEmbedder())
    ingest(settings, IngestOptions([str(folder)]), kb=kb)
    assert kb.index.dense_nlist == 0  # small: exact search
    monkeypatch.setattr(_index, "IVF_FROM", 10)
    (folder / "p12.md").write_text("# Page 12\n\nPage 12 explains setting number 12 in detail.\n")
    ingest(settings, IngestOptions([str(folder)]), kb=kb)
    fresh = KnowledgeBase(settings, embedder=HashEmbedder())
    assert fresh.index.dense_nlist == _index.ivf_lists(13)
    assert fresh.search("setting number 7", k=3)[0].source == "p7.md"
