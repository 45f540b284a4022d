"""Key terms of a text: content words, lower-cased and lightly stemmed; identifiers also give their
parts (``mlflow.set_tracking_uri`` → mlflow, set_tracking_uri, tracking, uri). Code and emphasis
markers and citation marks are ignored. Shared by answer selection and the local facts scorer."""

from __future__ import annotations

import re

from flywheel.knowledge._citations import CITATION

__all__ = ["STOPWORDS", "key_terms", "plain"]

STOPWORDS = frozenset(
    [
        "a",
        "an",
        "the",
        "and",
        "or",
        "of",
        "to",
        "in",
        "on",
        "for",
        "with",
        "by",
        "is",
        "are",
        "be",
        "been",
        "as",
        "at",
        "it",
        "its",
        "this",
        "that",
        "from",
        "can",
        "you",
        "your",
        "i",
        "do",
        "does",
        "how",
        "what",
        "which",
        "when",
        "where",
        "who",
        "why",
        "will",
        "not",
        "into",
        "than",
        "then",
        "there",
        "these",
        "those",
        "has",
        "have",
        "had",
        "was",
        "were",
        "use",
        "used",
        "using",
        "via",
        "per",
        "also",
        "only",
        "any",
        "all",
        "each",
        "such",
        "if",
        "so",
        "may",
        "more",
        "most",
        "other",
        "some",
        "their",
        "they",
        "them",
        "our",
        "we",
        "us",
        "me",
        "my",
        "e.g",
        "eg",
        "etc",
        "i.e",
        "ie",
        "one",
        "should",
        "would",
        "could",
        "must",
        "set",
        "get",
    ]
)
_WORD = re.compile(r"[A-Za-z0-9_./@:-]+|[\u3040-\u30ff\u4e00-\u9fff]+")


def plain(text: str) -> str:
    """Code and emphasis markers removed: `x`, **x**, and citation marks [n]."""
    return re.sub(r"[`*]+", "", CITATION.sub("", text))


def _stem(w: str) -> str:
    """A light, consistent stemmer (Porter's step 1 in spirit): refuse / refuses / refused → refus,
    address / addresses → address, policy / policies → policy."""
    if len(w) <= 3 or not w.isascii():
        return w
    if w.endswith("sses"):
        w = w[:-2]
    elif w.endswith("ies") and len(w) > 4:
        w = w[:-3] + "y"
    elif w.endswith("s") and not w.endswith(("ss", "us", "is")):
        w = w[:-1]
    for suf in ("ing", "ed"):
        if len(w) > len(suf) + 2 and w.endswith(suf):
            w = w[: -len(suf)]
            break
    if len(w) > 3 and w.endswith("e"):
        w = w[:-1]
    return w


def key_terms(text: str) -> set[str]:
    out: set[str] = set()
    for raw in _WORD.findall(plain(text).lower()):
        w = raw.strip(".:-/@")
        if not w or w in STOPWORDS:
            continue
        out.add(_stem(w))
        for part in re.split(r"[_./@:-]+", w):
            if part and part not in STOPWORDS and part != w:
                out.add(_stem(part))
    return out
