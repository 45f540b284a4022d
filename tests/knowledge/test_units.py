"""Sentence vectors computed at ingest and stored with the chunk (schema 2), read back by id; an
index without them keeps working (a warning, vectors embedded per question)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from flywheel.config import load_settings
from flywheel.knowledge import IngestOptions, KnowledgeBase, ingest, split_units, unit_key
from flywheel.knowledge._units import MAX_STORED, decode_unit_vectors, encode_unit_vectors
from tests.fakes import HashEmbedder

PAGE = (
    "# Retention\n\nTraces are kept forever by default. You can delete them.\n\n"
    "Run this to delete old traces:\n\n```python\nclient.delete_traces(max_timestamp_millis=t)\n```\n\n"
    "| setting | default |\n|---|---|\n| retention | forever |\n"
)


def test_encoding_round_trips_within_float16() -> None:
    rng = np.random.default_rng(0)
    vecs = rng.normal(size=(5, 384)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    keys = [unit_key(f"unit {i}") for i in range(5)]
    back = decode_unit_vectors(encode_unit_vectors(keys, vecs), 384)
    assert list(back) == keys
    assert min(float(back[k] @ vecs[i]) for i, k in enumerate(keys)) > 0.999
    many = encode_unit_vectors(list(range(200)), np.ones((200, 384), dtype=np.float32))
    assert len(many) <= 65_535 and len(decode_unit_vectors(many, 384)) == MAX_STORED
    assert decode_unit_vectors("", 384) == {} and decode_unit_vectors("u1:x:??", 384) == {}


def _kb(tmp_path: Path) -> tuple[KnowledgeBase, str]:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "retention.md").write_text(PAGE)
    settings = load_settings(
        data_dir=tmp_path / "data", collection="units_test", companion_embedding_model="off"
    )
    kb = KnowledgeBase(settings, embedder=HashEmbedder())
    report = ingest(settings, IngestOptions([str(folder)]), kb=kb)
    assert report.embedded_units >= 4
    (hit,) = kb.search("delete old traces", k=1)
    return kb, hit.id


def test_ingest_stores_every_units_vector(tmp_path: Path) -> None:
    kb, chunk_id = _kb(tmp_path)
    assert kb.index.schema_version == 2
    stored = kb.unit_vectors([chunk_id])[chunk_id]
    text = kb.index.texts([chunk_id])[chunk_id]
    units = split_units(text)
    assert {u.key for u in units} == set(stored)
    for u in units:  # the vector of the unit's own text, as the embedder gives it
        want = np.asarray(HashEmbedder().embed_query(u.text))
        assert float(stored[u.key] @ want) > 0.999


def test_an_index_without_sentence_vectors_still_answers(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from flywheel.agent import AgentConfig, DocsAgent

    kb, chunk_id = _kb(tmp_path)
    kb.index.__dict__["schema_version"] = 1  # as an index built before vectors were stored reads
    kb._units.clear()
    with caplog.at_level(logging.WARNING):
        assert kb.unit_vectors([chunk_id]) == {}
        agent = DocsAgent(kb.settings, AgentConfig(policy="grounded", min_relevance=0.0), kb=kb)
        answer = agent.ask("How do I delete old traces?")
    assert "delete" in answer.answer.lower()
    assert sum("--rebuild" in r.message for r in caplog.records) == 1  # said once
