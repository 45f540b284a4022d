"""The ``grounded`` answer policy: an extractive answer composed of the excerpts' own sentences.

Small local models lose what retrieval found (SmolLM2-135M repeats the question or loops); this
policy answers with the most relevant sentences of the retrieved excerpts instead, each cited [n]:

1. every excerpt is cut into units (knowledge/_units.py) — sentences, list items, table rows (each
   with its table's header) and whole fenced code blocks;
2. units are ranked against the question: cosine similarity (the unit vectors stored at ingest and
   the question vector the search already computed: nothing is embedded twice) plus the share of
   the question's key terms the unit contains (a BM25-like signal that catches exact identifiers
   embeddings blur), with a small bonus for the excerpt's retrieval rank; a table row must match
   the question to be a candidate at all;
3. the best units are taken greedily, skipping near-duplicates, until ``max_units`` or
   ``max_chars``; what a chosen sentence introduces comes along (the code block right after it, or
   the first matching list items or table rows after "the following:"), and a sentence that
   announces something is dropped when what it announces cannot come; a sentence that refers back
   ("these steps", "as shown above") is taken only after the sentence it refers to; a code block is
   quoted whole or not at all;
4. answer order: excerpts by their best unit; within one, the best unit (and what it brought)
   first, then document order; one citation per section (:func:`section_citations`), never inside
   a code block, a table's rows under their header.

Also here: :func:`lead_is_grounded` (an optional LLM-written lead sentence is kept only when every
number, identifier and command in it appears in the excerpts) and :func:`trim_repetition`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from flywheel.knowledge import Unit, cited_numbers, is_item, key_terms, split_units

__all__ = [
    "Selected",
    "compose",
    "japanese_lead",
    "lead_is_grounded",
    "markdown_problems",
    "section_citations",
    "select_units",
    "trim_repetition",
]

ROW_MATCH = 0.75  # a table row's share of the question's terms, relative to the table's best row


@dataclass
class Selected:
    unit: Unit
    score: float


def _norm(text: str) -> str:
    return re.sub(r"\W+", " ", text.lower()).strip()


def select_units(
    question: str,
    hits: list[dict],
    embed: Callable[[list[str]], list[list[float]]],
    *,
    qvec: list[float] | None = None,
    stored: list[dict[int, np.ndarray]] | None = None,
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
    """The best units of ``hits`` for ``question``, in answer order (see the module docstring).

    ``qvec``: the question's vector when the caller has it (the search embedded it); ``stored``:
    per hit, the unit vectors computed at ingest (knowledge/_units.py). Only what neither provides is
    embedded here, in one call."""
    units = [u for n, h in enumerate(hits, 1) for u in split_units(h.get("text", ""), n)]
    if not units:
        return []
    qterms = key_terms(question)
    lexical = [len(qterms & key_terms(u.text)) / max(1, len(qterms)) for u in units]
    # a table row is a candidate only when it matches the question (a row about another setting is
    # noise); the lexically likeliest units are the candidates; the units a chosen one introduces
    # (its code block, its list) are still taken from the whole excerpt, in order
    best_row: dict[tuple[int, str], float] = {}
    for i, u in enumerate(units):
        if u.header:
            best_row[(u.hit, u.header)] = max(best_row.get((u.hit, u.header), 0.0), lexical[i])
    # a row matches when it shares the question's terms about as well as the table's best row
    matches = [
        not u.header or (lexical[i] > 0 and lexical[i] >= ROW_MATCH * best_row[(u.hit, u.header)])
        for i, u in enumerate(units)
    ]
    eligible = [i for i in range(len(units)) if matches[i]]
    candidates = sorted(
        sorted(eligible, key=lambda i: (-lexical[i] + rank_weight * (units[i].hit - 1), units[i].pos))[
            :max_candidates
        ]
    )
    if not candidates:
        return []
    rows = _vectors(question, [units[i] for i in candidates], embed, qvec, stored)
    qv = rows.pop(-1)
    vec = {i: rows[k] for k, i in enumerate(candidates)}
    scores = {
        i: float(vec[i] @ qv)
        + lexical_weight * lexical[i]
        - rank_weight * (units[i].hit - 1)
        - (table_penalty if units[i].header else 0)
        for i in candidates
    }
    chosen: list[int] = []
    leader: dict[int, int] = {}  # a unit that came along → the unit that introduced it
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
        # a sentence that needs the one before it ("these steps", "as shown above") only with it
        if u.refers_back and not (i > 0 and (i - 1) in chosen and units[i - 1].hit == u.hit):
            continue
        size = len(u.text)
        if (chosen and used + size > max_chars) or (
            u.code and (size > max_code_chars or codes() >= max_code_blocks)
        ):
            continue
        followers = _followers(units, i, chosen, matches, used + size, max_chars, max_code_chars, codes())
        if u.introduces and not followers:
            continue  # "the following:" with nothing following it
        # a code block or list item chosen on its own brings the sentence that announces it
        prev = i - 1
        if (
            (u.code or is_item(u.text))
            and prev >= 0
            and units[prev].hit == u.hit
            and units[prev].introduces
            and prev not in chosen
            and _norm(units[prev].text) not in seen
        ):
            followers = [prev, *followers]
        chosen.append(i)
        seen.add(key)
        used += size
        for j in followers:
            chosen.append(j)
            leader[j] = i
            scores.setdefault(j, scores[i])  # ranked with the unit that introduced it
            left.discard(j)
            seen.add(_norm(units[j].text))
            used += len(units[j].text)
    return [Selected(units[i], round(scores[i], 4)) for i in _answer_order(units, chosen, scores, leader)]


def _vectors(
    question: str,
    chosen: list[Unit],
    embed: Callable[[list[str]], list[list[float]]],
    qvec: list[float] | None,
    stored: list[dict[int, np.ndarray]] | None,
) -> list[np.ndarray]:
    """Normalized vectors of ``chosen`` and, last, of the question: stored ones where there are,
    the rest embedded in one call."""
    found: list[np.ndarray | None] = [
        (stored[u.hit - 1].get(u.key) if stored and 0 < u.hit <= len(stored) else None) for u in chosen
    ]
    todo = [u.text for u, v in zip(chosen, found, strict=True) if v is None]
    if qvec is None:
        todo.append(question)
    fresh: Iterator[np.ndarray] = iter(np.asarray(embed(todo), dtype=np.float32) if todo else [])
    out = [v if v is not None else next(fresh) for v in found]
    out.append(np.asarray(qvec, dtype=np.float32) if qvec is not None else next(fresh))
    return [v / max(float(np.linalg.norm(v)), 1e-9) for v in out]


def _followers(
    units: list[Unit],
    i: int,
    chosen: list[int],
    matches: list[bool],
    used: int,
    max_chars: int,
    max_code_chars: int,
    code_count: int,
) -> list[int]:
    """What unit ``i`` brings along: the code block right after it, or the first items of the list
    or table it announces; a table's rows only when they match the question."""
    u = units[i]
    follow = 3 if u.introduces else 0 if u.code else 1
    out: list[int] = []
    nxt = i + 1
    while follow and nxt < len(units) and units[nxt].hit == u.hit and nxt not in chosen:
        v = units[nxt]
        if not (v.code or is_item(v.text)) or used + len(v.text) > max_chars * 1.5:
            break
        if v.code and (len(v.text) > max_code_chars or code_count >= 2):
            break
        if not matches[nxt]:
            nxt += 1  # a row about something else: skipped, the next row may match
            continue
        out.append(nxt)
        used += len(v.text)
        follow -= 1
        nxt += 1
    return out


def _answer_order(
    units: list[Unit], chosen: list[int], scores: dict[int, float], leader: dict[int, int]
) -> list[int]:
    """Excerpts by their best unit; within an excerpt the best unit (with what it brought) first,
    the rest in document order — the answer opens with its most relevant sentence."""
    best_of: dict[int, float] = {}
    for i in chosen:
        best_of[units[i].hit] = max(best_of.get(units[i].hit, -9.0), scores[i])
    top: dict[int, int] = {}
    for i in chosen:
        if i not in leader and (units[i].hit not in top or scores[i] > scores[top[units[i].hit]]):
            top[units[i].hit] = i

    def lead_of(i: int) -> int:
        return leader.get(i, i)

    return sorted(
        chosen,
        key=lambda i: (-best_of[units[i].hit], lead_of(i) != top.get(units[i].hit), units[i].pos),
    )


def section_citations(hits: list[dict]) -> dict[int, int]:
    """Excerpt number → the number it is cited by: chunks of the same section (same page and
    heading path) share the first one's number, so a section is never listed twice."""
    first: dict[tuple[str, str], int] = {}
    out: dict[int, int] = {}
    for n, h in enumerate(hits, 1):
        key = (str(h.get("source", "")), str(h.get("headings", "")))
        out[n] = first.setdefault(key, n) if key != ("", "") else n
    return out


def compose(selected: list[Selected], lead: str = "", cite: dict[int, int] | None = None) -> str:
    """The answer text: one paragraph per excerpt, each sentence cited, code blocks whole and never
    cited inside, a table's rows under their header. ``cite`` maps excerpt numbers to the numbers
    shown (:func:`section_citations`)."""
    blocks: list[str] = [lead] if lead else []
    current: list[str] = []
    table: tuple[str, list[str], int] | None = None  # (header, rows, citation)
    last_hit = None

    def flush() -> None:
        nonlocal table
        if current:
            blocks.append(" ".join(current))
            current.clear()
        if table:
            header, rows, n = table
            if header:
                if not _cited_before(blocks, n):
                    rows[-1] = _cite_row(rows[-1], n)
                blocks.append("\n".join([header, *rows]))
            else:  # rows whose header the excerpt lacks: a list, not a table without a head
                blocks.extend(_cite(_row_as_item(r), n) for r in rows)
            table = None

    for sel in selected:
        u = sel.unit
        n = (cite or {}).get(u.hit, u.hit)
        if last_hit is not None and u.hit != last_hit:
            flush()
        last_hit = u.hit
        if u.header or (u.text.startswith("|") and is_item(u.text)):
            if table and table[0] == u.header and table[2] == n:
                table[1].append(u.text)
            else:
                flush()
                table = (u.header, [u.text], n)
            continue
        if table:
            flush()
        if u.code:
            flush()
            blocks.append(f"{u.text}\n\n[{n}]" if not _cited_before(blocks, n) else u.text)
        elif is_item(u.text):
            flush()
            blocks.append(_cite(u.text, n))
        else:
            current.append(_cite(u.text, n))
    flush()
    return "\n\n".join(b for b in blocks if b)


def _row_as_item(row: str) -> str:
    cells = [c.strip() for c in row.strip().strip("|").split("|")]
    return "- " + " — ".join(c for c in cells if c)


def _cite_row(row: str, n: int) -> str:
    """A table row with its citation in its last cell (a line after a table would join it)."""
    body = row.rstrip()
    return f"{body[:-1].rstrip()} [{n}] |" if body.endswith("|") else f"{body} [{n}]"


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


def _cited_before(blocks: list[str], n: int) -> bool:
    """The block just before cites ``n`` (the sentence that announced this code block or table)."""
    return bool(blocks) and not blocks[-1].lstrip().startswith(("```", "~~~")) and f"[{n}]" in blocks[-1]


_SENT_END = re.compile(r"(?<=[.!?。])\s+(?=[A-Z0-9`\"'(\[*_]|[\u3040-\u30ff\u4e00-\u9fff])")
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


_TABLE_SEP = re.compile(r"\|?[\s:|-]+\|?")


def markdown_problems(answer: str, excerpts: list[str], sections: dict[int, int] | None = None) -> list[str]:
    """What is malformed in an extractive ``answer`` (empty when well-formed): an unbalanced fence, a
    code block that is not quoted whole from an excerpt (a citation marker inside one, a cut), a
    table row without its header, and — given ``sections`` (:func:`section_citations`) — a section
    cited under a second number. Parsed with markdown-it (CommonMark + tables)."""
    from markdown_it import MarkdownIt

    found = []
    if sum(1 for line in answer.splitlines() if re.match(r"^\s*(```|~~~)", line)) % 2:
        found.append("unbalanced fence")
    for token in MarkdownIt("commonmark").enable("table").parse(answer):
        body = token.content.rstrip("\n")
        if token.type == "fence" and body and not any(body in text for text in excerpts):
            found.append(f"code block not quoted whole: {body[:60]!r}")
    lines = answer.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("|") and not (i > 0 and lines[i - 1].startswith("|")):
            nxt = lines[i + 1].strip() if i + 1 < len(lines) else ""
            if not _TABLE_SEP.fullmatch(nxt):
                found.append(f"table row without its header: {line[:60]!r}")
    for n in sorted(set(cited_numbers(answer))):
        if sections and sections.get(n, n) != n:
            found.append(f"[{n}] cites a section already cited as [{sections[n]}]")
    return found
