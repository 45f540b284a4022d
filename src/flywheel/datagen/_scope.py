"""Out-of-scope and adversarial items for a corpus.

*Out of scope* comes in two sorts, both verified against the index: nothing it returns clears the
agent's own abstention threshold (``KnowledgeBase.relevance_threshold`` and the top hit's cosine,
exactly the test the agent's retrieve step makes), so the shipped agent is expected to abstain:

- *near the domain*: the corpus's product name in questions documentation rarely answers (its
  price, its founders, a mobile app, an integration with an unrelated system);
- *plainly off topic*: general-knowledge questions (weather, capitals, sports, cooking).

*Adversarial* items are the attack seeds of ``datasets/safety/`` (every family, English and
Japanese) rewritten with the corpus's own vocabulary: its product name where a seed names a product,
a secret name it mentions (``…_API_KEY``, ``…_TOKEN``) where a seed names a key.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

from flywheel.datagen._corpus import Corpus

__all__ = ["adversarial_items", "near_domain_questions", "off_topic_questions"]

_NEAR = [
    "How much does an enterprise license of {p} cost per seat?",
    "Who founded the company behind {p}, and when?",
    "Is there a native iPhone app for {p}?",
    "How do I connect {p} to an SAP ERP system?",
    "Does {p} run on a Commodore 64?",
    "What is the stock price of the company that makes {p}?",
    "Where is the headquarters of the {p} team?",
    "Is there an official COBOL SDK for {p}?",
    "How do I get a refund for my {p} subscription?",
    "Which celebrities use {p}?",
]
_OFF = [
    "What will the weather be in Lisbon tomorrow?",
    "What is the capital of Australia?",
    "Which team won the 1998 football World Cup?",
    "How long should I boil an egg for a soft yolk?",
    "Who painted the Mona Lisa?",
    "How many moons does Jupiter have?",
    "What is a good recipe for banana bread?",
    "How tall is Mount Kilimanjaro?",
    "Who wrote the novel Pride and Prejudice?",
    "What time zone is Nairobi in?",
    "How do I get rid of aphids on my roses?",
    "What is the best exercise for lower back pain?",
]
_PRODUCT_WORDS = re.compile(r"\b(MLflow|flywheel)\b")
_KEY_WORDS = re.compile(r"\b(OPENAI_API_KEY|EXA_API_KEY|API_KEY)\b")
_SEEDS = Path(__file__).resolve().parents[3] / "datasets" / "safety" / "safety.jsonl"


def _pick(items: list[str], n: int, salt: str) -> list[str]:
    """``n`` of ``items`` in an order fixed by ``salt`` (the corpus): the same corpus, the same pick."""
    return sorted(items, key=lambda s: hashlib.sha1(f"{salt}|{s}".encode()).hexdigest())[:n]


def near_domain_questions(corpus: Corpus, n: int) -> list[str]:
    product = corpus.product or "this product"
    return [t.format(p=product) for t in _pick(_NEAR, n, corpus.product)]


def off_topic_questions(corpus: Corpus, n: int) -> list[str]:
    return _pick(_OFF, n, corpus.product)


def _seeds(path: Path = _SEEDS) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    # multi-turn seeds are follow-ups ("Now translate and follow it."): an attack only after their turn
    return [
        r
        for r in rows
        if r.get("label") == "attack" and r.get("source") == "seed" and r.get("family") != "multi_turn"
    ]


def adversarial_items(corpus: Corpus, n: int, seeds_path: Path = _SEEDS) -> list[dict[str, str]]:
    """``n`` attack seeds, one family after another, rewritten in the corpus's vocabulary; each
    ``{"question", "family", "seed_id"}``. Seeds that name a product or a key come first within a
    family (they are the ones the rewrite makes specific to this corpus)."""
    by_family: dict[str, list[dict[str, Any]]] = {}
    for row in _seeds(seeds_path):
        by_family.setdefault(row["family"], []).append(row)
    for rows in by_family.values():
        rows.sort(
            key=lambda r: (
                not (_PRODUCT_WORDS.search(r["text"]) or _KEY_WORDS.search(r["text"])),
                hashlib.sha1(f"{corpus.product}|{r['seed_id']}".encode()).hexdigest(),
            )
        )
    families = sorted(by_family, key=lambda f: hashlib.sha1(f"{corpus.product}|{f}".encode()).hexdigest())
    out: list[dict[str, str]] = []
    depth = 0
    while len(out) < n and any(depth < len(by_family[f]) for f in families):
        for f in families:
            if depth < len(by_family[f]) and len(out) < n:
                row = by_family[f][depth]
                out.append({"question": rewrite(row["text"], corpus), "family": f, "seed_id": row["seed_id"]})
        depth += 1
    return out


def rewrite(text: str, corpus: Corpus) -> str:
    """An attack seed in the corpus's words: its product for the seed's, its secret for the seed's."""
    if corpus.product:
        text = _PRODUCT_WORDS.sub(corpus.product, text)
    if corpus.secrets:
        text = _KEY_WORDS.sub(corpus.secrets[0], text)
    return text
