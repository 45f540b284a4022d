"""Retrieval on the MLflow docs corpus: recall@5, query latency vs numpy brute force, ingest speed.

Ingests ../shared/corpora/mlflow-docs into a fresh Milvus Lite file with the default embedder, then
for every golden question measures, interleaved so both see the same machine noise:
  - ours: KnowledgeBase.search (embed the query + hybrid dense/BM25 search in Milvus Lite);
  - baseline: the same query embedding + numpy brute-force cosine over the same vectors.
Writes bench/results/retrieval.json: summary.recall_at_5, summary.p50_ms,
summary.p50_ratio_vs_bruteforce, summary.ingest_seconds. Targets: recall@5 >= 0.90 (happy path),
p50 ratio <= 2.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench._util import pct, print_table, write_result  # noqa: E402

SHARED = ROOT.parent / "shared"
CORPUS = SHARED / "corpora" / "mlflow-docs"
GOLDEN = SHARED / "datasets" / "mlflow-docs-golden.json"
REPEATS = 5


def main() -> None:
    if not CORPUS.exists() or not GOLDEN.exists():
        print(f"skipped: {CORPUS} or {GOLDEN} is absent (../shared lives beside the project)")
        return
    from flywheel.config import load_settings
    from flywheel.knowledge import IngestOptions, KnowledgeBase, ingest

    gold = json.loads(GOLDEN.read_text())
    with tempfile.TemporaryDirectory() as tmp:
        settings = load_settings(data_dir=tmp, collection="bench_retrieval")
        kb = KnowledgeBase(settings)
        t0 = time.perf_counter()
        kb.embedder.embed_query("warm up")  # model load is not ingest time
        load_s = time.perf_counter() - t0
        report = ingest(settings, IngestOptions([str(CORPUS)], rebuild=True), kb=kb)

        # recall@5 on the happy-path items (source among the top-5 chunks' sources)
        happy = [g for g in gold if g["metadata"]["kind"] == "happy_path"]
        recall = {}
        for mode in ("hybrid", "dense"):
            found = [
                g["metadata"]["source"] in {h.source for h in kb.search(g["input"]["question"], 5, mode=mode)}
                for g in happy
            ]
            recall[mode] = sum(found) / len(found)

        # vectors for the brute-force baseline: exactly the ones in the index
        rows = kb.index._client.query(
            settings.collection, filter="", output_fields=["dense", "source"], limit=16384
        )
        matrix = np.asarray([r["dense"] for r in rows], dtype=np.float32)
        sources = [r["source"] for r in rows]

        def brute(q: str) -> list[str]:
            v = np.asarray(kb.embedder.embed_query(q), dtype=np.float32)
            top = np.argpartition(-(matrix @ v), 5)[:5]
            return [sources[i] for i in top]

        questions = [g["input"]["question"] for g in gold]
        ours_ms, dense_ms, base_ms = [], [], []
        for _ in range(REPEATS):
            for q in questions:
                t = time.perf_counter()
                kb.search(q, 5)
                ours_ms.append((time.perf_counter() - t) * 1000)
                t = time.perf_counter()
                kb.search(q, 5, mode="dense")
                dense_ms.append((time.perf_counter() - t) * 1000)
                t = time.perf_counter()
                brute(q)
                base_ms.append((time.perf_counter() - t) * 1000)
        brute_recall = sum(g["metadata"]["source"] in brute(g["input"]["question"]) for g in happy) / len(
            happy
        )

    summary = {
        "recall_at_5": round(recall["hybrid"], 3),
        "recall_at_5_dense_only": round(recall["dense"], 3),
        "recall_at_5_bruteforce": round(brute_recall, 3),
        "p50_ms": round(pct(ours_ms, 50), 2),
        "p95_ms": round(pct(ours_ms, 95), 2),
        "dense_only_p50_ms": round(pct(dense_ms, 50), 2),
        "bruteforce_p50_ms": round(pct(base_ms, 50), 2),
        "bruteforce_p95_ms": round(pct(base_ms, 95), 2),
        "p50_ratio_vs_bruteforce": round(pct(ours_ms, 50) / pct(base_ms, 50), 2),
        "dense_only_p50_ratio_vs_bruteforce": round(pct(dense_ms, 50) / pct(base_ms, 50), 2),
        "ingest_seconds": round(report.seconds, 1),
        "chunks": report.embedded_chunks,
        "chunks_per_second": round(report.embedded_chunks / report.seconds, 1),
        "documents": report.documents,
        "model_load_seconds": round(load_s, 1),
        "targets": {"recall_at_5": ">= 0.90", "p50_ratio_vs_bruteforce": "<= 2.0"},
    }
    print_table(
        "retrieval on mlflow-docs (25 golden questions x 5 repeats)",
        [
            (
                "hybrid (ours)",
                f"{summary['recall_at_5']:.2f}",
                f"{summary['p50_ms']:.1f}",
                f"{summary['p95_ms']:.1f}",
            ),
            (
                "dense only (ours)",
                f"{summary['recall_at_5_dense_only']:.2f}",
                f"{summary['dense_only_p50_ms']:.1f}",
                "-",
            ),
            (
                "numpy brute force",
                f"{summary['recall_at_5_bruteforce']:.2f}",
                f"{summary['bruteforce_p50_ms']:.1f}",
                f"{summary['bruteforce_p95_ms']:.1f}",
            ),
        ],
        ("search", "recall@5", "p50 ms", "p95 ms"),
    )
    print(
        f"\ningest: {report.documents} documents, {report.embedded_chunks} chunks in {report.seconds:.1f} s "
        f"({summary['chunks_per_second']} chunks/s); p50 ratio vs brute force {summary['p50_ratio_vs_bruteforce']}"
    )
    print(f"wrote {write_result('retrieval', summary, {'repeats': REPEATS, 'questions': len(questions)})}")


if __name__ == "__main__":
    main()
