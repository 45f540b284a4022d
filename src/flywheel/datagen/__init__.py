"""Golden datasets from the documentation: generated from the ingested chunks, tied to them by
content digest, kept in step with them (status, refresh), and grown from production's gaps."""

from flywheel.datagen._corpus import Corpus, CorpusChunk, chunk_ref, read_corpus
from flywheel.datagen._generate import (
    Checker,
    GenerateOptions,
    GenerationReport,
    generate,
    make_generator,
)
from flywheel.datagen._offline import Candidate, OfflineGenerator
from flywheel.datagen._sync import corpus_for, dataset_origins, dataset_status

__all__ = [
    "Candidate",
    "Checker",
    "Corpus",
    "CorpusChunk",
    "GenerateOptions",
    "GenerationReport",
    "OfflineGenerator",
    "chunk_ref",
    "corpus_for",
    "dataset_origins",
    "dataset_status",
    "generate",
    "make_generator",
    "read_corpus",
]
