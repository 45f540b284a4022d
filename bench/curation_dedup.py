"""How `flywheel monitor curate` tells a rephrasing from a different question — tuned on one set of
questions, reported on another.

A regression set should hold one item per failing *question*, however many ways users asked it.
The pool `curate` clusters is the failing questions plus the dataset's own. Two kinds of error:

- **duplicates**: a rephrasing left as an item of its own (``extra items / items``; the issue's
  ``curation_duplicates`` is this on the production loop of ``bench/loop.py``);
- **false merges**: two different questions made one item — a regression lost (the recall side).

Data (every rephrasing group written by hand, before any measurement):

- **train** (the only part anything is tuned on): :data:`TRAIN_GROUPS` — 14 questions asked three
  ways each, on topics unlike the loop bench's — plus the distinct questions of the train half (by
  a hash of the question) of the flywheel and MLflow golden sets;
- **test**: ``bench/loop.py``'s 12 planted questions × 3 (never used for tuning) plus the test
  half of the golden questions.

Methods: the MiniLM cosine alone (what curate used), MiniLM and USE together (the facts scorer's
instrument: the mean of the two cosines), and either with the questions' rare shared terms
(IDF-weighted overlap of key terms, IDF over the pool) mixed in. For each, the distance threshold
(and the mix) are chosen on train — fewest duplicates with no false merge — and reported on test.

With ``--judge-url`` (an OpenAI-compatible endpoint) the chosen method's groups then go through
curate's judge pass (:func:`flywheel.monitoring._curate.merge_by_judge`) and the test figures are
reported again with it.

    .venv/bin/python bench/curation_dedup.py        # ~1 min; writes bench/results/curation_dedup.json
    .venv/bin/python bench/curation_dedup.py --judge-url http://127.0.0.1:8080/v1   # the local LLM
"""

from __future__ import annotations

import hashlib
import itertools
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))
from bench._util import write_result  # noqa: E402

TRAIN_GROUPS = [
    (
        "How do I rotate the API key of the gateway?",
        "Can I change the gateway's API key without downtime?",
        "Rotating gateway keys: how?",
    ),
    (
        "Does flywheel support Azure OpenAI?",
        "Can I point flywheel at an Azure OpenAI deployment?",
        "Is Azure OpenAI one of the providers?",
    ),
    (
        "How do I delete a dataset version?",
        "Can I remove an old version of a golden set?",
        "Deleting a dataset version: what is the command?",
    ),
    (
        "Is there a Helm chart for flywheel?",
        "Can I install flywheel with Helm?",
        "Where is the Helm chart?",
    ),
    (
        "How do I change the port of the agent server?",
        "Can the agent server listen on another port than 5005?",
        "Agent server port: where do I set it?",
    ),
    (
        "Does the chat page support dark mode?",
        "Can I switch the chat UI to a dark theme?",
        "How do I enable dark mode in the chat?",
    ),
    (
        "Can I use flywheel with a Snowflake warehouse?",
        "Is there a Snowflake connector?",
        "How do I load docs from Snowflake?",
    ),
    (
        "How do I see why the gate blocked my candidate?",
        "Where does the gate explain a failed check?",
        "My candidate was blocked by the gate: how do I find out why?",
    ),
    (
        "Does flywheel send usage telemetry?",
        "Is any usage data reported back by flywheel?",
        "How do I turn off telemetry?",
    ),
    (
        "Can I translate the agent's answers into German?",
        "Does the agent answer in German?",
        "How do I get answers in German?",
    ),
    (
        "How do I back up the MLflow database?",
        "What is the way to make a backup of the tracking store?",
        "Backing up MLflow's SQLite file?",
    ),
    (
        "Is there a Discord bot for flywheel?",
        "Can the agent answer questions on a Discord server?",
        "How do I add flywheel to Discord?",
    ),
    (
        "How many documents can one index hold?",
        "What is the maximum size of the vector index?",
        "Is there a limit on how many pages I can ingest?",
    ),
    (
        "Can I schedule an evaluation every night?",
        "How do I run evals on a nightly cron?",
        "Nightly evaluation runs: how?",
    ),
]


def _half(question: str) -> str:
    return "train" if hashlib.sha256(question.encode()).digest()[0] % 2 == 0 else "test"


def _golden() -> list[str]:
    from flywheel.evaluation import load_dataset

    paths = [ROOT / "datasets" / "flywheel-docs-golden.json"]
    shared = ROOT.parent / "shared" / "datasets" / "mlflow-docs-golden.json"
    if shared.exists():
        paths.append(shared)
    return list(dict.fromkeys(i.question for p in paths for i in load_dataset(p).items))


def _pool(split: str) -> tuple[list[str], list[int]]:
    """Questions and their group (a rephrasing group shares one; every golden question its own)."""
    from bench.loop import PLANTED

    groups = TRAIN_GROUPS if split == "train" else PLANTED
    texts, label = [], []
    for g, forms in enumerate(groups):
        texts += list(forms)
        label += [g] * len(forms)
    for q in _golden():
        if _half(q) == split:
            texts.append(q)
            label.append(len(set(label)) + 1000)
    return texts, label


def _errors(clusters: list[list[int]], label: list[int]) -> tuple[int, int, int]:
    """(extra items, false merges, items): an item per cluster; a group spread over k clusters
    leaves k-1 extra; a cluster holding m groups merged m-1 questions away."""
    spread: dict[int, set[int]] = {}
    merges = 0
    for c, members in enumerate(clusters):
        gs = {label[i] for i in members}
        merges += len(gs) - 1
        for g in gs:
            spread.setdefault(g, set()).add(c)
    extra = sum(len(cs) - 1 for g, cs in spread.items() if g < 1000)
    return extra, merges, len(clusters)


def _measure(texts: list[str], label: list[int], sims: Any, distance: float) -> dict[str, Any]:
    from flywheel.monitoring._curate import _groups_from_similarity

    clusters = _groups_from_similarity(sims, distance)
    extra, merges, items = _errors(clusters, label)
    return {"duplicates": round(extra / items, 4), "extra": extra, "false_merges": merges, "items": items}


def main() -> None:
    import argparse

    import numpy as np

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--judge-url", help="an OpenAI-compatible endpoint for curate's judge pass")
    ap.add_argument("--judge-model", default="SmolLM2-135M-Instruct")
    args = ap.parse_args()

    from flywheel.config import Settings
    from flywheel.knowledge import scoring_embedder
    from flywheel.knowledge._embeddings import facts_embedder
    from flywheel.monitoring._curate import question_similarity

    settings = Settings()
    embedders = {"minilm": scoring_embedder(settings), "minilm+use": facts_embedder(settings)}
    splits = {s: _pool(s) for s in ("train", "test")}
    results: dict[str, Any] = {}
    for (name, emb), lexical in itertools.product(embedders.items(), (0.0, 0.3, 0.5)):
        method = f"{name}{f' + terms {lexical}' if lexical else ''}"
        sims = {
            s: question_similarity(texts, np.asarray(emb.embed_documents(texts)), lexical)
            for s, (texts, _) in splits.items()
        }
        grid = [round(0.1 + 0.025 * k, 3) for k in range(21)]  # 0.10 … 0.60
        train = {d: _measure(*splits["train"], sims["train"], d) for d in grid}
        ok = [d for d in grid if train[d]["false_merges"] == 0]
        best = min(ok, key=lambda d: (train[d]["extra"], -d)) if ok else min(grid)
        results[method] = {
            "distance": best,
            "train": train[best],
            "test": _measure(*splits["test"], sims["test"], best),
        }
        print(f"{method:24s} d={best:.3f}  train {train[best]}  test {results[method]['test']}", flush=True)
    current = results["minilm"]
    chosen = min(results, key=lambda m: (results[m]["train"]["extra"], results[m]["train"]["false_merges"]))
    summary = {
        "method": chosen,
        "distance": results[chosen]["distance"],
        "test_duplicates": results[chosen]["test"]["duplicates"],
        "test_false_merges": results[chosen]["test"]["false_merges"],
        "baseline_minilm_test_duplicates": current["test"]["duplicates"],
        "baseline_minilm_test_false_merges": current["test"]["false_merges"],
    }
    if args.judge_url:
        from flywheel.llm import make_judge
        from flywheel.monitoring._curate import CurateOptions, _groups_from_similarity, merge_by_judge

        judge = make_judge(
            settings.model_copy(update={"judge_base_url": args.judge_url, "judge_model": args.judge_model})
        )
        name = "minilm+use" if chosen.startswith("minilm+use") else "minilm"
        lexical = float(chosen.rsplit(" ", 1)[1]) if "terms" in chosen else 0.0
        texts, label = splits["test"]
        sims = question_similarity(texts, np.asarray(embedders[name].embed_documents(texts)), lexical)
        groups = _groups_from_similarity(sims, results[chosen]["distance"])
        opts = CurateOptions()
        merged = merge_by_judge(groups, texts, sims, judge, opts.judge_band, opts.judge_pairs)
        extra, merges, items = _errors(merged, label)
        summary.update(
            judge=args.judge_model,
            judge_test_duplicates=round(extra / items, 4),
            judge_test_false_merges=merges,
        )
    print(json.dumps(summary, indent=2))
    write_result(
        "curation_dedup", summary, {"methods": results, "sizes": {s: len(t) for s, (t, _) in splits.items()}}
    )


if __name__ == "__main__":
    main()
