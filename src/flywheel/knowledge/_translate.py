"""Japanese questions over English documentation: dictionary query translation.

An English-only embedder and BM25 cannot match a Japanese question against English pages (MiniLM
finds the right page in the top 5 for under half of the Japanese golden questions; a multilingual
embedder alone for 80 %). The classic remedy of cross-language retrieval is dictionary-based query
translation, which needs no translation model:

1. segment the question with janome (a pure-Python morphological analyser with its dictionary
   bundled, Apache-2.0) and keep its content words (nouns, verbs, adjectives; base forms), joining
   adjacent nouns when the dictionary knows the compound (個人 + 情報 → 個人情報, "personal
   information");
2. look each one up in JMdict (the EDRDG's Japanese–English dictionary, CC-BY-SA 4.0), shipped
   inside the PyPI package jamdict-data as an SQLite file: the short English glosses of its first
   senses (トレース → trace, 削除 → deletion, erasure; 設定 → …, configuration, setup);
3. keep Latin-script words of the question as they are (MLflow, PII, make_judge).

The result is an English keyword query ("mlflow experiment old trace deletion erasure") that BM25
and the English-only embedder can match; a multilingual embedder still sees the original question.
Glosses are noisy (several senses, no context), which rank fusion with the other rankings absorbs;
measured in bench/multilingual.py. The dictionary is read-only and opened once per process.
"""

from __future__ import annotations

import importlib.util
import re
import sqlite3
import threading
from functools import lru_cache
from pathlib import Path

__all__ = ["QueryTranslator", "get_translator", "has_cjk"]

_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uff66-\uff9f]")
_KATAKANA = re.compile(r"[\u30a0-\u30ffー]+")
_LATIN = re.compile(r"[A-Za-z][A-Za-z0-9_.\-/@]*[A-Za-z0-9]|[A-Za-z]")
_PAREN = re.compile(r"\([^)]*\)")
# function words that carry no topic: "do", "be", "can", "good" (よい in どうすればよいですか), …
_SKIP = frozenset(
    [
        "する",
        "ある",
        "いる",
        "なる",
        "できる",
        "れる",
        "られる",
        "せる",
        "させる",
        "よい",
        "いい",
        "ない",
        "こと",
        "もの",
        "ため",
        "よう",
        "どう",
        "何",
        "なに",
        "どの",
        "どれ",
        "どこ",
        "いつ",
        "誰",
        "方法",
        "方",
        "場合",
        "時",
        "とき",
        "中",
        "等",
        "など",
        "の",
        "ん",
    ]
)


def has_cjk(text: str) -> bool:
    return bool(_CJK.search(text))


def _dictionary_path() -> Path | None:
    """jamdict-data's database: unpacked by its installer (jamdict.db)."""
    spec = importlib.util.find_spec("jamdict_data")
    if spec is None or not spec.submodule_search_locations:
        return None
    db = Path(next(iter(spec.submodule_search_locations))) / "jamdict.db"
    return db if db.is_file() else None


class QueryTranslator:
    """``translate(question)`` → English keywords for a question with Japanese in it."""

    def __init__(self, db: Path, senses: int = 2, glosses: int = 3) -> None:
        from janome.tokenizer import Tokenizer

        self._tok = Tokenizer()
        self._db = sqlite3.connect(f"file:{db}?mode=ro", uri=True, check_same_thread=False)
        self._lock = threading.Lock()
        self.senses, self.glosses = senses, glosses

    @lru_cache(maxsize=4096)  # noqa: B019 - one translator per process (get_translator)
    def lookup(self, word: str) -> tuple[str, ...]:
        """Short English glosses of ``word``'s first senses, most common entry first."""
        with self._lock:
            ids = [
                r[0]
                for r in self._db.execute(
                    "SELECT idseq FROM Kanji WHERE text = ? UNION SELECT idseq FROM Kana WHERE text = ?",
                    (word, word),
                )
            ][:2]
            out: list[str] = []
            for idseq in ids:
                sids = self._db.execute(
                    "SELECT ID FROM Sense WHERE idseq = ? ORDER BY ID LIMIT ?", (idseq, self.senses)
                ).fetchall()
                for (sid,) in sids:
                    rows = self._db.execute(
                        "SELECT text FROM SenseGloss WHERE sid = ? AND (lang = 'eng' OR lang IS NULL)",
                        (sid,),
                    ).fetchall()
                    for (text,) in rows[: self.glosses]:
                        g = _PAREN.sub("", text).strip().removeprefix("to ").strip()
                        if g and len(g.split()) <= 3 and g not in out:
                            out.append(g)
        return tuple(out)

    def _words(self, text: str) -> list[str]:
        """Content words (base forms), adjacent nouns joined when the dictionary has the compound."""
        tokens: list[tuple[str, str, bool]] = []  # (surface, base form, is noun)
        for t in self._tok.tokenize(text):
            pos = t.part_of_speech.split(",")
            if not _CJK.search(t.surface):
                tokens.append(("", "", False))  # Latin words are kept by the caller
                continue
            content = pos[0] in ("名詞", "動詞", "形容詞") and pos[1] not in (
                "非自立",
                "代名詞",
                "数",
                "接尾",
            )
            base = t.base_form if t.base_form != "*" else t.surface
            tokens.append(
                (t.surface, base, pos[0] == "名詞") if content and base not in _SKIP else ("", "", False)
            )
        words: list[str] = []
        i = 0
        while i < len(tokens):
            surface, base, noun = tokens[i]
            if noun and i + 1 < len(tokens) and tokens[i + 1][2] and self.lookup(surface + tokens[i + 1][0]):
                words.append(surface + tokens[i + 1][0])
                i += 2
                continue
            if base:
                words.append(base)
            i += 1
        return words

    def _glosses(self, word: str) -> list[str]:
        """Glosses of ``word``; an unknown katakana compound (モデルエイリアス, which the analyser
        keeps as one unknown word) is split greedily into the longest words the dictionary knows."""
        found = list(self.lookup(word))
        if found or not _KATAKANA.fullmatch(word):
            return found
        i = 0
        while i < len(word):
            for j in range(len(word), i + 1, -1):
                if glosses := self.lookup(word[i:j]):
                    found.extend(glosses)
                    i = j
                    break
            else:
                i += 1
        return found

    @lru_cache(maxsize=1024)  # noqa: B019 - one translator per process; one question is translated
    # for its search, its abstention threshold and its sentence ranking: segmented once
    def translate(self, question: str) -> str:
        """English keywords for ``question`` (unchanged when it has no Japanese)."""
        if not has_cjk(question):
            return question
        parts: list[str] = [w for w in _LATIN.findall(question) if len(w) > 1 or w.isupper()]
        for word in self._words(question):
            parts.extend(self._glosses(word))
        return " ".join(dict.fromkeys(parts))


@lru_cache(maxsize=1)
def get_translator() -> QueryTranslator | None:
    """The process's translator, or None when janome or jamdict-data is not installed."""
    db = _dictionary_path()
    if db is None or importlib.util.find_spec("janome") is None:
        return None
    return QueryTranslator(db)
