"""Layer 3 of the guardrail: a learned classifier that generalizes beyond the rules' keywords.

A logistic regression on TF-IDF character n-grams (2–5, within word boundaries) of the normalized
views of the text. Character n-grams see through leetspeak, spacing and look-alikes that survive
normalization, work for Japanese as well as English, and cost well under a millisecond — unlike a
sentence embedding (all-MiniLM-L6-v2: ~10 ms per question on 2 cores, English-only, and no better
in cross-validation on our set; see docs/security.md).

The model is trained on the train split of ``datasets/safety/safety.jsonl`` by
``python -m flywheel.safety.train`` and stored as plain JSON (vocabulary, idf, weights, threshold —
no pickle) in ``flywheel/safety/model.json``, so it ships with the package and loads offline.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

__all__ = ["CLASSIFIER_VIEWS", "Classifier", "classifier_text", "load_classifier"]

CLASSIFIER_VIEWS = ("text", "despaced", "deleet", "hidden", "decoded")
_WS = re.compile(r"\s\s+")
_JA = re.compile(r"[\u3040-\u30ff\u4e00-\u9fff]")


def classifier_text(named_views: list[tuple[str, str]]) -> str:
    """What the classifier reads: the distinct views it is trained on, joined."""
    return " | ".join(t for n, t in named_views if n in CLASSIFIER_VIEWS)


def char_wb_ngrams(text: str, lo: int, hi: int) -> list[str]:
    """Character n-grams inside word boundaries, exactly as scikit-learn's ``char_wb`` analyzer."""
    out: list[str] = []
    for w in _WS.sub(" ", text.lower()).split():
        w = f" {w} "
        n_w = len(w)
        for n in range(lo, hi + 1):
            offset = 0
            out.append(w[offset : offset + n])
            while offset + n < n_w:
                offset += 1
                out.append(w[offset : offset + n])
            if offset == 0:
                break
    return out


@dataclass
class Classifier:
    vocabulary: dict[str, int]
    idf: list[float]
    coef: list[float]
    intercept: float
    ngram_range: tuple[int, int]
    threshold: float
    meta: dict[str, Any]

    def threshold_for(self, text: str) -> float:
        """The calibrated threshold for the text's language (Japanese has its own)."""
        lang = "ja" if _JA.search(text) else "en"
        return float(self.meta.get("thresholds", {}).get(lang, self.threshold))

    def probability(self, text: str) -> float:
        counts: dict[int, int] = {}
        for g in char_wb_ngrams(text, *self.ngram_range):
            j = self.vocabulary.get(g)
            if j is not None:
                counts[j] = counts.get(j, 0) + 1
        if not counts:
            return 1 / (1 + math.exp(-self.intercept))
        weights = {j: (1 + math.log(c)) * self.idf[j] for j, c in counts.items()}  # sublinear tf · idf
        norm = math.sqrt(sum(v * v for v in weights.values())) or 1.0
        z = self.intercept + sum(self.coef[j] * v / norm for j, v in weights.items())
        return 1 / (1 + math.exp(-max(-30.0, min(30.0, z))))

    def to_json(self) -> dict[str, Any]:
        vocab = sorted(self.vocabulary, key=self.vocabulary.__getitem__)
        return {
            "kind": "tfidf_char_wb_logreg",
            "ngram_range": list(self.ngram_range),
            "threshold": self.threshold,
            "intercept": round(self.intercept, 6),
            "features": [[g, round(self.idf[i], 5), round(self.coef[i], 5)] for i, g in enumerate(vocab)],
            "meta": self.meta,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Classifier:
        feats = data["features"]
        return cls(
            {g: i for i, (g, _, _) in enumerate(feats)},
            [f[1] for f in feats],
            [f[2] for f in feats],
            float(data["intercept"]),
            (int(data["ngram_range"][0]), int(data["ngram_range"][1])),
            float(data["threshold"]),
            dict(data.get("meta", {})),
        )


@lru_cache(maxsize=1)
def load_classifier() -> Classifier | None:
    """The shipped model, or None when it is missing (the rules still run; doctor says so)."""
    try:
        raw = resources.files("flywheel.safety").joinpath("model.json").read_text("utf-8")
    except FileNotFoundError:
        return None
    return Classifier.from_json(json.loads(raw))
