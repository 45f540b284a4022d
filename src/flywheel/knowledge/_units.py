"""The units of a chunk — sentences, list items, table rows, whole code blocks — and their vectors,
computed once at ingest and stored with the chunk.

The grounded answer policy ranks units against the question (agent/_grounded.py). Embedding them
at question time was 93 % of a grounded answer's CPU (about 1 s per question); the same chunk's
units are the same for every question, so they are embedded at ingest and stored in the chunk's
``units`` field, each keyed by a CRC32 of its text. A reader that splits a chunk differently (a
newer version of this module) still finds every unit whose text is unchanged and embeds only the
rest.

Encoding: ``u1:<n>:<base64>`` of n uint32 keys followed by an n × dim float16 matrix (float16 keeps
cosines within 0.001 of float32). At most :data:`MAX_STORED` units per chunk fit the field; the
rest of a very long chunk are embedded when a question needs them.
"""

from __future__ import annotations

import base64
import re
import zlib
from dataclasses import dataclass

import numpy as np

__all__ = [
    "MAX_STORED",
    "Unit",
    "decode_unit_vectors",
    "encode_unit_vectors",
    "is_item",
    "split_units",
    "unit_key",
]

MAX_STORED = 56  # 56 x (4 + 384 x 2) bytes in base64 stays below Milvus' 65,535-byte VARCHAR
FIELD_CHARS = 65_535

_FENCE = re.compile(r"^\s*(```|~~~)")
_SENT_END = re.compile(r"(?<=[.!?。])\s+(?=[A-Z0-9`\"'(\[*_]|[\u3040-\u30ff\u4e00-\u9fff])")
_TABLE_SEP = re.compile(r"^\|?[\s:|-]+\|?$")
# a sentence that only makes sense after the one before it ("these steps", "as shown above")
_REFERS_BACK = re.compile(
    r"^(these|those|such|this (step|example|code|command|snippet|approach|method|way|option|one)|"
    r"the (above|previous|preceding)|then|in (this|that) case)\b"
    r"|\b(these steps|the steps above|as shown (above|earlier)|shown above|the (example|code|snippet|command) "
    r"above|above (example|code|snippet)|as (mentioned|described|explained) (above|earlier|before)|"
    r"previous (step|section|example)|by following (these|the above)|in the previous)\b",
    re.I,
)
# a sentence that announces what follows it (a list, a table, a code block)
_INTRODUCES = re.compile(r":\s*$|\b(the following|as follows|below:?)\s*[.:]?\s*$", re.I)


@dataclass
class Unit:
    hit: int  # 1-based excerpt number (the citation)
    pos: int  # position within the excerpt
    text: str
    code: bool = False
    header: str = ""  # a table row's header and separator lines, which it is shown with
    refers_back: bool = False  # needs the unit before it ("these steps", "as shown above")
    introduces: bool = False  # announces what follows ("the following:", a trailing colon)

    @property
    def key(self) -> int:
        return unit_key(self.text)


def unit_key(text: str) -> int:
    return zlib.crc32(text.encode("utf-8"))


def is_item(text: str) -> bool:
    """A list item or a table row."""
    return bool(re.match(r"^([-*+]|\d+[.)])\s+|^\|", text))


def _is_noise(line: str) -> bool:
    s = line.strip()
    if not s or s.startswith("#"):
        return True
    if _TABLE_SEP.fullmatch(s):
        return True
    return len(re.sub(r"[\W_]+", "", s)) < 3


def _sentence(hit: int, pos: int, text: str) -> Unit:
    return Unit(
        hit, pos, text, refers_back=bool(_REFERS_BACK.search(text)), introduces=bool(_INTRODUCES.search(text))
    )


def split_units(text: str, hit: int = 0) -> list[Unit]:
    """Units of one excerpt in order: code blocks whole (a block the excerpt cuts is closed), prose
    cut into sentences, list items and table rows one each (a row carries its table's header)."""
    units: list[Unit] = []
    lines = text.splitlines()
    i = 0
    para: list[str] = []
    header = ""

    def flush() -> None:
        if para:
            joined = " ".join(p.strip() for p in para)
            for s in _SENT_END.split(joined):
                if not _is_noise(s):
                    units.append(_sentence(hit, len(units), s.strip()))
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
        if s.startswith("|"):
            flush()
            nxt = lines[i + 1].strip() if i + 1 < len(lines) else ""
            if nxt.startswith("|") and _TABLE_SEP.fullmatch(nxt) and "-" in nxt:
                header = f"{s}\n{nxt}"  # a header row: shown with its rows, not a unit itself
                i += 2
                continue
            if not _is_noise(s):
                units.append(Unit(hit, len(units), s, header=header))
        elif not s:
            flush()
            header = ""
        elif re.match(r"^([-*+]|\d+[.)])\s+", s):  # list item: its own unit
            flush()
            header = ""
            if not _is_noise(s):
                units.append(_sentence(hit, len(units), s))
        elif s.startswith("#"):
            flush()
            header = ""
        else:
            header = ""
            para.append(s)
        i += 1
    flush()
    return units


def encode_unit_vectors(keys: list[int], vectors: np.ndarray) -> str:
    """The ``units`` field of a chunk: its units' keys and vectors (the first :data:`MAX_STORED`)."""
    n = min(len(keys), MAX_STORED)
    if n == 0:
        return ""
    raw = np.asarray(keys[:n], dtype="<u4").tobytes() + np.asarray(vectors[:n], dtype="<f2").tobytes()
    out = f"u1:{n}:{base64.b64encode(raw).decode('ascii')}"
    while len(out) > FIELD_CHARS and n > 1:  # a wider embedding model: fewer units
        n = n * 3 // 4
        raw = np.asarray(keys[:n], dtype="<u4").tobytes() + np.asarray(vectors[:n], dtype="<f2").tobytes()
        out = f"u1:{n}:{base64.b64encode(raw).decode('ascii')}"
    return out


def decode_unit_vectors(field: str, dim: int) -> dict[int, np.ndarray]:
    """key → normalized float32 vector, from a ``units`` field ({} when empty or unreadable)."""
    if not field or not field.startswith("u1:"):
        return {}
    try:
        _, count, payload = field.split(":", 2)
        n = int(count)
        raw = base64.b64decode(payload)
        keys = np.frombuffer(raw[: 4 * n], dtype="<u4")
        vecs = np.frombuffer(raw[4 * n :], dtype="<f2").astype(np.float32).reshape(n, dim)
    except (ValueError, TypeError):
        return {}
    vecs /= np.maximum(np.linalg.norm(vecs, axis=1, keepdims=True), 1e-9)
    return {int(k): vecs[j] for j, k in enumerate(keys)}
