"""The vector index: Milvus (Lite file by default, a server by URI) with dense + BM25 hybrid search.

Pitfalls of Milvus Lite handled here: search before flush() is slow (1.4–1.7 s/query), close()
does not flush, and a fresh index must be released and loaded before it is fast; so every write
ends with :meth:`DocIndex.commit`. Metric is COSINE with explicit index params (LangChain's L2
default and its BM25 defaults are rejected by Lite).
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from flywheel.errors import FlywheelError, ServiceUnavailableError
from flywheel.knowledge._documents import Chunk
from flywheel.knowledge._units import FIELD_CHARS

__all__ = ["DocIndex", "Hit", "fuse"]

_MAX_TEXT = 16000
IVF_FROM = 20_000  # chunks: exact FLAT search below, IVF_FLAT from here on (DocIndex._tune_dense_index)


def ivf_lists(rows: int) -> int:
    """IVF lists for ``rows`` vectors: ~4·√n, between 64 and 4096."""
    return int(min(4096, max(64, 4 * rows**0.5)))


def nprobe(nlist: int) -> int:
    """Lists searched per query: 1/8 of them, at least 16 (recall over speed)."""
    return max(16, nlist // 8)


RETRIES = 2
_GRPC_OPTIONS = {"grpc.keepalive_time_ms": 300_000, "grpc.keepalive_permit_without_calls": False}


@dataclass
class Hit:
    """One search result: the chunk's text and where it came from, with its scores."""

    id: str
    score: float  # fused (RRF) score used for ranking
    dense_score: float  # cosine similarity of the query and the chunk (0 when only BM25 found it)
    text: str
    title: str
    headings: str
    source: str

    def as_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


_EMBEDDER_KEY = "flywheel.embedder"
_SCHEMA_KEY = "flywheel.schema"
_NLIST_KEY = "flywheel.dense_nlist"  # 0 or absent: FLAT
# 2: every chunk stores its units' vectors (knowledge/_units.py); 1 (no property): it does not
SCHEMA_VERSION = 2


class DocIndex:
    """One collection of chunks. Thread-safe for searching."""

    def __init__(
        self, uri: str, collection: str, dim: int, token: str | None = None, embedder: str | None = None
    ) -> None:
        os.environ.setdefault("GRPC_VERBOSITY", "NONE")  # keepalive chatter of the gRPC core
        from pymilvus import MilvusClient

        self.uri = uri
        self.collection = collection
        self.dim = dim
        self.embedder = embedder  # recorded in the collection: vector spaces are never mixed
        if not uri.startswith(("http://", "https://", "tcp://")):
            Path(uri).parent.mkdir(parents=True, exist_ok=True)
        self._token = token or ""
        self._client = self._connect(MilvusClient)
        self._lock = threading.Lock()
        self._loaded = False

    def _connect(self, client_cls: Any = None) -> Any:
        if client_cls is None:
            from pymilvus import MilvusClient

            client_cls = MilvusClient
        try:
            # Milvus Lite's gRPC server refuses pymilvus' default 10 s keepalive pings ("too many
            # pings") and then drops the connection of a long-lived process: ping every 5 minutes.
            return client_cls(uri=self.uri, token=self._token, grpc_options=_GRPC_OPTIONS)
        except Exception as exc:  # pymilvus raises MilvusException and bare errors alike
            raise ServiceUnavailableError("index_unavailable", url=self.uri, detail=str(exc)[:300]) from exc

    def _read(self, op: Callable[[], Any]) -> Any:
        """Run a read and heal what a Milvus restart breaks: a collection back in state 'released'
        is loaded again, a dropped connection is re-opened; bounded retries, then a clear error."""
        last: Exception | None = None
        for attempt in range(RETRIES + 1):
            try:
                with self._lock:
                    self._load()
                return op()
            except ServiceUnavailableError:
                raise
            except Exception as exc:  # MilvusException, grpc errors, connection resets alike
                last = exc
                text = str(exc).lower()
                with self._lock:
                    self._loaded = False  # "released" / "not loaded": load again before retrying
                    if not any(w in text for w in ("released", "not loaded", "load")):
                        with contextlib.suppress(Exception):
                            self._client.close()
                        with contextlib.suppress(ServiceUnavailableError):
                            self._client = self._connect()
                if attempt < RETRIES:
                    time.sleep(0.2 * (attempt + 1))
        raise ServiceUnavailableError("index_unavailable", url=self.uri, detail=str(last)[:300]) from last

    def _load(self) -> None:
        """A reopened Milvus Lite collection starts 'released': load it once per process."""
        if not self._loaded:
            self._client.load_collection(self.collection)
            self._loaded = True

    # -- schema
    def exists(self) -> bool:
        return bool(self._client.has_collection(self.collection))

    def ensure(self) -> None:
        from pymilvus import DataType, Function, FunctionType

        if self.exists():
            self.check_compatible()
            self._load()
            return
        c = self._client
        schema = c.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("id", DataType.VARCHAR, is_primary=True, max_length=64)
        schema.add_field("origin", DataType.VARCHAR, max_length=2048)
        schema.add_field("source", DataType.VARCHAR, max_length=2048)
        schema.add_field("title", DataType.VARCHAR, max_length=1024)
        schema.add_field("headings", DataType.VARCHAR, max_length=2048)
        schema.add_field("chunk_index", DataType.INT64)
        schema.add_field("doc_hash", DataType.VARCHAR, max_length=64)
        schema.add_field("text", DataType.VARCHAR, max_length=_MAX_TEXT)
        schema.add_field("search_text", DataType.VARCHAR, max_length=_MAX_TEXT, enable_analyzer=True)
        schema.add_field("dense", DataType.FLOAT_VECTOR, dim=self.dim)
        schema.add_field("sparse", DataType.SPARSE_FLOAT_VECTOR)
        schema.add_field("units", DataType.VARCHAR, max_length=FIELD_CHARS)
        schema.add_function(
            Function(
                name="bm25",
                function_type=FunctionType.BM25,
                input_field_names=["search_text"],
                output_field_names=["sparse"],
            )
        )
        index = c.prepare_index_params()
        index.add_index("dense", index_type="FLAT", metric_type="COSINE")
        index.add_index("sparse", index_type="SPARSE_INVERTED_INDEX", metric_type="BM25")
        c.create_collection(self.collection, schema=schema, index_params=index)
        props = {_SCHEMA_KEY: str(SCHEMA_VERSION)}
        if self.embedder:  # a collection property (Milvus Lite keeps no schema description)
            props[_EMBEDDER_KEY] = self.embedder
        c.alter_collection_properties(self.collection, properties=props)
        self._loaded = True
        self.__dict__["schema_version"] = SCHEMA_VERSION

    @cached_property
    def schema_version(self) -> int:
        """2 when chunks store their units' vectors, 1 for an index built before they did (it keeps
        working: the grounded policy then embeds sentences per question; ``--rebuild`` upgrades)."""
        desc = self._client.describe_collection(self.collection)
        if not any(f.get("name") == "units" for f in desc.get("fields", [])):
            return 1
        return int((desc.get("properties") or {}).get(_SCHEMA_KEY) or SCHEMA_VERSION)

    def built_with(self) -> str | None:
        """The embedding model the collection was built with (None: built before this was recorded)."""
        props = self._client.describe_collection(self.collection).get("properties") or {}
        return props.get(_EMBEDDER_KEY) or None

    def check_compatible(self) -> None:
        """The same vector space: the same dimension and, when recorded, the same embedding model."""
        self._check_dim()
        have = self.built_with()
        if self.embedder and have and have.lower() != self.embedder.lower():
            raise FlywheelError(
                "index_embedder_mismatch", collection=self.collection, have=have, want=self.embedder
            )

    def _check_dim(self) -> None:
        desc = self._client.describe_collection(self.collection)
        for field in desc.get("fields", []):
            if field.get("name") == "dense":
                have = int(field.get("params", {}).get("dim", self.dim))
                if have != self.dim:
                    raise FlywheelError(
                        "index_dim_mismatch", collection=self.collection, have=have, dim=self.dim
                    )

    def drop(self) -> None:
        if self.exists():
            self._client.drop_collection(self.collection)
        self._loaded = False
        self.__dict__.pop("schema_version", None)

    def copy_to(self, collection: str) -> DocIndex:
        """A new collection beside this one holding the same chunks and vectors (BM25 is rebuilt
        from the text), e.g. for the red team to plant documents in without touching this one."""
        target = DocIndex(self.uri, collection, self.dim, self._token or None, self.embedder)
        target.drop()
        target.ensure()
        self._load()
        fields = [
            "id",
            "origin",
            "source",
            "title",
            "headings",
            "chunk_index",
            "doc_hash",
            "text",
            "search_text",
            "dense",
        ]
        if self.schema_version >= 2 and target.schema_version >= 2:
            fields.append("units")
        # Milvus Lite has no timestamp allocation: pymilvus warns once per iterator and goes on
        logging.getLogger("pymilvus.orm.iterator").setLevel(logging.ERROR)
        it = self._client.query_iterator(self.collection, batch_size=512, filter="", output_fields=fields)
        try:
            while batch := it.next():
                self._client.upsert(collection, [{k: row[k] for k in fields} for row in batch])
        finally:
            it.close()
        target.commit()
        return target

    def rows(self, fields: list[str], limit: int = 4000) -> list[dict[str, Any]]:
        """Up to ``limit`` chunks' ``fields`` (no vectors unless asked), in the index's order."""
        return self._read(
            lambda: self._client.query(
                self.collection, filter="chunk_index >= 0", output_fields=fields, limit=limit
            )
        )

    def texts(self, ids: list[str]) -> dict[str, str]:
        """id → text of the given chunks (those still in the index)."""
        if not ids:
            return {}
        quoted = ", ".join(_q(i) for i in ids)
        rows = self._read(
            lambda: self._client.query(
                self.collection, filter=f"id in [{quoted}]", output_fields=["id", "text"], limit=len(ids)
            )
        )
        return {r["id"]: r["text"] for r in rows}

    def iter_rows(self, fields: list[str], batch: int = 1000) -> Any:
        """Every chunk's ``fields``, batch by batch (a query iterator: no result-window limit, which
        a Milvus server caps at 16,384 rows per query)."""
        self._load()
        # Milvus Lite has no timestamp allocation: pymilvus warns once per iterator and goes on
        logging.getLogger("pymilvus.orm.iterator").setLevel(logging.ERROR)
        logging.getLogger("grpc._server").setLevel(logging.CRITICAL)
        it = self._client.query_iterator(self.collection, batch_size=batch, filter="", output_fields=fields)
        try:
            while rows := it.next():
                yield from rows
        finally:
            it.close()

    def unit_fields(self, ids: list[str]) -> dict[str, str]:
        """id → the stored ``units`` field of the given chunks ({} for a schema-1 index)."""
        if not ids or self.schema_version < 2:
            return {}
        quoted = ", ".join(_q(i) for i in ids)
        rows = self._read(
            lambda: self._client.query(
                self.collection, filter=f"id in [{quoted}]", output_fields=["id", "units"], limit=len(ids)
            )
        )
        return {r["id"]: r.get("units") or "" for r in rows}

    def collections(self, prefix: str = "") -> list[str]:
        """The names of the collections on this index's server that start with ``prefix``."""
        return [c for c in self._client.list_collections() if c.startswith(prefix)]

    def drop_collection(self, name: str) -> None:
        """Drop another collection of this server (e.g. one a killed red-team run left behind)."""
        if self._client.has_collection(name):
            self._client.drop_collection(name)

    # -- writes
    def add(
        self, chunks: list[Chunk], vectors: list[list[float]], origin: str, units: list[str] | None = None
    ) -> None:
        """Upsert chunks with their vectors; ``units``: each chunk's encoded unit vectors (schema 2)."""
        rows = [
            {
                "id": ch.id,
                "origin": origin,
                "source": ch.source[:2000],
                "title": ch.title[:1000],
                "headings": ch.heading_path[:2000],
                "chunk_index": ch.index,
                "doc_hash": ch.doc_hash,
                "text": ch.text[:_MAX_TEXT],
                "search_text": ch.embedding_text()[:_MAX_TEXT],
                "dense": vec,
            }
            for ch, vec in zip(chunks, vectors, strict=True)
        ]
        if self.schema_version >= 2:
            for row, field in zip(rows, units or [""] * len(rows), strict=True):
                row["units"] = field
        for i in range(0, len(rows), 256):
            self._client.upsert(self.collection, rows[i : i + 256])

    def delete_source(self, origin: str, source: str) -> None:
        self._client.delete(self.collection, filter=f"origin == {_q(origin)} and source == {_q(source)}")

    def commit(self) -> None:
        """Flush, then release + load so the index is built and searches are fast (and the dense
        index suits the collection's size: :meth:`_tune_dense_index`)."""
        self._client.flush(self.collection)
        self._client.release_collection(self.collection)
        self._tune_dense_index()
        # Milvus Lite sometimes loads a segment whose index file it has not finished writing ("No
        # data left in file", "file seems not fully written"): seen in about 1 of 30 ingests here;
        # a moment later the same load succeeds
        for attempt in range(RETRIES + 2):
            try:
                self._client.load_collection(self.collection)
                break
            except Exception as exc:  # MilvusException
                if attempt == RETRIES + 1:
                    raise ServiceUnavailableError(
                        "index_unavailable", url=self.uri, detail=str(exc)[:300]
                    ) from exc
                time.sleep(0.5 * (attempt + 1))
                with contextlib.suppress(Exception):
                    self._client.release_collection(self.collection)
        self._loaded = True

    # -- reads
    def doc_hashes(self, origin: str) -> dict[str, str]:
        """source → doc_hash of every document of ``origin`` in the index."""
        self._load()
        rows = self._client.query(
            self.collection,
            filter=f"origin == {_q(origin)} and chunk_index == 0",
            output_fields=["source", "doc_hash"],
            limit=16384,
        )
        return {r["source"]: r["doc_hash"] for r in rows}

    def count(self) -> int:
        if not self.exists():
            return 0
        self._load()
        rows = self._client.query(self.collection, filter="", output_fields=["count(*)"])
        return int(rows[0]["count(*)"]) if rows else 0

    _FIELDS = ("text", "title", "headings", "source")

    def _search(
        self, data: list[float] | str, field: str, metric: str, limit: int, params: dict | None = None
    ) -> list[dict]:
        return self._read(
            lambda: self._client.search(
                self.collection,
                [data],
                anns_field=field,
                limit=limit,
                output_fields=list(self._FIELDS),
                search_params={"metric_type": metric, **({"params": params} if params else {})},
            )[0]
        )

    def dense_hits(self, vector: list[float], limit: int) -> list[dict]:
        nlist = self.dense_nlist
        return self._search(vector, "dense", "COSINE", limit, {"nprobe": nprobe(nlist)} if nlist else None)

    @cached_property
    def dense_nlist(self) -> int:
        """0 for the exact FLAT index, else the IVF_FLAT index's number of lists (a collection
        property: Milvus Lite's index description omits the build parameters)."""
        try:
            props = self._client.describe_collection(self.collection).get("properties") or {}
        except Exception:  # a server that cannot describe it: exact search
            return 0
        return int(props.get(_NLIST_KEY) or 0)

    def _tune_dense_index(self) -> None:
        """FLAT (exact) while the collection is small; IVF_FLAT from :data:`IVF_FROM` chunks on, with
        about 4·√n lists, rebuilt when the collection has grown 4× since. Measured with Milvus Lite
        here (bench/ingest.py): FLAT costs ~3 µs per vector per query (8 ms at 2k chunks, 30 ms at
        10k, linear), IVF_FLAT with 128 lists and 32 probed 7–10 ms at 10k. Called while released."""
        try:
            rows = int(self._client.get_collection_stats(self.collection).get("row_count", 0))
            desc = self._client.describe_index(self.collection, "dense") or {}
        except Exception:  # stats or index description unavailable: leave the index as it is
            return
        kind = str(desc.get("index_type", "FLAT")).upper()
        nlist = self.dense_nlist if kind == "IVF_FLAT" else 0
        want = ivf_lists(rows) if rows >= IVF_FROM else 0
        if (kind == "FLAT" and not want) or (kind == "IVF_FLAT" and want and want < 2 * nlist):
            return
        self._client.drop_index(self.collection, "dense")
        index = self._client.prepare_index_params()
        if want:
            index.add_index("dense", index_type="IVF_FLAT", metric_type="COSINE", params={"nlist": want})
        else:
            index.add_index("dense", index_type="FLAT", metric_type="COSINE")
        self._client.create_index(self.collection, index)
        self._client.alter_collection_properties(self.collection, properties={_NLIST_KEY: str(want)})
        self.__dict__.pop("dense_nlist", None)

    def sparse_hits(self, query: str, limit: int) -> list[dict]:
        return self._search(query, "sparse", "BM25", limit) if query.strip() else []

    def ping(self) -> bool:
        """A real, cheap query (readiness): one row of the collection."""
        self._read(lambda: self._client.query(self.collection, filter="", output_fields=["id"], limit=1))
        return True

    def search(
        self, query: str, vector: list[float], k: int = 5, mode: str = "hybrid", candidates: int = 20
    ) -> list[Hit]:
        """Top-k chunks. ``hybrid`` fuses dense (cosine) and BM25 rankings with reciprocal rank fusion."""
        limit = max(k, candidates)
        sparse = self.sparse_hits(query, limit) if mode == "hybrid" else []
        return fuse(self.dense_hits(vector, limit), sparse, k)

    def close(self) -> None:
        self._client.close()


def _q(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def fuse(
    dense: list[dict], sparse: list[dict], k: int, rrf_k: int = 60, companion: list[dict] | None = None
) -> list[Hit]:
    """Reciprocal rank fusion of the dense and BM25 result lists (keeps the cosine score). With a
    ``companion`` ranking (the multilingual embedding's), it is fused too and its cosine becomes the
    hits' score: the one the abstention threshold of that model is calibrated on."""
    fused: dict[str, float] = {}
    entity: dict[str, dict] = {}
    dense_score: dict[str, float] = {}
    for rank, h in enumerate(dense):
        fused[h["id"]] = fused.get(h["id"], 0.0) + 1.0 / (rrf_k + rank + 1)
        entity[h["id"]] = h["entity"]
        dense_score[h["id"]] = float(h["distance"])
    if companion is not None:
        dense_score = {}
        for rank, h in enumerate(companion):
            fused[h["id"]] = fused.get(h["id"], 0.0) + 1.0 / (rrf_k + rank + 1)
            entity.setdefault(h["id"], h["entity"])
            dense_score[h["id"]] = float(h["distance"])
    for rank, h in enumerate(sparse):
        fused[h["id"]] = fused.get(h["id"], 0.0) + 1.0 / (rrf_k + rank + 1)
        entity.setdefault(h["id"], h["entity"])
    best = sorted(fused, key=lambda i: -fused[i])[:k]
    return [
        Hit(
            i,
            fused[i],
            dense_score.get(i, 0.0),
            entity[i]["text"],
            entity[i]["title"],
            entity[i]["headings"],
            entity[i]["source"],
        )
        for i in best
    ]
