"""The LLM generator: a capable model (``FLYWHEEL_GENERATOR_BASE_URL`` / ``_MODEL``, any
OpenAI-compatible endpoint — the flywheel gateway's ``/v1`` like every other LLM call) writes one
question per passage and quotes the passage's facts. Its items go through exactly the offline
generator's filters (round trip, support, de-duplication, balance, budget), so an invented fact or a
question that does not find its passage is dropped and counted, never kept.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from flywheel.datagen._corpus import CorpusChunk
from flywheel.datagen._offline import Candidate

__all__ = ["LLMGenerator"]

_PROMPT = """You write test questions for a documentation assistant.
Read the PASSAGE from the page "{title}" (section: {headings}). Write ONE question a user of this
software would ask that the passage answers, in {language}. Then copy one to three short facts from
the passage that answer it, word for word (facts stay in the passage's language), and a search term
of two to five words from the passage.
Reply with JSON only: {{"question": "...", "facts": ["..."], "search_term": "..."}}

PASSAGE:
{text}
"""
_LANGUAGE = {"en": "English", "ja": "Japanese"}


class LLMGenerator:
    """Replies are kept in ``cache`` (JSON lines keyed by model, language and the chunk's digest), so
    an interrupted generation run again asks the LLM only about the passages it had not reached."""

    name = "llm"

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str | None = None,
        lang: str | None = None,
        cache: Path | None = None,
    ) -> None:
        from openai import OpenAI

        self.base_url, self.model, self.lang = base_url, model, lang
        self._client: Any = OpenAI(base_url=base_url, api_key=api_key or "none", max_retries=2, timeout=120)
        self.failures: list[str] = []  # why a passage gave no candidate (reported, never silent)
        self.cache = cache
        self._seen: dict[str, dict[str, Any]] = {}
        if cache and cache.is_file():
            for line in cache.read_text(encoding="utf-8").splitlines():
                try:
                    row = json.loads(line)
                    self._seen[row["key"]] = row["data"]
                except (ValueError, KeyError, TypeError):
                    continue  # a line cut by an interruption

    def settings(self) -> dict[str, str]:
        return {
            "name": self.name,
            "model": self.model,
            "base_url": self.base_url,
            "lang": self.lang or "corpus",
        }

    def extract(
        self, chunk: CorpusChunk, header: tuple[str, ...] | None, lang: str, product: str = ""
    ) -> Iterator[Candidate]:
        lang = self.lang or lang
        key = f"{self.model}|{lang}|{chunk.digest}"
        if key in self._seen:
            yield from self._candidates(self._seen[key], chunk, lang)
            return
        prompt = _PROMPT.format(
            title=chunk.title,
            headings=chunk.headings or "-",
            language=_LANGUAGE.get(lang, lang),
            text=chunk.text[:3000],
        )
        for attempt in range(3):
            try:
                reply = self._client.chat.completions.create(
                    model=self.model,
                    messages=[{"role": "user", "content": prompt}],
                    max_tokens=400,
                    temperature=0.2,
                )
                data = _json(reply.choices[0].message.content or "")
                break
            except ValueError as exc:
                self.failures.append(f"{chunk.source}: reply was not JSON ({exc})")
                return
            except Exception as exc:  # provider errors: back off, then report and go on
                if attempt == 2:
                    self.failures.append(f"{chunk.source}: {type(exc).__name__}: {str(exc)[:160]}")
                    return
                time.sleep(1.0 * 2**attempt)
        self._seen[key] = data
        if self.cache:
            self.cache.parent.mkdir(parents=True, exist_ok=True)
            with self.cache.open("a", encoding="utf-8") as fh:
                fh.write(json.dumps({"key": key, "data": data}, ensure_ascii=False) + "\n")
        yield from self._candidates(data, chunk, lang)

    def _candidates(self, data: dict[str, Any], chunk: CorpusChunk, lang: str) -> Iterator[Candidate]:
        question = str(data.get("question") or "").strip()
        facts = [str(f).strip() for f in data.get("facts") or [] if str(f).strip()][:3]
        if not question or not facts:
            self.failures.append(f"{chunk.source}: no question or no facts in the reply")
            return
        term = str(data.get("search_term") or chunk.heading).strip()[:80]
        yield Candidate(
            "happy_path", question, facts, term, chunk, "llm", question[:60], lang, f"llm:{self.model}"
        )


def _json(text: str) -> dict[str, Any]:
    m = re.search(r"\{.*\}", text, re.S)
    if not m:
        raise ValueError("no JSON object")
    data = json.loads(m.group(0))
    if not isinstance(data, dict):
        raise ValueError("not an object")
    return data
