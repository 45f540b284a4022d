"""Calibrates the local (no judge) mode of the response_facts scorer on the MLflow docs golden set.

Positive pairs: each expected fact against the documentation quotes that support it
(metadata.evidence of its own item). Negative pairs: the same fact against the best-matching quote of
every other item (hard negatives: same product, other topic). The threshold that maximizes balanced
accuracy is the scorer's default. Writes bench/results/calibrate_response_facts.json.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench._util import write_result  # noqa: E402

GOLDEN = ROOT.parent / "shared" / "datasets" / "mlflow-docs-golden.json"


def main() -> None:
    if not GOLDEN.exists():
        print(f"skipped: {GOLDEN} is absent")
        return
    from flywheel.knowledge import SentenceTransformerEmbedder

    emb = SentenceTransformerEmbedder("all-MiniLM-L6-v2")
    gold = [g for g in json.loads(GOLDEN.read_text()) if g["metadata"]["kind"] == "happy_path"]
    pos: list[float] = []
    neg: list[float] = []
    for i, g in enumerate(gold):
        facts = np.array(emb.embed_documents(g["expected_output"]["response_facts"]))
        own = np.array(emb.embed_documents(g["metadata"]["evidence"]))
        others = np.array(
            emb.embed_documents([q for j, h in enumerate(gold) if j != i for q in h["metadata"]["evidence"]])
        )
        pos += list((facts @ own.T).max(axis=1))
        neg += list((facts @ others.T).max(axis=1))
    p, n = np.array(pos), np.array(neg)
    grid = [
        (round(float(t), 2), float(((p >= t).mean() + (n < t).mean()) / 2)) for t in np.arange(0.3, 0.9, 0.01)
    ]
    best, acc = max(grid, key=lambda x: x[1])
    summary = {
        "threshold": best,
        "balanced_accuracy": round(acc, 3),
        "tpr": round(float((p >= best).mean()), 3),
        "tnr": round(float((n < best).mean()), 3),
        "positives": len(p),
        "negatives": len(n),
    }
    print(json.dumps(summary, indent=2))
    print(f"wrote {write_result('calibrate_response_facts', summary, {'grid': grid})}")


if __name__ == "__main__":
    main()
