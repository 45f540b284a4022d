"""Dictionary query translation of Japanese questions (janome + JMdict from jamdict-data)."""

from __future__ import annotations

import pytest

from flywheel.knowledge._translate import get_translator, has_cjk


@pytest.fixture(scope="module")
def translator():  # type: ignore[no-untyped-def]
    t = get_translator()
    if t is None:
        pytest.skip("janome or jamdict-data is not installed")
    return t


def test_content_words_become_english_glosses_and_latin_words_stay(translator) -> None:  # type: ignore[no-untyped-def]
    out = translator.translate("MLflow の実験から古いトレースを削除するにはどうすればよいですか？").split()
    assert out[0] == "MLflow"
    for word in ("experiment", "old", "trace", "deletion"):
        assert word in out
    # function words (する, よい, どう) and particles add nothing
    assert not {"do", "good", "how"} & set(out)


def test_known_compounds_are_joined_and_unknown_katakana_compounds_split(translator) -> None:  # type: ignore[no-untyped-def]
    assert "personal information" in translator.translate("個人情報を除去するには？")
    # the analyser keeps モデルエイリアス as one unknown word; the dictionary knows its two halves
    out = translator.translate("モデルエイリアスとは何ですか？")
    assert "model" in out and "alias" in out


def test_a_question_without_japanese_is_left_alone(translator) -> None:  # type: ignore[no-untyped-def]
    q = "How do I delete old traces?"
    assert translator.translate(q) == q
    assert not has_cjk(q) and has_cjk("トレース")


def test_search_uses_the_translation_only_for_japanese_questions(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from flywheel.config import load_settings
    from flywheel.knowledge import KnowledgeBase

    kb = KnowledgeBase(load_settings(data_dir=str(tmp_path)))
    if get_translator() is None:
        pytest.skip("janome or jamdict-data is not installed")
    assert kb.translate("How do I delete old traces?") is None
    assert "trace" in (kb.translate("古いトレースを削除するには？") or "")
    off = KnowledgeBase(load_settings(data_dir=str(tmp_path), query_translation="off"))
    assert off.translate("古いトレースを削除するには？") is None
