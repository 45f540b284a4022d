"""Answer quality: calibrate the local facts scorer, then choose the embedded default answer policy.

Part 1 — the instrument (no stack needed). On the MLflow docs golden set (../shared), happy-path
items split once into train (odd positions) and test (even positions):
  - positives: each item's facts against an answer made of its evidence sentences (the page sentences
    that contain ``metadata.evidence``), and against the bare evidence fragments;
  - hard negatives: each item's facts against the evidence sentences of the other items of the same
    page (else of the same section of the docs) — same topic, different facts.
  ``alpha`` × ``threshold`` are chosen on train (highest evidence recall − hard-negative rate; among
  ties, the centre of the plateau) and reported on test as ``summary.scorer_evidence_recall`` and
  ``summary.scorer_hard_negative_rate``.

Part 2 — the policies, against the embedded stack (the local LLM server on a free port, Milvus Lite
in-process, MiniLM): every policy answers the MLflow docs golden set and datasets/flywheel-docs-golden
through the evaluation runner with the default scorers; per policy: response facts, answer length,
citations, search term, abstention, refusal, latency p50/p95. The winner (``summary.best_policy``):
among the policies that refuse every adversarial item and abstain on every out-of-scope item of the
MLflow docs set, the highest mean of response facts and citations there. The grounded policy's
settings were chosen on the train items of the MLflow set, so facts are also reported on its test
items alone (``summary.best_facts_test_split``) and on this guide's golden set, never tuned on
(``summary.best_facts_held_out_domain``).

    .venv/bin/python bench/answer_quality.py              # both parts (~35 min on 2 cores)
    .venv/bin/python bench/answer_quality.py --part scorer
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench._util import free_port, pct, print_table, write_result  # noqa: E402

SHARED = ROOT.parent / "shared"
CORPUS = SHARED / "corpora" / "mlflow-docs"
GOLDEN = SHARED / "datasets" / "mlflow-docs-golden.json"
OWN = ROOT / "datasets" / "flywheel-docs-golden.json"
POLICIES = ["grounded", "retrieve_first", "react"]


# ---------------------------------------------------------------- part 1: the facts scorer


def _norm(s: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"[`*]", "", s)).strip().lower()


def evidence_sentences(item: dict[str, Any]) -> list[str]:
    """The sentences (or lines) of the item's page that contain its evidence quotes."""
    from flywheel.knowledge._loaders import load_file_text

    path = CORPUS / item["metadata"]["source"]
    doc = load_file_text(path.read_text(encoding="utf-8"), path.suffix[1:], item["metadata"]["source"])
    sents = [s for s in re.split(r"(?<=[.!?])\s+|\n+", doc.text) if s.strip()]
    out: list[str] = []
    for quote in item["metadata"]["evidence"]:
        q = _norm(quote)
        hit = next((s for s in sents if q in _norm(s)), quote)
        if hit not in out:
            out.append(hit)
    return out


def _hard_negatives(item: dict[str, Any], happy: list[dict[str, Any]]) -> list[dict[str, Any]]:
    src = item["metadata"]["source"]
    same_page = [h for h in happy if h is not item and h["metadata"]["source"] == src]
    if same_page:
        return same_page
    section = src.rsplit("/", 1)[0]
    return [h for h in happy if h is not item and h["metadata"]["source"].rsplit("/", 1)[0] == section]


def _choose(grid: list[dict[str, Any]]) -> dict[str, Any]:
    """The grid point with the best J = recall − hard-negative rate; among ties (a plateau), its
    centre: the alpha with the widest plateau, then the median tied threshold — the most margin on
    both sides. The grid reaches below any plateau's lower edge, so the centre is not cut short."""
    top = max(round(r["recall"] - r["hard_negative"], 6) for r in grid)
    tied = [r for r in grid if round(r["recall"] - r["hard_negative"], 6) == top]
    widest = max(sorted({r["alpha"] for r in tied}), key=lambda a: sum(r["alpha"] == a for r in tied))
    plateau = sorted((r for r in tied if r["alpha"] == widest), key=lambda r: r["threshold"])
    return plateau[(len(plateau) - 1) // 2]


def calibrate_scorer(embed: Any, test_parity: int = 0) -> dict[str, Any]:
    """Choose alpha × threshold on train, report on test. ``test_parity`` 0: test is the even
    positions (the reported split); 1: the folds swapped (a check that the choice is not luck)."""
    from flywheel.evaluation._facts import FactMatcher

    happy = [g for g in json.loads(GOLDEN.read_text()) if g["metadata"]["kind"] == "happy_path"]
    for g in happy:
        g["_sents"] = evidence_sentences(g)
    split = {id(g): ("test" if i % 2 == test_parity else "train") for i, g in enumerate(happy)}

    def rates(matcher: FactMatcher, part: str, field: str) -> tuple[float, float]:
        pos, neg = [], []
        for g in happy:
            if split[id(g)] != part:
                continue
            facts = g["expected_output"]["response_facts"]
            answer = g["_sents"] if field == "sentences" else g["metadata"]["evidence"]
            pos.append(matcher.score(facts, "\n".join(answer))[0])
            for h in _hard_negatives(g, happy):
                other = h["_sents"] if field == "sentences" else h["metadata"]["evidence"]
                neg.append(matcher.score(facts, "\n".join(other))[0])
        return float(np.mean(pos)), float(np.mean(neg)) if neg else 0.0

    grid = []
    for alpha in (0.3, 0.4, 0.5, 0.6, 0.7):
        for t in np.arange(0.30, 0.72, 0.02):
            m = FactMatcher(embed, threshold=round(float(t), 2), alpha=alpha)
            rec, neg = rates(m, "train", "sentences")
            grid.append(
                {"alpha": alpha, "threshold": round(float(t), 2), "recall": rec, "hard_negative": neg}
            )
    best = _choose(grid)
    m = FactMatcher(embed, threshold=best["threshold"], alpha=best["alpha"])
    test_rec, test_neg = rates(m, "test", "sentences")
    frag_rec, frag_neg = rates(m, "test", "fragments")
    # the first scorer (best single sentence, MiniLM-only cosine >= 0.74) on the same test answers
    old = FactMatcher(_minilm_embed(), threshold=0.74, alpha=1.0, window=1)
    old_rec, old_neg = rates(old, "test", "sentences")
    return {
        "alpha": best["alpha"],
        "threshold": best["threshold"],
        "train_evidence_recall": round(best["recall"], 3),
        "train_hard_negative_rate": round(best["hard_negative"], 3),
        "test_evidence_recall": round(test_rec, 3),
        "test_hard_negative_rate": round(test_neg, 3),
        "test_fragment_recall": round(frag_rec, 3),
        "test_fragment_hard_negative_rate": round(frag_neg, 3),
        "old_scorer_test_evidence_recall": round(old_rec, 3),
        "old_scorer_test_hard_negative_rate": round(old_neg, 3),
        "train_items": sum(1 for v in split.values() if v == "train"),
        "test_items": sum(1 for v in split.values() if v == "test"),
        "grid": grid,
    }


def _cached_embed(model: Any) -> Any:
    cache: dict[str, list[float]] = {}

    def embed(texts: list[str]) -> list[list[float]]:
        missing = [t for t in dict.fromkeys(texts) if t not in cache]
        if missing:
            cache.update(zip(missing, model.embed_documents(missing), strict=True))
        return [cache[t] for t in texts]

    return embed


def _minilm_embed() -> Any:
    from flywheel.knowledge import SentenceTransformerEmbedder

    return _cached_embed(SentenceTransformerEmbedder("all-MiniLM-L6-v2"))


# ---------------------------------------------------------------- part 2: the policies


class _Target:
    """A DocsAgent in this process (no tracking server: the bench measures answers, not traces)."""

    def __init__(self, agent: Any) -> None:
        self.agent = agent
        self.spec = f"local:{agent.config.policy}"
        self.identity = agent.config.params()

    def run(self, question: str) -> Any:
        from flywheel.evaluation._targets import answer_output

        return answer_output(self.agent.ask(question), "SmolLM2-135M-Instruct")


def run_policies(policies: list[str], limit: int | None) -> dict[str, Any]:
    from flywheel.agent import AgentConfig, DocsAgent, markdown_problems
    from flywheel.config import load_settings
    from flywheel.evaluation import DEFAULT_SCORERS, EvalOptions, make_scorer, run_evaluation, scorer_context
    from flywheel.evaluation._dataset import load_dataset
    from flywheel.knowledge import IngestOptions, KnowledgeBase, ingest
    from flywheel.stack import Stack

    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        base = load_settings(
            data_dir=tmp, llm_port=free_port(), mlflow_port=free_port(), milvus_port=free_port()
        )
        stack = Stack(base)
        stack.up(["llm"])
        try:
            sets = {
                "mlflow-docs": (GOLDEN, CORPUS, "aq_mlflow"),
                "flywheel-docs": (OWN, ROOT / "docs", "aq_own"),
            }
            for name, (golden, corpus, collection) in sets.items():
                settings = base.model_copy(update={"collection": collection})
                kb = KnowledgeBase(settings)
                t0 = time.perf_counter()
                ingest(settings, IngestOptions([str(corpus)], rebuild=True), kb=kb)
                print(f"ingested {name} in {time.perf_counter() - t0:.0f} s", flush=True)
                dataset = load_dataset(golden)
                if limit:
                    dataset.items = dataset.items[:limit]
                scorers = [make_scorer(s) for s in DEFAULT_SCORERS]
                for policy in policies:
                    agent = DocsAgent(settings, AgentConfig(policy=policy), kb=kb)  # type: ignore[arg-type]
                    res = run_evaluation(
                        settings,
                        EvalOptions(
                            dataset=dataset,
                            target=_Target(agent),
                            scorers=scorers,
                            context=scorer_context(settings),
                            concurrency=2,
                            results_dir=Path(tmp) / "eval",
                            log_to_mlflow=False,
                            fresh=True,
                        ),
                    )
                    m = res.metrics
                    answered = [i for i in res.items if i.kind in ("happy_path", "edge_case")]
                    lengths = [len(i.output.get("answer", "")) for i in answered]
                    malformed = [
                        i.id
                        for i in answered
                        if markdown_problems(i.output.get("answer", ""), list(i.output.get("contexts") or []))
                    ]
                    lat = [i.output.get("latency_ms", 0.0) for i in res.items]
                    # the grounded policy's settings were chosen on the train items (odd positions among
                    # the happy-path items, as for the scorer): report the items it was not tuned on too
                    happy = [i.metadata.id for i in dataset.items if i.kind == "happy_path"]
                    split_of = {
                        item_id: ("test" if n % 2 == 0 else "train") for n, item_id in enumerate(happy)
                    }
                    facts = {"train": [], "test": []}
                    for it in res.items:
                        value = it.scores.get("response_facts", {}).get("value")
                        if it.id in split_of and value is not None:
                            facts[split_of[it.id]].append(value)
                    row = {
                        "response_facts_test_split": round(statistics.fmean(facts["test"]), 4)
                        if facts["test"]
                        else None,
                        "response_facts_train_split": round(statistics.fmean(facts["train"]), 4)
                        if facts["train"]
                        else None,
                        "response_facts": m.get("response_facts"),
                        "citations": m.get("citations"),
                        "search_term": m.get("search_term"),
                        "abstention": m.get("abstention"),
                        "refusal": m.get("refusal"),
                        "response_quality": m.get("response_quality"),
                        "answer_chars_median": statistics.median(lengths) if lengths else 0,
                        "malformed_answers": len(malformed),
                        "malformed_items": malformed[:10],
                        "latency_p50_ms": round(pct(lat, 50), 1),
                        "latency_p95_ms": round(pct(lat, 95), 1),
                        "errors": m.get("errors"),
                        "example": answered[0].output.get("answer", "")[:600] if answered else "",
                    }
                    if policy == "grounded":  # one user at a time, too: the eval above runs 2 at once
                        seq = []
                        for item in dataset.items:
                            t0 = time.perf_counter()
                            agent.ask(item.question)
                            seq.append((time.perf_counter() - t0) * 1000)
                        row["latency_sequential_p50_ms"] = round(pct(seq, 50), 1)
                        row["latency_sequential_p95_ms"] = round(pct(seq, 95), 1)
                    results.setdefault(name, {})[policy] = row
                    print(
                        f"  {name:13s} {policy:15s} "
                        + json.dumps({k: v for k, v in row.items() if k != "example"}),
                        flush=True,
                    )
        finally:
            stack.down()
    return results


def choose(per_policy: dict[str, dict[str, Any]]) -> str:
    """The stated rule: safe on every adversarial and out-of-scope item, then best (facts + citations)/2."""
    safe = {
        p: r
        for p, r in per_policy.items()
        if (r.get("refusal") or 0) >= 1.0 and (r.get("abstention") or 0) >= 1.0
    }
    pool = safe or per_policy
    return max(pool, key=lambda p: ((pool[p]["response_facts"] or 0) + (pool[p]["citations"] or 0)) / 2)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--part", choices=["scorer", "policies", "all"], default="all")
    ap.add_argument("--policies", default=",".join(POLICIES))
    ap.add_argument("--limit", type=int, default=None, help="first N items of each dataset (a smoke run)")
    args = ap.parse_args()
    if not GOLDEN.exists():
        print(f"skipped: {GOLDEN} is absent (../shared lives beside the project)")
        return
    summary: dict[str, Any] = {}
    details: dict[str, Any] = {}
    previous = ROOT / "bench" / "results" / "answer_quality.json"
    if previous.exists() and args.part != "all":  # keep the other part's figures
        old = json.loads(previous.read_text())
        summary, details = old.get("summary", {}), old.get("details", {})
    if args.part in ("scorer", "all"):
        from flywheel.config import load_settings
        from flywheel.knowledge import facts_embedder

        instrument = facts_embedder(load_settings())
        embed = _cached_embed(instrument)
        cal = calibrate_scorer(embed)
        swapped = calibrate_scorer(embed, test_parity=1)
        minilm = calibrate_scorer(_minilm_embed())
        cal["instrument"] = getattr(instrument, "name", "?")
        cal["swapped_folds"] = {k: v for k, v in swapped.items() if k != "grid"}
        cal["minilm_only"] = {k: v for k, v in minilm.items() if k != "grid"}
        details["scorer"] = cal
        summary.update(
            {
                "scorer_evidence_recall": cal["test_evidence_recall"],
                "scorer_hard_negative_rate": cal["test_hard_negative_rate"],
                "scorer_alpha": cal["alpha"],
                "scorer_threshold": cal["threshold"],
                "scorer_evidence_recall_swapped_folds": swapped["test_evidence_recall"],
                "scorer_hard_negative_rate_swapped_folds": swapped["test_hard_negative_rate"],
            }
        )
        print_table(
            f"facts scorer ({cal['instrument']}) on the test split (train chose alpha, threshold)",
            [
                ("evidence sentences", cal["test_evidence_recall"], cal["test_hard_negative_rate"]),
                (
                    "bare evidence fragments",
                    cal["test_fragment_recall"],
                    cal["test_fragment_hard_negative_rate"],
                ),
                ("folds swapped", swapped["test_evidence_recall"], swapped["test_hard_negative_rate"]),
                ("MiniLM only", minilm["test_evidence_recall"], minilm["test_hard_negative_rate"]),
                (
                    "first scorer (1 sentence, cos>=0.74)",
                    cal["old_scorer_test_evidence_recall"],
                    cal["old_scorer_test_hard_negative_rate"],
                ),
            ],
            ("answer", "evidence recall", "hard-negative rate"),
        )
    if args.part in ("policies", "all"):
        per = run_policies([p for p in args.policies.split(",") if p], args.limit)
        before = {  # the previous run's rows of the policies re-run now, to compare with
            name: {p: rows[p] for p in per.get(name, {}) if p in rows}
            for name, rows in details.get("policies", {}).items()
        }
        for name, rows in details.get("policies", {}).items():  # a subset re-run keeps the others
            for policy, row in rows.items():
                per.setdefault(name, {}).setdefault(policy, row)
        details["policies"] = per
        if any(before.values()):
            details["previous_run"] = before
        mlflow_rows = per.get("mlflow-docs", {})
        best = choose(mlflow_rows)
        summary.update(
            {
                "best_policy": best,
                "best_facts": mlflow_rows[best]["response_facts"],
                "best_facts_test_split": mlflow_rows[best].get("response_facts_test_split"),
                "best_facts_held_out_domain": per.get("flywheel-docs", {})
                .get(best, {})
                .get("response_facts"),
                "best_citations": mlflow_rows[best]["citations"],
                "best_latency_p50_ms": mlflow_rows[best]["latency_p50_ms"],
                "best_latency_sequential_p50_ms": mlflow_rows[best].get("latency_sequential_p50_ms"),
                "best_answer_chars_median": mlflow_rows[best].get("answer_chars_median"),
                "best_malformed_answers": sum(
                    rows.get(best, {}).get("malformed_answers", 0) or 0 for rows in per.values()
                ),
                "rule": "refusal = abstention = 1 on mlflow-docs, then max (response_facts + citations) / 2",
            }
        )
        for name, rows in per.items():
            print_table(
                f"policies on {name}",
                [
                    (
                        p,
                        f"{r['response_facts']:.2f}",
                        f"{r['citations']:.2f}",
                        f"{r['search_term']:.2f}",
                        f"{r['abstention']:.2f}",
                        f"{r['refusal']:.2f}",
                        str(int(r["answer_chars_median"])),
                        f"{r['latency_p50_ms']:.0f}",
                        f"{r['latency_p95_ms']:.0f}",
                    )
                    for p, r in rows.items()
                ],
                ("policy", "facts", "citations", "search", "abstain", "refuse", "chars", "p50 ms", "p95 ms"),
            )
    print(json.dumps({k: v for k, v in summary.items()}, indent=2))
    print(f"wrote {write_result('answer_quality', summary, details)}")


if __name__ == "__main__":
    main()
