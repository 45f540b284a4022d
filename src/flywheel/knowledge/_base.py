"""KnowledgeBase: the configured embedder + index, opened lazily, with a search that cites sources."""

from __future__ import annotations

import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from functools import cached_property

from flywheel.config import Settings
from flywheel.errors import FlywheelError
from flywheel.knowledge._embeddings import Embedder, get_embedder
from flywheel.knowledge._index import DocIndex, Hit, fuse

__all__ = ["KnowledgeBase", "SearchResult"]

DEFAULT_TOP_K = 5
# scripts an English-only embedding model cannot read (its ranking of such a question is noise)
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af]")


class SearchResult(list[Hit]):
    """Hits plus how long embedding and searching took (for traces and benchmarks)."""

    embed_ms: float = 0.0
    search_ms: float = 0.0


class KnowledgeBase:
    def __init__(self, settings: Settings, embedder: Embedder | None = None) -> None:
        self.settings = settings
        self._embedder = embedder
        self._lock = threading.Lock()
        self._ready = False
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="bm25")

    @cached_property
    def embedder(self) -> Embedder:
        return self._embedder or get_embedder(self.settings)

    @cached_property
    def index(self) -> DocIndex:
        token = self.settings.milvus_token.get_secret_value() if self.settings.milvus_token else None
        return DocIndex(
            self.settings.index_uri, self.settings.collection, self.embedder.dim, token, self.embedder.name
        )

    @cached_property
    def companion(self) -> tuple[Embedder, DocIndex] | None:
        """The multilingual companion (``companion_embedding_model``): its embedder and collection."""
        name = self.settings.companion_embedding_model
        if not name:
            return None
        embedder = get_embedder(
            self.settings.model_copy(update={"embedding_model": name, "embedding_base_url": None})
        )
        token = self.settings.milvus_token.get_secret_value() if self.settings.milvus_token else None
        slug = "".join(c if c.isalnum() else "_" for c in embedder.name.lower())
        collection = f"{self.settings.collection}__{slug}"[:255]
        return embedder, DocIndex(self.settings.index_uri, collection, embedder.dim, token, embedder.name)

    @property
    def relevance_model(self) -> str:
        """The embedding model whose cosine the hits carry (and whose abstention threshold applies)."""
        return self.companion[0].name if self.companion else self.embedder.name

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
        # BM25 needs no vector: it runs in the Milvus process while the query is being embedded
        sparse = self._pool.submit(self.index.sparse_hits, query, limit) if mode == "hybrid" else None
        vector = self.embedder.embed_query(query)
        companion = None
        if self.companion:
            embedder, index = self.companion
            companion = index.dense_hits(embedder.embed_query(query), limit)
        t1 = time.perf_counter()
        dense = self.index.dense_hits(vector, limit)
        if companion is not None and getattr(self.embedder, "english_only", False) and _CJK.search(query):
            dense = []  # an English-only model's ranking of a Japanese/Chinese/Korean question is noise
        result = SearchResult(fuse(dense, sparse.result() if sparse else [], k, companion=companion))
        result.embed_ms = (t1 - t0) * 1000
        result.search_ms = (time.perf_counter() - t1) * 1000
        return result
