"""Japanese questions over English docs: retrieval per embedder, and the abstention threshold.

For each arm (an embedder, perhaps a multilingual companion, with or without dictionary translation
of Japanese questions, knowledge/_translate.py), ingests ../shared/corpora/mlflow-docs into its own Milvus Lite file, then asks the MLflow docs golden
questions in English (../shared) and in Japanese (datasets/mlflow-docs-golden-ja.json, this
project's own translations) through KnowledgeBase.search (hybrid, as the agent searches):

- recall@1 / recall@5 (the golden page among the top hits' sources), per language;
- ingest chunks/s, and query p50 (embed + hybrid search), queries interleaved across embedders so
  that both see the same machine noise;
- the abstention threshold: the top hit's cosine for answerable questions vs out-of-scope ones,
  calibrated on the train half of the items (per language, and both together) and reported on the
  test half.

Arms: MiniLM without translation (the baseline: how Japanese questions were searched before), MiniLM,
e5, USE, and MiniLM with the USE embedding of every chunk as a companion collection
(``FLYWHEEL_COMPANION_EMBEDDING_MODEL``; it serves the Japanese questions), with and without
translation. Arms on the same index share one ingest.

Writes bench/results/multilingual.json with summary.ja_recall_at_5, summary.en_recall_at_5,
summary.ja_en_ratio and summary.embedder (for the default embedder), and the same per embedder.
Targets with the default: Japanese recall@5 >= 0.9, English recall@5 >= 0.95, query p50 <= 2x the
baseline's.
"""

from __future__ import annotations

import itertools
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench._util import pct, print_table, write_result  # noqa: E402

SHARED = ROOT.parent / "shared"
CORPUS = SHARED / "corpora" / "mlflow-docs"
GOLDEN_EN = SHARED / "datasets" / "mlflow-docs-golden.json"
GOLDEN_JA = ROOT / "datasets" / "mlflow-docs-golden-ja.json"
# (label, EMBEDDING_MODEL, FLYWHEEL_COMPANION_EMBEDDING_MODEL, FLYWHEEL_QUERY_TRANSLATION); the
# first arm is the baseline ("today": MiniLM, Japanese questions searched as they are)
USE = "universal-sentence-encoder-multilingual"
ARMS = [
    ("all-MiniLM-L6-v2 (no translation)", "all-MiniLM-L6-v2", "", "off"),
    ("all-MiniLM-L6-v2", "all-MiniLM-L6-v2", "", "auto"),
    ("multilingual-e5-small", "multilingual-e5-small", "", "auto"),
    (USE, USE, "", "auto"),
    ("all-MiniLM-L6-v2 + USE companion (no translation)", "all-MiniLM-L6-v2", USE, "off"),
    ("all-MiniLM-L6-v2 + USE companion", "all-MiniLM-L6-v2", USE, "auto"),
]
EMBEDDERS = [a[0] for a in ARMS]
REPEATS = 3


def calibrate(answerable: list[float], oos: list[float]) -> float:
    """The threshold on the top hit's cosine that keeps the most items right (answerable above,
    out of scope below); ties go to the midpoint of the widest gap."""
    cands = sorted(set(answerable + oos))
    best, best_t = -1, 0.0
    for lo, hi in itertools.pairwise(cands):
        t = (lo + hi) / 2
        right = sum(s >= t for s in answerable) + sum(s < t for s in oos)
        if right > best:
            best, best_t = right, t
    return round(best_t, 3)


def main() -> None:
    if not CORPUS.exists() or not GOLDEN_EN.exists():
        print(f"skipped: {CORPUS} or {GOLDEN_EN} is absent (../shared lives beside the project)")
        return
    from flywheel.config import load_settings
    from flywheel.evaluation import load_dataset
    from flywheel.knowledge import IngestOptions, KnowledgeBase, ingest

    sets = {"en": load_dataset(GOLDEN_EN), "ja": load_dataset(GOLDEN_JA)}
    split = {
        lang: {p: {i.metadata.id for i in ds.split(p).items} for p in ("train", "test")}
        for lang, ds in sets.items()
    }
    tmps, kbs, ingest_stats = [], {}, {}
    built: dict[tuple[str, str], str] = {}  # (model, companion) → its label: one index, two query modes
    for name, model, companion, translation in ARMS:
        if (model, companion) in built:
            first = built[(model, companion)]
            kbs[name] = KnowledgeBase(
                kbs[first].settings.model_copy(update={"query_translation": translation})
            )
            ingest_stats[name] = ingest_stats[first]
            continue
        built[(model, companion)] = name
        tmp = tempfile.TemporaryDirectory()
        tmps.append(tmp)
        settings = load_settings(
            data_dir=tmp.name,
            collection="bench_multilingual",
            embedding_model=model,
            companion_embedding_model=companion,
            query_translation=translation,
        )
        kb = KnowledgeBase(settings)
        t0 = time.perf_counter()
        kb.embedder.embed_query("warm up")
        if kb.companion:
            kb.companion[0].embed_query("warm up")
        load_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        report = ingest(settings, IngestOptions([str(CORPUS)], rebuild=True), kb=kb)
        secs = time.perf_counter() - t0
        ingest_stats[name] = {
            "chunks": report.chunks,
            "ingest_s": round(secs, 1),
            "chunks_per_s": round(report.chunks / secs, 1),
            "model_load_s": round(load_s, 2),
        }
        kbs[name] = kb
        print(f"{name}: {report.chunks} chunks in {secs:.0f} s")

    results: dict[str, dict] = {}
    lat: dict[str, list[float]] = {n: [] for n in kbs}
    rows = []
    for name, kb in kbs.items():
        res: dict = {**ingest_stats[name]}
        # top cosine per language × split × kind: the hits' cosine comes from the model that served
        # the question (with a companion, English questions are MiniLM's, Japanese ones USE's)
        tops = {lang: {p: {"answerable": [], "oos": []} for p in ("train", "test")} for lang in sets}
        for lang, ds in sets.items():
            happy = [i for i in ds.items if i.kind == "happy_path"]
            for mode, suffix in (("hybrid", ""), ("dense", "_dense")):
                r1 = r5 = 0
                for item in happy:
                    sources = [h.source for h in kb.search(item.question, 5, mode=mode)]
                    r1 += bool(sources) and sources[0] == item.metadata.source
                    r5 += item.metadata.source in sources
                res[f"{lang}_recall_at_1{suffix}"] = round(r1 / len(happy), 3)
                res[f"{lang}_recall_at_5{suffix}"] = round(r5 / len(happy), 3)
            for item in ds.items:
                if item.kind not in ("happy_path", "out_of_scope"):
                    continue
                found = kb.search(item.question, 5)  # the agent's abstention signal, as it computes it
                top = max((h.dense_score for h in found), default=0.0)
                if found and found.relevance is not None:
                    top = max(top, found.relevance)
                part = "train" if item.metadata.id in split[lang]["train"] else "test"
                tops[lang][part]["answerable" if item.kind == "happy_path" else "oos"].append(float(top))

        def rates(t: float, langs: list[str], part: str, tops: dict = tops) -> tuple[float, float]:
            ans = [x for lg in langs for x in tops[lg][part]["answerable"]]
            oos = [x for lg in langs for x in tops[lg][part]["oos"]]
            return (
                round(sum(x >= t for x in ans) / max(1, len(ans)), 3),
                round(sum(x < t for x in oos) / max(1, len(oos)), 3),
            )

        for key, langs in (("", list(sets)), ("_en", ["en"]), ("_ja", ["ja"])):
            t = calibrate(
                [x for lg in langs for x in tops[lg]["train"]["answerable"]],
                [x for lg in langs for x in tops[lg]["train"]["oos"]],
            )
            res[f"min_relevance{key}"] = t
            res[f"test_answerable_kept{key}"], res[f"test_oos_abstained{key}"] = rates(t, langs, "test")
        res["top_cosine"] = {
            lg: {p: {k: [round(x, 3) for x in v] for k, v in d.items()} for p, d in parts.items()}
            for lg, parts in tops.items()
        }
        results[name] = res

    # query latency, interleaved across embedders
    questions = [i.question for ds in sets.values() for i in ds.items]
    for _ in range(REPEATS):
        for q in questions:
            for name, kb in kbs.items():
                t0 = time.perf_counter()
                kb.search(q, 5)
                lat[name].append((time.perf_counter() - t0) * 1000)
    for name in kbs:
        results[name]["query_p50_ms"] = round(pct(lat[name], 50), 1)
        results[name]["query_p95_ms"] = round(pct(lat[name], 95), 1)
        r = results[name]
        rows.append(
            (
                name,
                f"{r['en_recall_at_1']:.2f} / {r['en_recall_at_5']:.2f}",
                f"{r['ja_recall_at_1']:.2f} / {r['ja_recall_at_5']:.2f}",
                f"{r['en_recall_at_5_dense']:.2f} / {r['ja_recall_at_5_dense']:.2f}",
                f"{r['chunks_per_s']:.0f}",
                f"{r['query_p50_ms']:.0f}",
                f"en {r['min_relevance_en']} ({r['test_answerable_kept_en']:.2f} / {r['test_oos_abstained_en']:.2f})"
                f", ja {r['min_relevance_ja']} ({r['test_answerable_kept_ja']:.2f} / {r['test_oos_abstained_ja']:.2f})",
            )
        )
    base = results[EMBEDDERS[0]]
    from flywheel.config import load_settings as _ls

    cfg = _ls()
    default = (
        cfg.embedding_model
        + (" + USE companion" if cfg.companion_embedding_model else "")
        + (" (no translation)" if cfg.query_translation == "off" else "")
    )
    chosen = results.get(default, base)
    summary = {
        "embedder": default,
        "en_recall_at_5": chosen["en_recall_at_5"],
        "ja_recall_at_5": chosen["ja_recall_at_5"],
        "en_recall_at_1": chosen["en_recall_at_1"],
        "ja_recall_at_1": chosen["ja_recall_at_1"],
        "ja_en_ratio": round(chosen["ja_recall_at_5"] / max(chosen["en_recall_at_5"], 1e-9), 3),
        "query_p50_ms": chosen["query_p50_ms"],
        "query_p50_ratio_vs_minilm": round(chosen["query_p50_ms"] / base["query_p50_ms"], 2),
        "chunks_per_s": chosen["chunks_per_s"],
        "per_embedder": {n: {k: v for k, v in r.items() if k != "top_cosine"} for n, r in results.items()},
        "targets": {
            "ja_recall_at_5": ">= 0.9",
            "en_recall_at_5": ">= 0.95",
            "query_p50_ratio_vs_minilm": "<= 2",
        },
    }
    print_table(
        "MLflow docs: English and Japanese questions (hybrid search, top 5)",
        rows,
        (
            "embedder",
            "en R@1 / R@5",
            "ja R@1 / R@5",
            "dense-only R@5 en / ja",
            "chunks/s",
            "query p50 ms",
            "threshold per language (test kept / oos abstained)",
        ),
    )
    print(f"wrote {write_result('multilingual', summary, results)}")
    for tmp in tmps:
        tmp.cleanup()


if __name__ == "__main__":
    main()
