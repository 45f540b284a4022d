"""The offline generator: questions built from the structure documentation already has, no LLM.

Each chunk is read as Markdown (front matter, code blocks, HTML and link targets dropped) into
headings, table rows, numbered steps and sentences; every shape below that matches becomes one
candidate item whose facts are the passage's own words (so the support filter rarely drops one —
what it checks is that nothing was lost in the cleaning):

=================  ==============================================  ===================================
shape              the docs say                                    the question
=================  ==============================================  ===================================
``table_default``  a table row under a header with a *default*     "What is the default value of KEY?"
                   column (``| KEY | 5000 | port of … |``)
``table_key``      a table row whose first cell is a code name     "What does KEY do?"
``default``        a sentence with "defaults to / by default"      "What is the default value of X?"
``definition``     "X is/are a|an|the …" (X short, not a pronoun)  "What is X?"
``to_vp``          "To VP, …"                                       "How do I VP?"
``you_can``        "You can VP …"                                   "How can I VP?"
``lets_you``       "X lets/allows/enables you to VP"                "How do I VP?"
``if_you``         "If you VP, …"                                   "What happens if I VP?"
``procedure``      two or more numbered steps                      "What are the steps for HEADING?"
``heading``        a section heading (the fallback)                "What does the documentation say
                                                                   about HEADING?"
=================  ==============================================  ===================================

Edge cases are made from accepted answerable items: the bare search term (a terse, keyword query
like the ones users type) and, for definition, default and heading shapes, a Japanese question
around the English term ("KEY のデフォルト値は何ですか？"). That is all the offline generator can do
in Japanese: it cannot translate a verb phrase, so ``--lang ja`` gives only those three shapes; the
LLM generator asks any shape in Japanese. A Japanese corpus gets heading and "X は … です" shapes.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field

from flywheel.datagen._corpus import Corpus, CorpusChunk
from flywheel.safety import first_person

__all__ = ["Candidate", "OfflineGenerator", "units"]

GENERATOR_VERSION = "offline-1"

_FRONT = re.compile(r"\A---\s*\n.*?\n---\s*\n", re.S)
_FENCE = re.compile(r"(?ms)^[ \t]*(```|~~~).*?^[ \t]*\1[^\n]*$")
_HTML = re.compile(r"<[^>\n]{1,300}>")
_LINK = re.compile(r"!?\[([^\]\n]{0,300})\]\([^)\n]{0,500}\)")
_SENT = re.compile(r"(?<=[.!?])\s+(?=[A-Z`\"'(])")
_STEP = re.compile(r"^\s*\d+[.)]\s+(.+)$")
_BULLET = re.compile(r"^\s*[-*+]\s+")
_CODE = re.compile(r"`([^`\n]{1,80})`")
_PRONOUN = re.compile(
    r"^(it|this|that|there|these|those|they|here|which|you|we|one|each|every|all|some|both|"
    r"the following|following|such|another|other|its|their|our|your)\b",
    re.I,
)
_DEFINITION = re.compile(
    r"^(?P<art>The |An? )?(?P<x>[`\w][\w`.\-/@ ]{1,70}?)\s+(?P<v>is|are)\s+(?:an?|the|one of the)\s+(?P<rest>.+)$"
)
# a named setting followed closely by its default: "`X` defaults to 5", "X (default `5`)"
_DEFAULT = re.compile(
    r"(?P<x>`[^`\n]{2,60}`|\b[A-Z][A-Z0-9]*_[A-Z0-9_]{2,}\b)[^.;]{0,40}?"
    r"\b(?:defaults?\s+(?:to|is)|\(default\b|default\s+value\s+is|is\s+\S+\s+by\s+default)",
    re.I,
)
_TO_VP = re.compile(r"^To\s+(?P<vp>[a-z][^,]{3,90}),\s+(?P<rest>.+)$")
_YOU_CAN = re.compile(r"^You can\s+(?P<vp>[a-z].{3,120})$")
_LETS = re.compile(r"\b(?:lets|allows|enables) you(?: to)?\s+(?P<vp>[a-z].{3,120})$")
_IF_YOU = re.compile(r"^If you\s+(?P<vp>[a-z][^,]{3,90}),\s+(?P<rest>.+)$")
_GENERIC_HEADINGS = frozenset(
    [
        "overview",
        "introduction",
        "summary",
        "example",
        "examples",
        "usage",
        "notes",
        "note",
        "next",
        "steps",
        "see",
        "also",
        "reference",
        "related",
        "prerequisites",
        "requirements",
        "faq",
        "contents",
    ]
)


def _plain(text: str) -> str:
    """Question text: no code markers, emphasis or pictographs (emoji), single spaces."""
    text = text.replace("`", "").replace("**", "").replace("__", "")
    text = "".join(ch for ch in text if unicodedata.category(ch) not in ("So", "Cs", "Co"))
    return re.sub(r"\s+", " ", text).strip()


_TOPIC_NOISE = frozenset(
    [
        "guide",
        "guides",
        "tutorial",
        "tutorials",
        "overview",
        "introduction",
        "intro",
        "quickstart",
        "quick",
        "start",
        "getting",
        "started",
        "using",
        "with",
        "and",
        "the",
        "a",
        "an",
        "for",
        "of",
        "to",
        "in",
        "on",
        "how",
        "docs",
        "documentation",
        "reference",
        "api",
        "flavor",
        "flavors",
        "integration",
        "integrations",
        "concepts",
        "basics",
        "page",
    ]
)


def _topic(title: str, product: str) -> str:
    """What a page is about, from its title: "Tracing Ollama" → "Ollama", "MLflow DSPy Flavor" →
    "DSPy" (the product name, a leading -ing word and guide words dropped); '' when nothing is left
    or more than three words are."""
    words = _plain(title).split()
    if words and _base_verb(words[0]):
        words = words[1:]
    keep = [
        w for w in words if w.lower() not in _TOPIC_NOISE and w.lower() != product.lower() and not w.isdigit()
    ]
    return " ".join(keep) if 0 < len(keep) <= 3 else ""


# a verb phrase that leans on its context ("reproduce its behavior") or points elsewhere ("learn
# more", "see the guide") makes no question a reader of one passage could ask
_DEPENDENT = re.compile(
    r"\b(it|its|them|this|that|these|those|they|their|here|below|above|following|previous|"
    r"learn more|read more|see|refer to|get started)\b",
    re.I,
)


def _vp(text: str, limit: int = 14) -> str:
    """A verb phrase cut at the first clause boundary; '' when too long to make a fair question or
    when it depends on its context."""
    text = re.split(r"[,;:(]|\s[-—]\s|\.(\s|$)", text, maxsplit=1)[0].strip()
    words = text.split()
    if not 2 <= len(words) <= limit or _DEPENDENT.search(text):
        return ""
    return first_person(_plain(text)).rstrip(".")


@dataclass(frozen=True)
class Unit:
    kind: str  # sentence | row | step
    text: str
    cells: tuple[str, ...] = ()


def units(text: str) -> Iterator[Unit]:
    """Sentences, table rows (with their cells) and numbered steps of a chunk, outside code blocks;
    a list item's wrapped lines belong to it."""
    text = _FRONT.sub("", text)
    text = _FENCE.sub("\n", text)
    text = _LINK.sub(lambda m: m.group(1), text)
    text = _HTML.sub(" ", text)
    for block in re.split(r"\n\s*\n", text):
        yield from _block_units([ln.strip() for ln in block.splitlines() if ln.strip()])


def _prose(parts: list[str]) -> Iterator[Unit]:
    for s in _SENT.split(" ".join(parts)):
        s = re.sub(r"\s+", " ", s).strip()
        if len(s.split()) >= 4:
            yield Unit("sentence", s)


def _list_item(kind: str, parts: list[str]) -> Iterator[Unit]:
    text = re.sub(r"\s+", " ", " ".join(parts)).strip()
    if kind == "step":
        yield Unit("step", text)
    elif len(text.split()) >= 4:
        yield Unit("sentence", text)


def _block_units(lines: list[str]) -> Iterator[Unit]:
    para: list[str] = []
    item: list[str] = []  # the list item (bullet or step) being read
    kind = ""
    for s in lines:
        m = _STEP.match(s)
        starts_item = bool(m or _BULLET.match(s))
        if s.startswith(("#", ":::", "|")) or starts_item:
            yield from _prose(para)
            yield from _list_item(kind, item) if item else iter(())
            para, item, kind = [], [], ""
            if s.startswith("|"):
                cells = tuple(c.strip() for c in s.strip("|").split("|"))
                if cells and not set("".join(cells)) <= set("-: "):
                    yield Unit("row", " | ".join(cells), cells)
            elif starts_item:
                kind = "step" if m else "bullet"
                item = [m.group(1) if m else _BULLET.sub("", s)]
            continue
        if item:
            item.append(s)
        else:
            para.append(s.lstrip("> ") if s.startswith(">") else s)
    yield from _prose(para)
    if item:
        yield from _list_item(kind, item)


@dataclass
class Candidate:
    """One generated item before filtering: a question, its facts, the chunk they came from."""

    kind: str  # happy_path | edge_case
    question: str
    facts: list[str]
    search_term: str
    chunk: CorpusChunk
    shape: str
    subject: str  # what the question is about (with the shape: the item's anchor in its section)
    lang: str = "en"
    generator: str = GENERATOR_VERSION
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def item_id(self) -> str:
        """Stable across edits of the page: where it is (page, section), how it was asked, about what."""
        key = f"{self.chunk.source}|{self.chunk.headings}|{self.shape}|{self.subject.lower()}|{self.lang}"
        return "gen-" + hashlib.sha1(key.encode()).hexdigest()[:10]


def _header(chunk_text: str) -> tuple[str, ...] | None:
    """The header cells of the first table of a chunk (the row above a |---| line)."""
    lines = [ln.strip() for ln in chunk_text.splitlines()]
    for i in range(1, len(lines)):
        rule = lines[i].startswith("|") and set(lines[i].replace("|", "").strip()) <= set("-: ")
        if rule and lines[i - 1].startswith("|"):
            return tuple(c.strip().lower() for c in lines[i - 1].strip("|").split("|"))
    return None


# the order in which a document's candidates are tried: the most specific statements first
PRIORITY = {
    s: n
    for n, s in enumerate(
        [
            "table_default",
            "default",
            "definition",
            "to_vp",
            "you_can",
            "lets_you",
            "if_you",
            "procedure",
            "table_key",
            "heading",
        ]
    )
}

# verbs whose -ing form drops an e ("configuring" → "configure"); others keep the stem or undouble
_E_VERBS = frozenset(
    [
        "use",
        "configure",
        "write",
        "manage",
        "save",
        "change",
        "cache",
        "serve",
        "create",
        "update",
        "remove",
        "delete",
        "tune",
        "compare",
        "generate",
        "evaluate",
        "release",
        "retrieve",
        "receive",
        "prepare",
        "score",
        "store",
        "close",
        "choose",
        "move",
        "make",
        "take",
        "produce",
        "merge",
        "validate",
        "migrate",
        "translate",
        "schedule",
        "trace",
        "replace",
        "describe",
        "define",
        "enable",
        "disable",
        "handle",
        "name",
        "route",
        "scale",
        "share",
        "stage",
        "rotate",
        "type",
        "upgrade",
        "compose",
        "resolve",
        "code",
        "execute",
        "combine",
        "customize",
        "optimize",
        "organize",
        "analyze",
        "visualize",
        "authenticate",
        "integrate",
        "operate",
        "isolate",
        "automate",
        "calibrate",
        "promote",
        "simulate",
        "annotate",
        "curate",
        "provide",
        "include",
        "exclude",
        "refine",
        "pause",
        "resume",
        "continue",
        "archive",
        "package",
        "invoke",
        "revoke",
        "parse",
        "reuse",
        "guide",
        "decide",
        "separate",
        "emulate",
        "initialize",
        "serialize",
        "normalize",
        "override",
        "capture",
        "measure",
        "restore",
        "ensure",
        "require",
        "encode",
        "decode",
        "give",
        "live",
        "leave",
        "believe",
        "issue",
        "declare",
        "examine",
        "explore",
        "compute",
        "rate",
        "locate",
        "note",
    ]
)
# base verbs a how-to heading starts with ("Register a prompt", "Disable auto-tracing")
_IMPERATIVE = _E_VERBS | frozenset(
    [
        "register",
        "install",
        "add",
        "set",
        "run",
        "deploy",
        "build",
        "connect",
        "export",
        "import",
        "log",
        "load",
        "search",
        "track",
        "view",
        "query",
        "start",
        "stop",
        "test",
        "train",
        "call",
        "write",
        "read",
        "get",
        "find",
        "filter",
        "monitor",
        "debug",
        "list",
        "upgrade",
        "access",
        "instrument",
        "send",
        "stream",
        "protect",
        "secure",
        "limit",
        "select",
        "split",
        "switch",
        "turn",
        "try",
        "keep",
        "check",
        "verify",
        "sign",
        "pass",
        "print",
        "open",
        "return",
        "attach",
        "bring",
        "clean",
        "mount",
        "pin",
        "pull",
        "push",
        "fetch",
        "add",
        "sync",
        "rebuild",
        "retry",
        "run",
        "install",
        "uninstall",
        "migrate",
        "ingest",
        "ask",
        "gate",
        "tune",
        "serve",
        "evaluate",
        "enable",
        "disable",
    ]
)
_UNDOUBLE = frozenset(
    ["runn", "sett", "gett", "stopp", "shipp", "plann", "logg", "debugg", "mapp", "dropp", "begg"]
)


def _base_verb(word: str) -> str:
    """The base form of an -ing word ("Running" → "run", "Configuring" → "configure"), or ''."""
    w = word.lower()
    if not w.endswith("ing") or len(w) < 6:
        return ""
    stem = w[:-3]
    if stem + "e" in _E_VERBS:
        return stem + "e"
    if stem in _UNDOUBLE:
        return stem[:-1]
    return stem


def _heading_question(heading: str, title: str, lang: str, product: str = "") -> str:
    """A question a user would ask for a section: "Running at scale" → "How do I run at scale?",
    "Tracing" → "How does tracing work?", "The quality gate" → "What is the quality gate in P?",
    an error message heading → "I get “…” — what now?"."""
    h = re.sub(r"^(step|part|phase|stage)\s*\d+\s*[:.)-]\s*", "", _plain(heading), flags=re.I)
    h = h.split(": ")[0].strip().rstrip(".")
    if lang == "ja":
        return f"{h} について教えてください。"
    if re.search(r"[\"“”']", h) and len(h.split()) >= 2:
        return f"I get {h} — what now?"
    if h.endswith("?"):
        return h
    words = h.split()
    if not words:
        return ""
    base = _base_verb(words[0])
    in_product = f" in {product}" if product and product.lower() not in h.lower() else ""
    if base and len(words) > 1:
        return f"How do I {base} {' '.join(words[1:])}?"
    if words[0].lower() in _IMPERATIVE and len(words) > 1:
        return f"How do I {words[0].lower()} {' '.join(words[1:])}?"
    if base:
        return f"How does {h.lower()} work{in_product}?"
    page = re.sub(r"^the\s+", "", _plain(title), flags=re.I)
    if words[0].lower() in ("how", "what", "why", "when", "which", "where", "who"):
        return f"What does the documentation say about {h[0].lower() + h[1:]}{in_product}?"
    if len(words) == 1 and not re.search(r"[A-Z_.`]", h[1:]) and page and page.lower() != h.lower():
        return f"What does the {page} page say about {h.lower()}?"  # "Sources": too generic alone
    if len(words) <= 6 and "," not in h and " and " not in h:
        first = h[0].lower() + h[1:] if words[0] in ("The", "A", "An") else h
        last = words[-1].lower()
        verb = "are" if last.endswith("s") and not last.endswith(("ss", "us", "is")) else "is"
        return f"What {verb} {first}{in_product}?"
    return f"What does the documentation say about {h}{in_product}?"


class OfflineGenerator:
    """``candidates(corpus)`` → answerable candidates per chunk, best shapes first."""

    name = "offline"

    def __init__(self, lang: str | None = None) -> None:
        self.lang = lang  # None: the corpus's language

    def settings(self) -> dict[str, str]:
        return {"name": self.name, "version": GENERATOR_VERSION, "lang": self.lang or "corpus"}

    def candidates(self, corpus: Corpus) -> dict[str, list[Candidate]]:
        """chunk id → its candidates (happy path), in the order the chunk states them."""
        lang = self.lang or corpus.lang
        headers: dict[tuple[str, str], tuple[str, ...]] = {}
        out: dict[str, list[Candidate]] = {}
        for chunk in corpus.chunks:
            head = _header(chunk.text)
            key = (chunk.source, chunk.headings)
            if head:
                headers[key] = head
            found = list(self.extract(chunk, headers.get(key), lang, corpus.product))
            if found:
                out[chunk.id] = found
        return out

    def extract(
        self, chunk: CorpusChunk, header: tuple[str, ...] | None, lang: str, product: str = ""
    ) -> Iterator[Candidate]:
        """Every candidate of one chunk (``header``: its table's header, maybe from an earlier chunk)."""
        if lang == "ja" and _cjk_text(chunk.text):
            yield from self._japanese(chunk)
            return
        us = list(units(chunk.text))
        heading = chunk.heading
        seen: set[tuple[str, str]] = set()

        def make(shape: str, subject: str, question: str, facts: list[str], term: str) -> Candidate | None:
            if (shape, subject.lower()) in seen or not question or not facts:
                return None
            seen.add((shape, subject.lower()))
            return Candidate("happy_path", question, facts, _plain(term)[:80], chunk, shape, subject, "en")

        default_col = None
        if header:
            default_col = next((i for i, h in enumerate(header) if "default" in h), None)
        for u in us:
            c: Candidate | None = None
            if u.kind == "row" and len(u.cells) >= 2:
                key = _CODE.sub(r"\1", u.cells[0]).strip()
                if not key or len(key) > 60 or (header and key.lower() == header[0]):
                    continue
                meaning = _plain(u.cells[-1])
                named = bool(_CODE.match(u.cells[0]) or re.search(r"[_./-]|^[A-Z]+ /", key))
                # a plain word ("strategy") is a key of this table, not of the whole product
                plain_key = not re.search(r"[_./@-]|[A-Z]", key) and heading.lower() not in key.lower()
                section = _plain(heading)
                section = (
                    section[0].lower() + section[1:] if section[:4] in ("The ", "A ", "An ") else section
                )
                where = f" in {section}" if plain_key and heading else ""
                if default_col is not None and 0 < default_col < len(u.cells) - 1:
                    value = _plain(u.cells[default_col])
                    if value and len(meaning.split()) >= 2:
                        fact = f"{key} defaults to {value}: {meaning}"
                        c = make(
                            "table_default", key, f"What is the default value of {key}{where}?", [fact], key
                        )
                        if c is not None:
                            c.extra["default_col"] = str(default_col)
                elif named and len(meaning.split()) >= 3:
                    c = make("table_key", key, f"What does {key} do{where}?", [f"{key}: {meaning}"], key)
            elif u.kind == "sentence" and not u.text.endswith(":"):
                s = u.text
                if (m := _DEFAULT.search(s)) is not None:
                    x = _plain(m.group("x"))
                    c = make("default", x, f"What is the default value of {x}?", [s], x)
                if c is None and (m := _TO_VP.match(s)) and (vp := _vp(m.group("vp"))):
                    c = make("to_vp", vp, f"How do I {vp}?", [s], heading)
                if c is None and (m := _IF_YOU.match(s)) and (vp := _vp(m.group("vp"))):
                    c = make("if_you", vp, f"What happens if I {vp}?", [s], heading)
                if c is None and (m := _YOU_CAN.match(s)) and (vp := _vp(m.group("vp"))):
                    c = make("you_can", vp, f"How can I {vp}?", [s], heading)
                if c is None and (m := _LETS.search(s)) and (vp := _vp(m.group("vp"))):
                    c = make("lets_you", vp, f"How do I {vp}?", [s], heading)
                if c is None and (m := _DEFINITION.match(s)):
                    x = m.group("x").strip()
                    specific = (
                        "`" in x or len(x.split()) >= 2 or x[:1].isupper() or bool(re.search(r"[_.]", x))
                    )
                    if (
                        specific
                        and not _PRONOUN.match(x)
                        and not re.search(r"\b(but|and|or|when|if|that|which|only|also)\b", x)
                        and len(x.split()) <= 4
                        and len(m.group("rest").split()) >= 3
                    ):
                        art = (m.group("art") or "").strip().lower()
                        lower = x[:1].islower()  # "A dead-letter queue is …" → "What is a dead-letter queue?"
                        subject = (
                            f"{art} {_plain(x)}".strip() if art == "the" or (art and lower) else _plain(x)
                        )
                        verb = "are" if m.group("v") == "are" else "is"
                        c = make("definition", x, f"What {verb} {subject}?", [s], x)
            if c is not None:
                yield c
        steps = [u.text for u in us if u.kind == "step"]
        base = _base_verb(heading.split()[0]) if heading.split() else ""
        if len(steps) >= 2 and base and len(heading.split()) > 1:
            question = f"How do I {base} {_plain(' '.join(heading.split()[1:]))}?"
            c = make("procedure", heading, question, steps[:3], heading)
            if c:
                yield c
        prose = [
            u.text
            for u in us
            if u.kind == "sentence" and len(u.text.split()) >= 6 and not u.text.endswith(":")
        ]
        if prose and heading and heading.lower().strip() not in _GENERIC_HEADINGS:
            question = _heading_question(heading, chunk.title, "en", product)
            # a subsection's heading alone is ambiguous across pages ("Token usage" under "Tracing
            # Ollama" and under twenty other integrations): ask about the page's topic too
            topic = _topic(chunk.title or chunk.headings.split(" > ")[0], product)
            if " > " in chunk.headings and topic and topic.lower() not in question.lower():
                question = question.rstrip("?") + f" for {topic}?"
            c = make("heading", heading, question, prose[:2], heading)
            if c:
                yield c

    def _japanese(self, chunk: CorpusChunk) -> Iterator[Candidate]:
        """A Japanese page: its heading, and "X は … です" sentences."""
        sents = [
            s.strip() for s in re.split(r"(?<=[。！？])\s*|\n+", _FENCE.sub("", chunk.text)) if s.strip()
        ]
        prose = [s for s in sents if len(s) >= 12 and not s.startswith(("#", "|", "-", "`"))]
        for s in prose:
            m = re.match(r"^(?P<x>[^、。\s]{2,30}?)(?:と)?は[、]?(?P<rest>.+(です|ます|である)。)$", s)
            if m:
                x = m.group("x")
                cid = Candidate("happy_path", f"{x}とは何ですか？", [s], x, chunk, "definition", x, "ja")
                yield cid
                break
        if prose and chunk.heading:
            h = chunk.heading
            yield Candidate(
                "happy_path", _heading_question(h, "", "ja"), prose[:2], h, chunk, "heading", h, "ja"
            )


def _cjk_text(text: str) -> bool:
    return len(re.findall(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff]", text)) > len(text) * 0.1


_JA_TEMPLATES = {
    "definition": "{x} とは何ですか？",
    "default": "{x} のデフォルト値は何ですか？",
    "table_default": "{x} のデフォルト値は何ですか？",
    "table_key": "{x} は何をするものですか？",
    "heading": "{x} について教えてください。",
}


def japanese(c: Candidate) -> Candidate | None:
    """The same item asked in Japanese around its English term, for the shapes a template can ask
    (definitions, defaults, table keys, headings); None for the rest (a verb phrase cannot be
    translated offline)."""
    template = _JA_TEMPLATES.get(c.shape)
    if not template:
        return None
    return Candidate(
        c.kind,
        template.format(x=_plain(c.subject)),
        c.facts,
        c.search_term,
        c.chunk,
        c.shape,
        c.subject,
        "ja",
        c.generator,
    )


def keyword_query(c: Candidate) -> Candidate | None:
    """The item as a terse keyword query (its search term), when the term is specific enough: an
    identifier, or two or more words that are not all generic."""
    term = c.search_term.strip()
    specific = bool(re.search(r"[_.]|[A-Z]{2,}|\w-\w", term)) or len(term.split()) >= 2
    if not specific or len(term) < 4 or term.lower() == c.question.lower():
        return None
    return Candidate(
        "edge_case", term, c.facts, term, c.chunk, c.shape + "/keywords", c.subject, c.lang, c.generator
    )
