"""Knowledge: load documents, chunk them with their heading paths, embed, index, hybrid-search."""

from flywheel.knowledge._base import DEFAULT_TOP_K, KnowledgeBase, SearchResult
from flywheel.knowledge._chunking import ChunkOptions, chunk_document, clean_mdx, split_frontmatter
from flywheel.knowledge._citations import CITATION, cited_numbers, has_citation, strip_citations
from flywheel.knowledge._documents import Chunk, Document, content_hash
from flywheel.knowledge._embeddings import (
    MINILM_SHA256,
    Embedder,
    OpenAIEmbedder,
    SentenceTransformerEmbedder,
    facts_embedder,
    get_embedder,
    minilm_path,
    relevance_threshold,
    scoring_embedder,
)
from flywheel.knowledge._index import DocIndex, Hit
from flywheel.knowledge._ingest import IngestOptions, IngestReport, ingest
from flywheel.knowledge._loaders import is_url, load_file_text, read_documents, resolve_origins
from flywheel.knowledge._terms import STOPWORDS, key_terms, plain
from flywheel.knowledge._units import Unit, is_item, split_units, unit_key

__all__ = [
    "CITATION",
    "DEFAULT_TOP_K",
    "MINILM_SHA256",
    "STOPWORDS",
    "Chunk",
    "ChunkOptions",
    "DocIndex",
    "Document",
    "Embedder",
    "Hit",
    "IngestOptions",
    "IngestReport",
    "KnowledgeBase",
    "OpenAIEmbedder",
    "SearchResult",
    "SentenceTransformerEmbedder",
    "Unit",
    "chunk_document",
    "cited_numbers",
    "clean_mdx",
    "content_hash",
    "facts_embedder",
    "get_embedder",
    "has_citation",
    "ingest",
    "is_item",
    "is_url",
    "key_terms",
    "load_file_text",
    "minilm_path",
    "plain",
    "read_documents",
    "relevance_threshold",
    "resolve_origins",
    "scoring_embedder",
    "split_frontmatter",
    "split_units",
    "strip_citations",
    "unit_key",
]
