"""The ``grounded`` answer policy: an extractive answer composed of the excerpts' own sentences.

Small local models lose what retrieval found (SmolLM2-135M repeats the question or loops); this
policy answers with the most relevant sentences of the retrieved excerpts instead, each cited [n]:

1. every excerpt is cut into units — sentences, list items and table rows; a fenced code block is
   one unit and is never cut;
2. units are ranked against the question: cosine similarity with the local embedder plus the share
   of the question's key terms the unit contains (a BM25-like lexical signal that catches exact
   identifiers embeddings blur), with a small bonus for the excerpt's retrieval rank;
3. the best units are taken greedily, skipping near-duplicates, until ``max_units`` or
   ``max_chars``; what a chosen sentence introduces comes along (the code block right after it, or
   the first list items or table rows after a sentence ending with a colon); long code is skipped;
4. the chosen units are put back in document order, grouped by excerpt (the best excerpt first),
   each prose unit followed by its citation.

Also here: :func:`lead_is_grounded` (an optional LLM-written lead sentence is kept only when every
number, identifier and command in it appears in the excerpts) and :func:`trim_repetition`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from flywheel.knowledge._terms import key_terms

__all__ = [
    "Selected",
    "Unit",
    "compose",
    "japanese_lead",
    "lead_is_grounded",
    "select_units",
    "split_units",
    "trim_repetition",
]

_FENCE = re.compile(r"^\s*(```|~~~)")
_SENT_END = re.compile(r"(?<=[.!?。])\s+(?=[A-Z0-9`\"'(\[*_]|[\u3040-\u30ff\u4e00-\u9fff])")


@dataclass
class Unit:
    hit: int  # 1-based excerpt number (the citation)
    pos: int  # position within the excerpt
    text: str
    code: bool = False


@dataclass
class Selected:
    unit: Unit
    score: float


def _is_noise(line: str) -> bool:
    s = line.strip()
    if not s or s.startswith("#"):
        return True
    if re.fullmatch(r"\|?[\s:|-]+\|?", s):  # table separator row
        return True
    return len(re.sub(r"[\W_]+", "", s)) < 3


def split_units(text: str, hit: int) -> list[Unit]:
    """Units of one excerpt in order: code blocks whole, prose cut into sentences."""
    units: list[Unit] = []
    lines = text.splitlines()
    i = 0
    para: list[str] = []

    def flush() -> None:
        if para:
            joined = " ".join(p.strip() for p in para)
            for s in _SENT_END.split(joined):
                if not _is_noise(s):
                    units.append(Unit(hit, len(units), s.strip()))
            para.clear()

    while i < len(lines):
        line = lines[i]
        if _FENCE.match(line):
            flush()
            fence = _FENCE.match(line).group(1)  # type: ignore[union-attr]
            block = [line]
            i += 1
            while i < len(lines):
                block.append(lines[i])
                if lines[i].strip().startswith(fence):
                    break
                i += 1
            if not block[-1].strip().startswith(fence) or len(block) == 1:
                block.append(fence)  # an excerpt cut inside a block: close it
            if len(block) > 2:
                units.append(Unit(hit, len(units), "\n".join(block), code=True))
            i += 1
            continue
        s = line.strip()
        if not s:
            flush()
        elif re.match(r"^([-*+]|\d+[.)])\s+|^\|", s):  # list item or table row: its own unit
            flush()
            if not _is_noise(s):
                units.append(Unit(hit, len(units), s))
        elif s.startswith("#"):
            flush()
        else:
            para.append(s)
        i += 1
    flush()
    return units


def _is_item(text: str) -> bool:
    return bool(re.match(r"^([-*+]|\d+[.)])\s+|^\|", text))


def _norm(text: str) -> str:
    return re.sub(r"\W+", " ", text.lower()).strip()


def select_units(
    question: str,
    hits: list[dict],
    embed: Callable[[list[str]], list[list[float]]],
    *,
    max_units: int = 8,
    max_chars: int = 1200,
    lexical_weight: float = 0.3,
    rank_weight: float = 0.06,
    dedup: float = 0.92,
    max_code_chars: int = 600,
    max_code_blocks: int = 2,
    max_candidates: int = 24,
    diversity: float = 0.0,
    table_penalty: float = 0.1,
) -> list[Selected]:
    """The best units of ``hits`` for ``question``, in answer order (see the module docstring)."""
    units = [u for n, h in enumerate(hits, 1) for u in split_units(h.get("text", ""), n)]
    if not units:
        return []
    qterms = key_terms(question)
    lexical = [len(qterms & key_terms(u.text)) / max(1, len(qterms)) for u in units]
    # embedding is the cost: only the lexically likeliest units are candidates; the units a chosen
    # one introduces (its code block, its list) are still taken from the whole excerpt, in order
    candidates = sorted(
        sorted(
            range(len(units)), key=lambda i: (-lexical[i] + rank_weight * (units[i].hit - 1), units[i].pos)
        )[:max_candidates]
    )
    raw = np.asarray(embed([question, *(units[i].text for i in candidates)]), dtype=float)
    raw /= np.maximum(np.linalg.norm(raw, axis=1, keepdims=True), 1e-9)
    vec = {i: raw[k + 1] for k, i in enumerate(candidates)}
    # a table row on its own lacks its header: it comes in after a sentence that announces it
    scores = {
        i: float(vec[i] @ raw[0])
        + lexical_weight * lexical[i]
        - rank_weight * (units[i].hit - 1)
        - (table_penalty if units[i].text.startswith("|") else 0)
        for i in candidates
    }
    chosen: list[int] = []
    seen: set[str] = set()
    used = 0
    left = set(candidates)

    def similar(i: int) -> float:
        return max((float(vec[i] @ vec[j]) for j in chosen if j in vec), default=0.0)

    def gain(i: int) -> float:
        """Maximal marginal relevance: relevance minus similarity to what is already chosen."""
        return scores[i] - diversity * similar(i) if diversity else scores[i]

    def codes() -> int:
        return sum(units[j].code for j in chosen)

    while left and len(chosen) < max_units:
        i = max(sorted(left), key=gain)
        left.discard(i)
        u = units[i]
        key = _norm(u.text)
        if key in seen or similar(i) >= dedup:
            continue
        size = len(u.text)
        if (chosen and used + size > max_chars) or (
            u.code and (size > max_code_chars or codes() >= max_code_blocks)
        ):
            continue
        chosen.append(i)
        seen.add(key)
        used += size
        # what a chosen sentence introduces comes along: the code block right after it, or the
        # first items of the list or table it announces with a colon
        follow = 3 if u.text.rstrip().endswith(":") else 0 if u.code else 1
        nxt = i + 1
        while follow and nxt < len(units) and units[nxt].hit == u.hit and nxt not in chosen:
            v = units[nxt]
            if not (v.code or _is_item(v.text)) or used + len(v.text) > max_chars * 1.5:
                break
            if v.code and (len(v.text) > max_code_chars or codes() >= max_code_blocks):
                break
            chosen.append(nxt)
            scores.setdefault(nxt, scores[i])  # ranked with the unit that introduced it
            left.discard(nxt)
            seen.add(_norm(v.text))
            used += len(v.text)
            follow -= 1
            nxt += 1
    # answer order: excerpts by their best chosen unit, units in document order within an excerpt
    best_of: dict[int, float] = {}
    for i in chosen:
        best_of[units[i].hit] = max(best_of.get(units[i].hit, -9.0), scores[i])
    chosen.sort(key=lambda i: (-best_of[units[i].hit], units[i].pos))
    return [Selected(units[i], round(scores[i], 4)) for i in chosen]


def compose(selected: list[Selected], lead: str = "") -> str:
    """The answer text: one paragraph per excerpt, each sentence cited, code blocks whole."""
    blocks: list[str] = [lead] if lead else []
    current: list[str] = []
    last_hit = None
    for sel in selected:
        u = sel.unit
        if last_hit is not None and u.hit != last_hit and current:
            blocks.append(" ".join(current))
            current = []
        last_hit = u.hit
        if u.code:
            if current:
                blocks.append(" ".join(current))
                current = []
            blocks.append(f"{u.text}\n[{u.hit}]" if not _cited_before(blocks, u.hit) else u.text)
        elif _is_item(u.text):
            if current:
                blocks.append(" ".join(current))
                current = []
            blocks.append(_cite(u.text, u.hit))
        else:
            current.append(_cite(u.text, u.hit))
    if current:
        blocks.append(" ".join(current))
    return "\n\n".join(b for b in blocks if b)


def japanese_lead(selected: list[Selected], hits: list[dict]) -> str:
    """The lead of a grounded answer to a Japanese question from English pages: which pages answer
    it, in Japanese, each cited; the excerpts follow in the original English (the local model cannot
    translate them faithfully, and a wrong translation would be worse than none)."""
    pages: dict[str, list[int]] = {}  # page title → its excerpt numbers, in answer order
    for n in dict.fromkeys(s.unit.hit for s in selected):
        hit = hits[n - 1] if 0 < n <= len(hits) else {}
        pages.setdefault(str(hit.get("title") or hit.get("source") or n), []).append(n)
    cited = "、".join(f"「{title}」" + "".join(f"[{n}]" for n in ns) for title, ns in pages.items())
    return f"英語のドキュメントの該当箇所です: {cited}。以下は原文からの抜粋です。"


def _cite(text: str, n: int) -> str:
    """``text [n].`` — the citation inside the sentence's final full stop, else at the end."""
    if text.endswith((".", "!", "?", "。")) and not text.endswith(".."):
        return f"{text[:-1]} [{n}]{text[-1]}"
    return f"{text} [{n}]"


def _cited_before(blocks: list[str], hit: int) -> bool:
    return bool(blocks) and f"[{hit}]" in blocks[-1]


_NUMBER = re.compile(r"(?<![\w.])\d+(?:[.,]\d+)*")
_CODE = re.compile(r"`([^`]+)`")
_IDENT = re.compile(r"\b[A-Za-z_][\w]*(?:[._/-][\w]+)+\b|\b[a-z]+[A-Z]\w*\b|\b[A-Z][A-Z0-9_]{2,}\b")


def lead_is_grounded(lead: str, excerpts: str) -> bool:
    """True when every number, code span, identifier and capitalized name of ``lead`` occurs in
    ``excerpts``: the lead may rephrase, never add facts."""
    hay = excerpts.lower()
    for num in _NUMBER.findall(lead):
        if num not in excerpts:
            return False
    for code in _CODE.findall(lead):
        if code.lower() not in hay:
            return False
    for ident in _IDENT.findall(lead):
        if ident.lower() not in hay:
            return False
    words = re.findall(r"(?<!^)(?<![.!?]\s)\b[A-Z][a-zA-Z]{2,}\b", lead)
    return all(w.lower() in hay for w in words)


def trim_repetition(text: str, max_repeats: int = 1) -> str:
    """Drop repeated sentences and lines (a small model's loop), keeping the first of each; a sentence
    repeated more than ``max_repeats + 1`` times ends the answer there."""
    out: list[str] = []
    counts: dict[str, int] = {}
    in_code = False
    for line in text.splitlines():
        if line.lstrip().startswith(("```", "~~~")):
            in_code = not in_code
        if in_code or line.lstrip().startswith(("```", "~~~")):
            out.append(line)
            continue
        m = re.match(r"^\s*(\d+[.)]|[-*+])\s+", line)
        marker = m.group(0) if m else ""
        kept: list[str] = []
        stop = False
        for piece in _SENT_END.split(line[len(marker) :]):
            key = _norm(piece)
            if not key:
                continue
            counts[key] = counts.get(key, 0) + 1
            if counts[key] > max_repeats + 1:
                stop = True
                break
            if counts[key] <= max_repeats:
                kept.append(piece)
        if kept:
            out.append(marker + " ".join(kept))
        elif not line.strip():
            out.append("")
        if stop:
            break
    return re.sub(r"\n{3,}", "\n\n", "\n".join(out)).strip()
