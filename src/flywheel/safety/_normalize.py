"""Layer 1 of the guardrail: normalization and the views of a text that the other layers screen.

An attacker hides words from a keyword screen; each view undoes one way of hiding them:

- ``text``: NFKC (full-width → ASCII), every invisible character removed (Unicode categories Cf —
  zero-width, soft hyphen U+00AD, invisible operators U+2062, Mongolian vowel separator U+180E —
  plus U+034F and variation selectors), look-alike letters folded to Latin with Unicode's
  confusables table (shipped in the ``confusable-homoglyphs`` package; Cyrillic/Greek/… only — CJK is
  never folded), lower-cased, whitespace collapsed;
- ``despaced``: letter spacing undone ("i g n o r e" → "ignore");
- ``deleet``: leetspeak undone ("1gn0r3" → "ignore");
- ``hidden``: what Unicode tag characters spell (invisible ASCII), and the inside of HTML/markdown
  comments and hidden elements;
- ``decoded``: base64 and hex blobs decoded when they decode to text, ROT13 of the text, the text
  reversed.

Every view is computed in linear time; the whole text is capped at ``MAX_SCREEN_CHARS`` first.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import json
import re
import unicodedata
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources

__all__ = ["MAX_SCREEN_CHARS", "Views", "fold_confusables", "views"]

MAX_SCREEN_CHARS = 20_000

_INVISIBLE_EXTRA = {0x034F, 0x115F, 0x1160, 0x3164, 0xFFA0}
_TAG_START, _TAG_END = 0xE0000, 0xE007F
_LEET = str.maketrans(
    {"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "@": "a", "$": "s", "!": "i"}
)
_B64 = re.compile(r"[A-Za-z0-9+/]{16,}={0,2}")
_HEX = re.compile(r"\b(?:[0-9a-fA-F]{2}){8,}\b")
_OPEN_TAG = re.compile(r"<(span|div|p|details)\b([^<>]{0,300})>", re.I)
_HIDDEN_ATTR = re.compile(r"\bhidden\b|display:\s{0,3}none", re.I)
_SPACED = re.compile(r"\b(?:\w ){3,}\w\b")


@lru_cache(maxsize=1)
def _confusables() -> dict[str, str]:
    """Non-Latin letters that look like a Latin letter → that letter (from Unicode's confusables.txt)."""
    try:
        raw = resources.files("confusable_homoglyphs").joinpath("confusables.json").read_text("utf-8")
    except (ModuleNotFoundError, FileNotFoundError):  # the package is a dependency; degrade, never fail
        return {}
    table: dict[str, str] = {}
    for char, entries in json.loads(raw).items():
        if len(char) != 1 or ord(char) < 128 or ord(char) >= 0x2E80:  # never fold CJK or ASCII
            continue
        for e in entries:
            c = e.get("c", "")
            if len(c) == 1 and c.isascii() and c.isalpha():
                table[char] = c
                break
    return table


def fold_confusables(text: str) -> str:
    table = _confusables()
    return "".join(table.get(ch, ch) for ch in text) if table else text


def _strip_invisible(text: str) -> tuple[str, str]:
    """(text without invisible characters, the ASCII that tag characters spelled)."""
    out, tags = [], []
    for ch in text:
        cp = ord(ch)
        if _TAG_START <= cp <= _TAG_END:
            if 0xE0020 <= cp <= 0xE007E:
                tags.append(chr(cp - _TAG_START))
            continue
        if cp in _INVISIBLE_EXTRA or 0xFE00 <= cp <= 0xFE0F or unicodedata.category(ch) == "Cf":
            continue
        out.append(ch)
    return "".join(out), "".join(tags)


def _between(text: str, start: str, end: str, limit: int = 4000) -> list[str]:
    """The insides of every ``start … end`` (linear: str.find, no backtracking)."""
    out: list[str] = []
    pos = 0
    while len(out) < 50:
        i = text.find(start, pos)
        if i < 0:
            break
        j = text.find(end, i + len(start))
        if j < 0:
            break
        out.append(text[i + len(start) : min(j, i + len(start) + limit)])
        pos = j + len(end)
    return out


def _hidden_markup(text: str) -> list[str]:
    """HTML comments, markdown comments ``[//]: # (…)`` and elements marked hidden."""
    parts = _between(text, "<!--", "-->") + _between(text, "[//]:", ")")
    for m in _OPEN_TAG.finditer(text):
        if len(parts) >= 100:
            break
        if _HIDDEN_ATTR.search(m.group(2)):
            close = text.find(f"</{m.group(1)}", m.end())
            parts.append(text[m.end() : close if close >= 0 else m.end() + 2000][:2000])
    return parts


def _decode_blobs(text: str) -> list[str]:
    found = []
    for m in _B64.finditer(text):
        blob = m.group(0)
        try:
            raw = base64.b64decode(blob + "=" * (-len(blob) % 4), validate=False)
            s = raw.decode("utf-8")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            continue
        if sum(c.isprintable() or c.isspace() for c in s) >= 0.9 * max(1, len(s)) and re.search(
            r"[a-zA-Z]{3}", s
        ):
            found.append(s)
    for m in _HEX.finditer(text):
        try:
            s = bytes.fromhex(m.group(0)).decode("utf-8")
        except (ValueError, UnicodeDecodeError):
            continue
        if re.search(r"[a-zA-Z]{3}", s):
            found.append(s)
    return found


@dataclass
class Views:
    text: str  # normalized
    despaced: str
    deleet: str
    hidden: str
    decoded: list[str] = field(default_factory=list)  # base64 / hex blobs, decoded
    transformed: list[str] = field(default_factory=list)  # ROT13 and reversed: rules only
    obfuscation: list[str] = field(default_factory=list)  # what was undone

    def all(self) -> list[tuple[str, str]]:
        """(view name, text) for every distinct non-empty view."""
        seen: set[str] = set()
        out = []
        for name, t in [
            ("text", self.text),
            ("despaced", self.despaced),
            ("deleet", self.deleet),
            ("hidden", self.hidden),
            *[("decoded", d) for d in self.decoded],
            *[("transformed", d) for d in self.transformed],
        ]:
            if t and t not in seen:
                seen.add(t)
                out.append((name, t))
        return out


def _basic(text: str) -> str:
    text = unicodedata.normalize("NFKC", text)
    text, _ = _strip_invisible(text)
    return re.sub(r"\s+", " ", fold_confusables(text)).strip().lower()


def views(raw: str, *, decode: bool = True) -> Views:
    raw = raw[:MAX_SCREEN_CHARS]
    nfkc = unicodedata.normalize("NFKC", raw)
    visible, tags = _strip_invisible(nfkc)
    obf = []
    if len(visible) != len(nfkc):
        obf.append("invisible_chars")
    folded = fold_confusables(visible)
    if folded != visible:
        obf.append("confusables")
    text = re.sub(r"\s+", " ", folded).strip().lower()
    despaced = _SPACED.sub(lambda m: m.group(0).replace(" ", ""), text)
    if despaced != text:
        obf.append("letter_spacing")
    deleet = re.sub(
        r"\b\w*[a-z]\w*\b", lambda m: m.group(0).translate(_LEET), text.replace("$", "s").replace("@", "a")
    )
    hidden_parts = [tags] if tags else []
    if tags:
        obf.append("tag_characters")
    hidden_parts += _hidden_markup(nfkc)
    if len(hidden_parts) > (1 if tags else 0):
        obf.append("hidden_markup")
    hidden = _basic(" ".join(hidden_parts))
    decoded: list[str] = []
    transformed: list[str] = []
    if decode:
        blobs = _decode_blobs(visible)
        if blobs:
            obf.append("encoded")
        decoded = [_basic(b) for b in blobs]
        transformed = [codecs.encode(text, "rot13"), text[::-1]]
    return Views(text, despaced, deleet if deleet != text else "", hidden, decoded, transformed, obf)
