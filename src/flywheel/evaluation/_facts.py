"""Local (no judge) fact support: does an answer state an expected fact, perhaps in other words?

A fact is split into claims (at ``;``, sentence ends and clause-joining conjunctions: "X is A; it
also does B" is two claims, so a compound fact earns partial credit instead of all or nothing). A claim is supported when some window
of 1–3 adjacent answer sentences (so a fact stated across two sentences counts) scores at least
``threshold`` on

    support = alpha · cosine(claim, window)  +  (1 − alpha) · key-term recall(claim → window)

where the cosine comes from the facts instrument (``knowledge.facts_embedder``: the mean of MiniLM's
and USE multilingual's cosines, which separates a paraphrase from a same-topic sentence with a wider
margin than either model alone), and key-term recall is the share of the claim's content words (lower-cased, light stemming,
identifiers split at ``. _ / @ -`` and code formatting removed, so ``mlflow.set_tracking_uri`` in
backticks matches "mlflow set_tracking_uri") found in the window. A claim with a number (a port, a
version, a count) needs the same number in the window: "port 5000" is not supported by "port 5001",
which is the usual way a different fact on the same topic differs. ``alpha`` and ``threshold`` are
calibrated on a train split of golden items by ``bench/answer_quality.py`` (evidence-as-answer must
be recognized, the evidence of other items on the same topic must not).

Padding does not pay: the answer's share of supported facts is multiplied by
``min(1, max_chars / len(answer))``, so pasting a whole page to cover every fact scores less than a
focused answer that states them.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from flywheel.knowledge import STOPWORDS, key_terms, plain

__all__ = ["FACTS_ALPHA", "FACTS_THRESHOLD", "FactMatch", "FactMatcher", "answer_sentences", "claims"]

# calibrated by bench/answer_quality.py on the train split of the MLflow docs golden set, with the
# facts instrument (knowledge.facts_embedder: MiniLM + USE); the grid point with the best evidence
# recall minus hard-negative rate, centre of its plateau; see its result file
FACTS_THRESHOLD = 0.5
FACTS_ALPHA = 0.5

_NUM = re.compile(r"(?<![\w.])\d+(?:\.\d+)*(?![\w])")
_SENT = re.compile(r"(?<=[.!?。])\s+|\n+")


_YES_NO = re.compile(r"^(yes|no)[.!,]?$", re.I)


def _content_words(text: str) -> int:
    return sum(1 for w in re.findall(r"[\w@./-]+", text.lower()) if w not in STOPWORDS)


def claims(fact: str) -> list[str]:
    """The checkable claims of a fact: split at ``;``, sentence ends, a comma before a conjunction
    (", and", ", but", ", with", ", so", ", while", ", which"), and a bare " and " joining two
    clauses of three or more content words each ("Aliases avoid hardcoding version numbers and enable
    roll-back by switching the alias" is two claims; "OpenAI and Anthropic" or "@invoke and @stream
    decorators" stay whole). A bare "Yes." / "No." answers the question and states nothing."""
    out: list[str] = []
    for part in re.split(r";\s+|(?<=[.!?])\s+(?=[A-Z])", fact):
        for clause in re.split(r",\s+(?:and|but|with|so|while|which)\s+", part):
            segments = clause.split(" and ")
            current = segments[0]
            for seg in segments[1:]:
                if _content_words(current) >= 3 and _content_words(seg) >= 3:
                    out.append(current)
                    current = seg
                else:
                    current = f"{current} and {seg}"
            out.append(current)
    parts = [c.strip() for c in out if len(c.strip()) > 3 and not _YES_NO.match(c.strip())]
    return parts or [fact]


def answer_sentences(answer: str) -> list[str]:
    return [p.strip() for p in _SENT.split(plain(answer)) if len(p.strip()) > 3]


@dataclass
class FactMatch:
    fact: str
    credit: float  # share of its claims supported
    best: float  # best support of its weakest claim
    window: str  # the answer window that supported its first claim best


@dataclass
class FactMatcher:
    """``match(facts, answer)`` → per fact credit. ``embed`` maps texts to normalized vectors."""

    embed: Callable[[list[str]], list[list[float]]]
    threshold: float = FACTS_THRESHOLD
    alpha: float = FACTS_ALPHA
    window: int = 3
    max_chars: int = 1500

    def windows(self, answer: str) -> list[str]:
        sents = answer_sentences(answer)
        return [
            " ".join(sents[i : i + k])
            for i in range(len(sents))
            for k in range(1, self.window + 1)
            if i + k <= len(sents)
        ]

    def support(self, claim_list: list[str], wins: list[str]) -> np.ndarray:
        """Support of each claim (rows) in each window (columns)."""
        vecs = np.asarray(self.embed(claim_list + wins), dtype=float)
        norms = np.linalg.norm(vecs, axis=1, keepdims=True)
        vecs = vecs / np.where(norms == 0, 1, norms)
        cos = vecs[: len(claim_list)] @ vecs[len(claim_list) :].T
        wterms = [key_terms(w) for w in wins]
        wnums = [set(_NUM.findall(w)) for w in wins]
        out = np.zeros_like(cos)
        for i, c in enumerate(claim_list):
            ct, nums = key_terms(c), set(_NUM.findall(c))
            for j in range(len(wins)):
                if not nums <= wnums[j]:
                    continue  # a number the window does not state: a different fact
                recall = len(ct & wterms[j]) / max(1, len(ct))
                out[i, j] = self.alpha * cos[i, j] + (1 - self.alpha) * recall
        return out

    def match(self, facts: list[str], answer: str) -> list[FactMatch]:
        wins = self.windows(answer)
        if not wins:
            return [FactMatch(f, 0.0, 0.0, "") for f in facts]
        per_fact = [claims(f) for f in facts]
        flat = [c for cl in per_fact for c in cl]
        sup = self.support(flat, wins)
        out, row = [], 0
        for fact, cl in zip(facts, per_fact, strict=True):
            rows = sup[row : row + len(cl)]
            row += len(cl)
            best = rows.max(axis=1)
            out.append(
                FactMatch(
                    fact,
                    float((best >= self.threshold).mean()),
                    float(best.min()),
                    wins[int(rows[0].argmax())],
                )
            )
        return out

    def padding_factor(self, answer: str) -> float:
        n = len(answer.strip())
        return min(1.0, self.max_chars / n) if n else 1.0

    def score(self, facts: list[str], answer: str) -> tuple[float, list[FactMatch]]:
        """Mean credit over the facts, times the padding factor."""
        matches = self.match(facts, answer)
        raw = sum(m.credit for m in matches) / len(matches) if matches else 0.0
        return raw * self.padding_factor(answer), matches
