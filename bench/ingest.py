"""Ingest at the speed of the hardware: embedding runtimes, the ingest path, and a scale curve.

1. **Runtimes** for the same MiniLM weights on real chunks of the shipped corpora (flywheel docs,
   MLflow docs, pydantic-ai docs): sentence-transformers/torch fp32 (the reference), ONNX Runtime
   fp32, torch bf16 autocast, and ``auto`` (what ingest uses). Texts/s, and agreement with the
   reference: the minimum cosine over every text, and whether the top-5 chunks of every golden
   question are the same.
2. **The ingest path** (`flywheel.knowledge.ingest`: chunking, chunk and sentence vectors, the
   companion, Milvus Lite writes) on the three corpora, fresh index each time: the default (MiniLM +
   the USE companion), MiniLM alone, and MiniLM alone through sentence-transformers (the reference
   runtime) — ``speedup_vs_sentence_transformers`` compares the last two in this run.
3. **Scale curve**: a synthetic corpus built by replicating the corpora's pages with perturbations
   (paragraphs shuffled and thinned per copy, an edition line), ingested incrementally into the
   Milvus Lite *service* up to 2k, 10k and 50k chunks; at each size: ingest time, query p50/p95
   (`KnowledgeBase.search`, hybrid, golden questions), RSS of the Milvus service and of this
   process (the agent side: embedders and client).

Writes bench/results/ingest.json. ``BENCH_QUICK=1`` stops the curve at 10k chunks.
"""

from __future__ import annotations

import json
import math
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench._util import free_port, pct, print_table, write_result  # noqa: E402
from flywheel.config import load_settings  # noqa: E402
from flywheel.knowledge import (  # noqa: E402
    Document,
    IngestOptions,
    KnowledgeBase,
    chunk_document,
    ingest,
    read_documents,
)
from flywheel.stack._services import embedded_specs  # noqa: E402

SHARED = ROOT.parent / "shared"
CORPORA = [ROOT / "docs", SHARED / "corpora" / "mlflow-docs", SHARED / "corpora" / "pydantic-ai-docs"]
SIZES = [2_000, 10_000] if os.environ.get("BENCH_QUICK") else [2_000, 10_000, 50_000]
SAMPLE = 600  # chunks for the runtime comparison


def corpora() -> list[Path]:
    return [p for p in CORPORA if p.exists()]


def golden_questions() -> list[str]:
    out = []
    for path in [
        ROOT / "datasets" / "flywheel-docs-golden.json",
        SHARED / "datasets" / "mlflow-docs-golden.json",
    ]:
        if path.exists():
            out += [i["input"]["question"] for i in json.loads(path.read_text())]
    return out


def chunk_texts() -> list[str]:
    texts = []
    for folder in corpora():
        for doc in read_documents([str(folder)]):
            texts += [c.embedding_text() for c in chunk_document(doc)]
    return texts


def runtimes(texts: list[str], questions: list[str]) -> dict[str, dict]:
    from flywheel.knowledge._embeddings import SentenceTransformerEmbedder
    from flywheel.knowledge._minilm import MiniLMEmbedder, bf16_capable

    sample = random.Random(7).sample(texts, min(SAMPLE, len(texts)))
    reference = SentenceTransformerEmbedder("all-MiniLM-L6-v2")
    arms = {
        "sentence_transformers_fp32": (reference.embed_documents, reference.embed_documents),
        "onnx_fp32": (MiniLMEmbedder("onnx").embed_documents, MiniLMEmbedder("onnx").embed_documents),
    }
    if bf16_capable():
        bf = MiniLMEmbedder("torch-bf16")
        arms["torch_bf16"] = (bf.embed_documents, bf.embed_documents)
    auto = MiniLMEmbedder("auto")
    arms["auto"] = (auto.embed_documents, lambda qs: [auto.embed_query(q) for q in qs])
    out: dict[str, dict] = {}
    ref_docs = ref_q = None
    for name, (docs, queries) in arms.items():
        docs(sample[:64])  # loaded and warm (64: the batch size that selects the bf16 runtime)
        t = time.perf_counter()
        d = np.asarray(docs(sample), dtype=np.float32)
        seconds = time.perf_counter() - t
        q = np.asarray(queries(questions), dtype=np.float32)
        t = time.perf_counter()
        for question in questions[:40]:
            queries([question])
        query_ms = (time.perf_counter() - t) / min(40, len(questions)) * 1000
        if ref_docs is None:
            ref_docs, ref_q = d, q
        top = np.argsort(-(q @ d.T), axis=1)[:, :5]
        ref_top = np.argsort(-(ref_q @ ref_docs.T), axis=1)[:, :5]
        out[name] = {
            "texts_per_s": round(len(sample) / seconds, 1),
            "query_ms": round(query_ms, 2),
            "min_cosine_vs_reference": round(float(np.min(np.sum(d * ref_docs, axis=1))), 5),
            "min_query_cosine_vs_reference": round(float(np.min(np.sum(q * ref_q, axis=1))), 5),
            "top5_identical": int(sum(set(a) == set(b) for a, b in zip(top, ref_top, strict=True))),
            "questions": len(questions),
        }
    return out


def ingest_arm(sources: list[str], questions: list[str] | None = None, **overrides: object) -> dict:
    """One fresh ingest of ``sources``; with ``questions``, also the chunk ids of each question's
    top 5 through the agent's own search (hybrid, as doc_search runs it) on the index it built."""
    tmp = tempfile.mkdtemp(prefix="bench-ingest-")
    try:
        settings = load_settings(data_dir=tmp, **overrides)
        kb = KnowledgeBase(settings)
        report = ingest(settings, IngestOptions(sources, rebuild=True), kb=kb)
        top5 = [[h.id for h in kb.search(q, k=5)] for q in questions or []]
        kb.index.close()
        return {
            "chunks": report.embedded_chunks,
            "units": report.embedded_units,
            "seconds": round(report.seconds, 2),
            "embed_seconds": round(report.embed_seconds, 2),
            "chunks_per_s": round(report.embedded_chunks / report.seconds, 1),
            "top5": top5,
        }
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def same_top5(a: dict, b: dict) -> dict:
    """How many questions get the same top-5 chunks (as a set, and in the same order) from two arms."""
    sets = sum(set(x) == set(y) for x, y in zip(a["top5"], b["top5"], strict=True))
    order = sum(x == y for x, y in zip(a["top5"], b["top5"], strict=True))
    return {"same_set": sets, "same_order": order, "questions": len(a["top5"])}


def write_copy(folder: Path, docs: list, copy: int) -> int:
    """One perturbed copy of ``docs``: paragraphs shuffled and ~10 % dropped (seeded by the copy
    number), a title and an edition line of its own — new text, new vectors, same domain. Returns
    the chunks written."""
    rng = random.Random(copy)
    chunks = 0
    for i, doc in enumerate(docs):
        paras = [p for p in doc.text.split("\n\n") if p.strip()]
        rng.shuffle(paras)
        keep = [p for p in paras if rng.random() > 0.1] or paras[:1]
        head = f"# {doc.title or doc.source} (edition {copy})\n\nEdition {copy} of this page.\n\n"
        path = folder / f"c{copy:05d}-{i:04d}.md"
        path.write_text(head + "\n\n".join(keep))
        chunks += len(chunk_document(Document(path.name, path.read_text(), doc.title, "md")))
    return chunks


# the agent side of a query, in its own process (as the agent server holds it: ONNX MiniLM, USE,
# the Milvus client): latencies of the golden questions and the process's memory
_QUERY = """
import json, sys, time, psutil
from flywheel.config import load_settings
from flywheel.knowledge import KnowledgeBase
kb = KnowledgeBase(load_settings())
qs = json.loads(sys.stdin.read())
kb.search(qs[0])
lat, top = [], []
for q in qs * 2:
    t = time.perf_counter(); hits = kb.search(q); lat.append((time.perf_counter() - t) * 1000)
    top.append([h.id for h in hits])
print(json.dumps({"lat": lat, "top5": top[: len(qs)], "rss_mb": psutil.Process().memory_info().rss / 2**20,
                  "nlist": kb.index.dense_nlist}))
"""


def exact_index(uri: str, collection: str) -> None:
    """Rebuild a collection's dense index as FLAT (exact), to compare the IVF index's answers with."""
    from flywheel.knowledge import DocIndex

    index = DocIndex(uri, collection, 384)
    c = index._client
    c.release_collection(collection)
    c.drop_index(collection, "dense")
    params = c.prepare_index_params()
    params.add_index("dense", index_type="FLAT", metric_type="COSINE")
    c.create_index(collection, params)
    c.alter_collection_properties(collection, properties={"flywheel.dense_nlist": "0"})
    c.load_collection(collection)
    index.close()


def query_probe(env: dict[str, str], questions: list[str]) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", _QUERY],
        input=json.dumps(questions),
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def scale_curve(questions: list[str]) -> list[dict]:
    tmp = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    corpus = tmp / "corpus"
    corpus.mkdir()
    port = free_port()
    settings = load_settings(data_dir=tmp, milvus_port=port)
    spec = embedded_specs(settings, ["milvus"])[0]
    proc = subprocess.Popen(
        spec.command,
        env={**os.environ, **spec.env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        for _ in range(600):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        uri = f"http://127.0.0.1:{port}"
        settings = load_settings(data_dir=tmp, milvus_uri=uri)
        env = {"FLYWHEEL_DATA_DIR": str(tmp), "MILVUS_URI": uri}
        kb = KnowledgeBase(settings)
        docs = [d for f in corpora() for d in read_documents([str(f)])]
        avg = max(1.0, sum(len(chunk_document(d)) for d in docs) / len(docs))  # chunks per page
        copy, written, points, total_s = 0, 0, [], 0.0
        for size in SIZES:
            while written < size:  # perturbed copies (the last one partial) until ~size chunks
                n = min(len(docs), max(1, math.ceil((size - written) / avg)))
                written += write_copy(corpus, docs[:n], copy)
                copy += 1
            report = ingest(settings, IngestOptions([str(corpus)]), kb=kb)
            total_s += report.seconds
            probe = query_probe(env, questions)
            points.append(
                {
                    "chunks": report.total_chunks_in_index,
                    "step_chunks": report.embedded_chunks,
                    "step_seconds": round(report.seconds, 1),
                    "step_chunks_per_s": round(report.embedded_chunks / max(report.seconds, 1e-9), 1),
                    "ingest_seconds_total": round(total_s, 1),
                    "query_p50_ms": round(pct(probe["lat"], 50), 2),
                    "query_p95_ms": round(pct(probe["lat"], 95), 2),
                    "milvus_rss_mb": round(psutil.Process(proc.pid).memory_info().rss / 2**20, 1),
                    "agent_rss_mb": round(probe["rss_mb"], 1),
                    "dense_index": f"IVF_FLAT nlist={probe['nlist']}" if probe["nlist"] else "FLAT",
                }
            )
            print(points[-1], flush=True)
        if probe["nlist"]:  # the approximate index against exact search on the same collection
            exact_index(uri, settings.collection)
            flat = query_probe(env, questions)
            same = sum(set(a) == set(b) for a, b in zip(probe["top5"], flat["top5"], strict=True))
            points[-1]["flat_query_p50_ms"] = round(pct(flat["lat"], 50), 2)
            points[-1]["ivf_top5_same_as_flat"] = f"{same}/{len(questions)}"
            print(points[-1], flush=True)
        return points
    finally:
        os.killpg(proc.pid, 15)
        proc.wait(timeout=30)
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    sources = [str(p) for p in corpora()]
    questions = golden_questions()
    texts = chunk_texts()
    print(f"{len(texts)} chunks in {len(sources)} corpora; {len(questions)} golden questions", flush=True)
    rt = runtimes(texts, questions)
    print_table(
        "MiniLM runtimes (same weights)",
        [
            (
                k,
                str(v["texts_per_s"]),
                str(v["query_ms"]),
                str(v["min_cosine_vs_reference"]),
                f"{v['top5_identical']}/{v['questions']}",
            )
            for k, v in rt.items()
        ],
        ("runtime", "texts/s", "query ms", "min cos", "top-5 same"),
    )
    # models loaded and warm before any arm is timed (each arm builds a fresh index)
    for overrides in ({}, {"companion_embedding_model": "off", "embedding_runtime": "torch"}):
        ingest_arm([str(ROOT / "docs")], **overrides)  # type: ignore[arg-type]
    paths = {
        "default": ingest_arm(sources),
        "minilm": ingest_arm(sources, questions, companion_embedding_model="off"),
        "minilm_without_sentence_vectors": ingest_arm(
            sources, companion_embedding_model="off", unit_vectors="question_time"
        ),
        "minilm_sentence_transformers": ingest_arm(
            sources, questions, companion_embedding_model="off", embedding_runtime="torch"
        ),
    }
    print_table(
        "ingest path (fresh index, three corpora)",
        [
            (k, str(v["chunks"]), str(v["units"]), str(v["seconds"]), str(v["chunks_per_s"]))
            for k, v in paths.items()
        ],
        ("arm", "chunks", "sentences", "seconds", "chunks/s"),
    )
    curve = scale_curve(questions)
    print_table(
        "scale curve (Milvus Lite service)",
        [
            (
                str(p["chunks"]),
                str(p["step_chunks_per_s"]),
                str(p["query_p50_ms"]),
                str(p["query_p95_ms"]),
                str(p["milvus_rss_mb"]),
                str(p["agent_rss_mb"]),
            )
            for p in curve
        ],
        ("chunks", "ingest chunks/s", "query p50 ms", "p95 ms", "Milvus MB", "agent MB"),
    )
    agreeing = [v for k, v in rt.items() if k != "sentence_transformers_fp32"]
    agree = same_top5(paths["minilm"], paths["minilm_sentence_transformers"])
    summary = {
        "chunks_per_s": paths["default"]["chunks_per_s"],
        "chunks_per_s_minilm": paths["minilm"]["chunks_per_s"],
        "chunks_per_s_minilm_sentence_transformers": paths["minilm_sentence_transformers"]["chunks_per_s"],
        "chunks_per_s_minilm_without_sentence_vectors": paths["minilm_without_sentence_vectors"][
            "chunks_per_s"
        ],
        "sentences_per_chunk": round(paths["minilm"]["units"] / max(1, paths["minilm"]["chunks"]), 2),
        "speedup_vs_sentence_transformers": round(
            paths["minilm"]["chunks_per_s"] / paths["minilm_sentence_transformers"]["chunks_per_s"], 2
        ),
        "embedding_texts_per_s_auto": rt["auto"]["texts_per_s"],
        "embedding_texts_per_s_reference": rt["sentence_transformers_fp32"]["texts_per_s"],
        "vector_agreement_min": min(v["min_cosine_vs_reference"] for v in agreeing),
        "query_vector_agreement_min": min(v["min_query_cosine_vs_reference"] for v in agreeing),
        # the criterion: the agent's own search (hybrid) on an index built by each runtime
        "top5_identical_fraction": round(agree["same_set"] / max(1, agree["questions"]), 4),
        "top5_same_order_fraction": round(agree["same_order"] / max(1, agree["questions"]), 4),
        # a stricter proxy: dense-only brute force over a random sample of chunks (near ties flip)
        "dense_sample_top5_identical_fraction": round(
            min(v["top5_identical"] / max(1, v["questions"]) for v in agreeing), 4
        ),
        "query_p50_ms_2k": curve[0]["query_p50_ms"],
        f"query_p50_ms_{round(curve[-1]['chunks'] / 1000)}k": curve[-1]["query_p50_ms"],
        "query_p50_ratio_largest_vs_2k": round(curve[-1]["query_p50_ms"] / curve[0]["query_p50_ms"], 2),
        "agent_rss_mb_largest": curve[-1]["agent_rss_mb"],
        "query_p50_ms_largest_exact_flat": curve[-1].get("flat_query_p50_ms"),
        "ivf_top5_same_as_flat_largest": curve[-1].get("ivf_top5_same_as_flat"),
        "milvus_rss_mb_largest": curve[-1]["milvus_rss_mb"],
        "largest_chunks": curve[-1]["chunks"],
    }
    print(json.dumps(summary, indent=2))
    write_result(
        "ingest", summary, {"runtimes": rt, "ingest_path": paths, "scale_curve": curve, "sample": SAMPLE}
    )


if __name__ == "__main__":
    main()
