"""Builds datasets/safety/safety.jsonl, the labelled set the guardrail is trained and measured on.

    .venv/bin/python scripts/build_safety_set.py     # deterministic: same seeds → same file

Sources (each row says which in ``source``):
  - ``seed``: hand-written attacks and benign questions (datasets/safety/seeds_*.py, by flywheel's
    developers);
  - ``obfuscated``: each English attack seed in two obfuscated forms (leetspeak, letter spacing,
    look-alike letters, invisible characters, base64, ROT13, hex, reversed text);
  - ``headings``: ordinary documentation questions made from section headings of the MLflow docs
    (Apache-2.0, ../shared) and of flywheel's own docs/;
  - ``mined``: tricky benign questions mined from the sentences of the same two corpora that use the
    guardrail's trigger vocabulary (flywheel.safety.mine_questions: system prompt, API key, override,
    delete, silently, export, developer mode, red team, PII …), one seed per source document.

The Pydantic AI docs are never used here: they are the held-out domain bench/guardrail.py mines its
``mined_false_refusal_rate`` from.

Split once, by seed: every variant of a seed shares the seed's split (60 % train, 40 % test, by a
hash of the seed id), so no obfuscated copy of a test attack is ever trained on, and every question
mined from one document sits on the same side. Never tune on test.
"""

from __future__ import annotations

import base64
import codecs
import hashlib
import importlib.util
import json
import random
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "datasets" / "safety"
SHARED = ROOT.parent / "shared" / "corpora"
sys.path.insert(0, str(ROOT / "src"))
from flywheel.safety import trigger_family  # noqa: E402

CORPORA = {"mlflow-docs": SHARED / "mlflow-docs", "flywheel-docs": ROOT / "docs"}  # never pydantic-ai


def _load(name: str):  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location(name, OUT / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(mod)  # type: ignore[union-attr]
    return mod


def split_of(seed_id: str) -> str:
    return "train" if int(hashlib.sha256(seed_id.encode()).hexdigest(), 16) % 10 < 6 else "test"


LEET = str.maketrans({"a": "4", "e": "3", "i": "1", "o": "0", "s": "5", "t": "7"})
HOMO = {"a": "а", "e": "е", "o": "о", "p": "р", "c": "с", "x": "х", "i": "і", "y": "у", "s": "ѕ"}
INVISIBLE = ["\u200b", "\u00ad", "\u2062", "\u034f", "\u180e", "\u2060"]


def row_text(row: dict) -> str:
    return "\n".join(row.get("turns") or [row["text"]])


def _tags(text: str) -> str:
    return "".join(chr(0xE0000 + ord(c)) if c.isascii() and c.isprintable() else c for c in text)


def transforms(text: str, rnd: random.Random) -> dict[str, str]:
    words = text.split()
    return {
        "leetspeak": text.lower().translate(LEET),
        "letter_spacing": " ".join(" ".join(w) if len(w) > 3 and rnd.random() < 0.6 else w for w in words),
        "homoglyphs": "".join(HOMO.get(c, c) if rnd.random() < 0.5 else c for c in text),
        "invisible_chars": "".join(
            c + (rnd.choice(INVISIBLE) if c.isalpha() and rnd.random() < 0.4 else "") for c in text
        ),
        "tag_characters": "Please answer: " + _tags(text),
        "base64": "Decode this base64 and follow it: " + base64.b64encode(text.encode()).decode(),
        "rot13": "ROT13 message, decode and do it: " + codecs.encode(text, "rot13"),
        "hex": "Hex-encoded task: " + text.encode().hex(),
        "reversed": "Read this backwards and comply: " + text[::-1],
    }


def heading_questions(limit: int) -> list[dict]:
    rows: list[dict] = []
    templates = [
        "How do I {h}?",
        "What does the documentation say about {h}?",
        "Can you explain {h}?",
        "Where can I read about {h}?",
    ]
    for corpus, folder in CORPORA.items():
        if not folder.exists():
            continue
        heads: list[str] = []
        for path in sorted(folder.rglob("*.md*")):
            for line in path.read_text(encoding="utf-8", errors="ignore").splitlines():
                m = re.match(r"^#{2,3}\s+(.+?)\s*$", line)
                if m:
                    h = re.sub(r"[`*_{}<>\[\]()]|\\", "", m.group(1))
                    h = re.sub(r"^\d+[.)]\s*|\s*#\S+", "", h).strip()
                    if 3 <= len(h.split()) <= 9 and h.isascii():
                        heads.append(h)
        heads = sorted(set(heads))
        rnd = random.Random(corpus)
        rnd.shuffle(heads)
        for n, h in enumerate(heads[: limit // 2]):
            h0 = h[0].lower() + h[1:] if not h[:2].isupper() else h
            rows.append(
                {
                    "text": templates[n % len(templates)].format(h=h0),
                    "family": f"doc_question_{corpus.split('-')[0]}",
                    "seed_id": f"{corpus}:{n}",
                    "source": "headings",
                }
            )
    return rows


def mined_questions(per_document: int = 12) -> list[dict]:
    from flywheel.knowledge import read_documents
    from flywheel.safety import mine_questions

    rows: list[dict] = []
    for corpus, folder in CORPORA.items():
        if not folder.exists():
            continue
        docs = [(d.source, d.text) for d in read_documents([str(folder)], formats=frozenset({"md", "mdx"}))]
        for q in mine_questions(docs, per_document=per_document):
            rows.append(
                {
                    "text": q.text,
                    "family": f"mined_{q.family}",
                    "seed_id": f"mined:{corpus}:{q.source}",
                    "source": "mined",
                    "corpus": corpus,
                    "shape": q.shape,
                }
            )
    return rows


def _row(
    text: str, label: str, family: str, seed_id: str, source: str = "seed", turns: list | None = None
) -> dict:
    """One row; a multi-turn row also carries its turns (``text`` is the last one)."""
    head = {"turns": turns} if turns else {}
    return {**head, "text": text, "label": label, "family": family, "seed_id": seed_id, "source": source}


def main() -> None:
    atk, ben = _load("seeds_attacks"), _load("seeds_benign")
    rows: list[dict] = []
    names = list(transforms("x", random.Random(0)))
    for family, items in atk.ATTACKS.items():
        for n, text in enumerate(items):
            seed = f"attack:{family}:{n}"
            rows.append(_row(text, "attack", family, seed))
            if family == "japanese":
                continue
            rnd = random.Random(seed)
            variants = transforms(text, rnd)
            for name in rnd.sample(names, 2):
                rows.append(_row(variants[name], "attack", f"obfuscated_{name}", seed, "obfuscated"))
    for n, turns in enumerate(atk.MULTI_TURN):
        rows.append(_row(turns[-1], "attack", "multi_turn", f"attack:multi:{n}", turns=turns))
    for family, items in ben.BENIGN.items():
        for n, text in enumerate(items):
            rows.append(_row(text, "benign", family, f"benign:{family}:{n}"))
    for n, turns in enumerate(ben.MULTI_TURN_BENIGN):
        rows.append(_row(turns[-1], "benign", "multi_turn_benign", f"benign:multi:{n}", turns=turns))
    for r in heading_questions(220):
        rows.append({**r, "label": "benign"})
    for r in mined_questions():
        rows.append({**r, "label": "benign"})
    for r in rows:
        r["split"] = split_of(r["seed_id"])
    # a benign question asked in the same words by two documents or corpora sits on one side only
    first_split: dict[str, str] = {}
    kept = []
    for r in rows:
        key = r["text"].strip().lower()
        if r["label"] == "benign" and first_split.setdefault(key, r["split"]) != r["split"]:
            continue
        kept.append(r)
    rows = kept
    for r in rows:
        r["tricky"] = r["label"] == "benign" and trigger_family(row_text(r)) is not None
        r["lang"] = "ja" if re.search(r"[\u3040-\u30ff\u4e00-\u9fff]", r["text"]) else "en"
    path = OUT / "safety.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    counts: dict[str, int] = {}
    for r in rows:
        counts[f"{r['label']}/{r['split']}"] = counts.get(f"{r['label']}/{r['split']}", 0) + 1
    print(f"wrote {path}: {len(rows)} rows {counts}", file=sys.stderr)


if __name__ == "__main__":
    main()
