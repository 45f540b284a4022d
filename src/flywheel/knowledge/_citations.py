"""Citation markers: the ``[n]`` an answer uses to point at its n-th retrieved excerpt. One pattern,
used by the agent that writes them, the scorers that check them and the monitor that strips them."""

from __future__ import annotations

import re

__all__ = ["CITATION", "cited_numbers", "has_citation", "strip_citations"]

CITATION = re.compile(r"\[(\d{1,2})\]")
_WITH_SPACE = re.compile(r"\s*\[\d{1,2}\]")


def cited_numbers(text: str) -> list[int]:
    """The excerpt numbers ``text`` cites, in order of appearance (repeats kept)."""
    return [int(n) for n in CITATION.findall(text)]


def has_citation(text: str) -> bool:
    return CITATION.search(text) is not None


def strip_citations(text: str) -> str:
    """``text`` without its citation markers (and the space before each)."""
    return _WITH_SPACE.sub("", text)
