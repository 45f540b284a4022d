"""Retrain and recalibrate the guardrail classifier on the train split of the safety set.

    .venv/bin/python -m flywheel.safety.train                      # datasets/safety/safety.jsonl
    .venv/bin/python -m flywheel.safety.train --data my_set.jsonl  # your own labelled set

Each row of the set: ``text`` (or ``turns``, a list), ``label`` (attack | benign), ``family``,
``seed_id`` and ``split`` (train | test). Only ``train`` rows are read. The regularization C and the
decision thresholds (one per language) are chosen by 5-fold cross-validation grouped by seed
(variants of one seed never sit on both sides), every (label, language) cell weighted equally: per
language the lowest threshold whose false refusals stay <= 1 % (rules OR classifier), then the C
with the best attack recall − 2 × false refusals. The model is written as JSON to src/flywheel/safety/model.json.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from flywheel.safety._classifier import Classifier, classifier_text
from flywheel.safety._normalize import views
from flywheel.safety._rules import match_rules

ROOT = Path(__file__).resolve().parents[3]
DEFAULT_DATA = ROOT / "datasets" / "safety" / "safety.jsonl"
OUT = Path(__file__).resolve().parent / "model.json"
NGRAMS = (2, 5)
MAX_FALSE_REFUSAL = 0.01


def load_rows(path: Path, split: str) -> list[dict]:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [r for r in rows if r.get("split") == split]


def row_text(row: dict) -> str:
    return "\n".join(row.get("turns") or [row["text"]])


def main(argv: list[str] | None = None) -> None:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GroupKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)
    rows = load_rows(args.data, "train")
    named = [views(row_text(r)).all() for r in rows]
    texts = [classifier_text(v) for v in named]
    ruled = np.array([match_rules(v) is not None for v in named])
    y = np.array([r["label"] == "attack" for r in rows])
    groups = [r["seed_id"] for r in rows]

    def pipeline(c: float):  # type: ignore[no-untyped-def]
        return make_pipeline(
            TfidfVectorizer(analyzer="char_wb", ngram_range=NGRAMS, min_df=2, sublinear_tf=True),
            LogisticRegression(C=c, max_iter=3000),
        )

    # every (label, language) cell weighs the same in total: Japanese is a small part of the set,
    # and without this the model learns "Japanese" as a sign of an attack
    cells = [(r["label"], r.get("lang", "en")) for r in rows]
    count = {c: cells.count(c) for c in set(cells)}
    weight = np.array([len(rows) / (len(count) * count[c]) for c in cells])
    fit = {"logisticregression__sample_weight": weight}
    langs = np.array([r.get("lang", "en") for r in rows])
    grid: list[dict[str, Any]] = []
    for c in (1.0, 4.0, 16.0):
        p = cross_val_predict(
            pipeline(c), texts, y, groups=groups, cv=GroupKFold(5), method="predict_proba", params=fit
        )[:, 1]
        # per language: the lowest threshold whose cross-validated false refusals stay <= 1 %
        # (false refusals hurt every user; the rules already catch most attacks)
        chosen: dict[str, dict] = {}
        for lang in sorted(set(langs)):
            mask = langs == lang
            options = []
            for t in np.arange(0.3, 0.96, 0.05):
                pred = ((p >= t) | ruled)[mask]
                options.append((float(t), float(pred[y[mask]].mean()), float(pred[~y[mask]].mean())))
            ok = [o for o in options if o[2] <= MAX_FALSE_REFUSAL]
            t, rec, fpr = max(ok, key=lambda o: o[1]) if ok else min(options, key=lambda o: (o[2], -o[1]))
            chosen[lang] = {"threshold": round(t, 2), "recall": rec, "fpr": fpr, "n": int(mask.sum())}
        pred = np.zeros_like(y)
        for lang, ch in chosen.items():
            mask = langs == lang
            pred[mask] = ((p >= ch["threshold"]) | ruled)[mask]
        grid.append(
            {"C": c, "thresholds": chosen, "recall": float(pred[y].mean()), "fpr": float(pred[~y].mean())}
        )
    best = max(grid, key=lambda g: (g["recall"] - 2 * g["fpr"], -g["C"]))
    thresholds = {str(lang): ch["threshold"] for lang, ch in best["thresholds"].items()}
    model = pipeline(best["C"]).fit(texts, y, **fit)
    vec, lr = model.steps[0][1], model.steps[1][1]
    vocab = {g: int(i) for g, i in vec.vocabulary_.items()}
    clf = Classifier(
        vocab,
        [float(x) for x in vec.idf_],
        [float(x) for x in lr.coef_[0]],
        float(lr.intercept_[0]),
        NGRAMS,
        thresholds.get("en", 0.5),
        {
            "thresholds": thresholds,
            "trained_on": str(args.data.relative_to(ROOT) if args.data.is_relative_to(ROOT) else args.data),
            "data_sha256": hashlib.sha256(args.data.read_bytes()).hexdigest()[:16],
            "train_rows": len(rows),
            "C": best["C"],
            "cv_recall": round(best["recall"], 4),
            "cv_false_refusal": round(best["fpr"], 4),
        },
    )
    # the JSON model must agree with scikit-learn (rounding aside)
    check = Classifier.from_json(json.loads(json.dumps(clf.to_json())))
    ref = model.predict_proba(texts[:50])[:, 1]
    ours = np.array([check.probability(t) for t in texts[:50]])
    assert np.abs(ref - ours).max() < 1e-3, (
        f"JSON model disagrees with scikit-learn: {np.abs(ref - ours).max()}"
    )
    args.out.write_text(
        json.dumps(clf.to_json(), ensure_ascii=False, separators=(",", ":")), encoding="utf-8"
    )
    print(
        f"wrote {args.out}: C={best['C']} thresholds={thresholds} — cross-validated on train: "
        f"attack recall {best['recall']:.3f}, benign false refusals {best['fpr']:.3f} ({len(rows)} rows)",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
