"""A Japanese question over the English user guide, with the multilingual embedder: the right pages
are found and the answer cites them (grounded policy: no LLM needed); an out-of-scope Japanese
question is abstained on with the same, per-embedder threshold."""

from __future__ import annotations

from pathlib import Path

from flywheel.agent import AgentConfig, DocsAgent
from flywheel.config import load_settings
from flywheel.knowledge import IngestOptions, KnowledgeBase, ingest, relevance_threshold

DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_a_japanese_question_finds_the_english_pages_and_cites_them(tmp_path: Path) -> None:
    settings = load_settings(
        data_dir=tmp_path, collection="ja_docs", embedding_model="universal-sentence-encoder-multilingual"
    )
    kb = KnowledgeBase(settings)
    ingest(settings, IngestOptions([str(DOCS)]), kb=kb)
    agent = DocsAgent(settings, AgentConfig(policy="grounded"), kb=kb)

    answer = agent.ask("open_url はどのアドレスへのアクセスを拒否しますか？")
    assert not answer.abstained and not answer.refused
    assert "[1]" in answer.answer
    assert any(s["source"] == "security.md" for s in answer.sources), answer.sources

    off_topic = agent.ask("明日の東京の天気は？")
    assert off_topic.abstained and not off_topic.sources


def test_the_multilingual_companion_answers_japanese_and_refuses_a_half_built_index(tmp_path: Path) -> None:
    import pytest

    from flywheel.errors import FlywheelError

    plain = load_settings(data_dir=tmp_path, collection="docs", companion_embedding_model="off")
    ingest(plain, IngestOptions([str(DOCS)]), kb=KnowledgeBase(plain))  # built without the companion
    # MiniLM alone: the question's English glosses find the page (its cosine scale for glosses
    # differs between corpora, so MiniLM alone does not decide abstention here; the companion does)
    found = KnowledgeBase(plain).search("open_url はどのアドレスへのアクセスを拒否しますか？", 5)
    assert found.translated and "address" in found.translated
    assert found[0].source == "security.md"
    # the default (auto) goes on without it on an index built before it, and adds it on --rebuild
    auto = plain.model_copy(update={"companion_embedding_model": "auto"})
    assert KnowledgeBase(auto).companion is None and KnowledgeBase(auto).search("open_url", 5)
    assert ingest(auto, IngestOptions([str(DOCS)]), kb=KnowledgeBase(auto)).chunks == 0
    settings = plain.model_copy(
        update={"companion_embedding_model": "universal-sentence-encoder-multilingual"}
    )
    with pytest.raises(FlywheelError) as err:
        KnowledgeBase(settings).search("open_url", 5)
    assert err.value.key == "companion_missing" and "--rebuild" in err.value.render("en")
    with pytest.raises(FlywheelError):
        ingest(settings, IngestOptions([str(DOCS)]), kb=KnowledgeBase(settings))  # nothing half-written

    kb = KnowledgeBase(auto)
    report = ingest(auto, IngestOptions([str(DOCS)], rebuild=True), kb=kb)
    assert kb.companion is not None  # auto: USE beside MiniLM
    kb = KnowledgeBase(settings)  # the same companion, named explicitly
    assert kb.companion is not None and kb.companion[1].count() == kb.index.count() == report.chunks
    # the companion's cosine (and threshold) for Japanese questions; English ones search as before
    use, minilm = "universal-sentence-encoder-multilingual", "all-MiniLM-L6-v2"
    assert kb.relevance_threshold("open_url はどこへ？", "ja") == relevance_threshold(use, "ja")
    assert kb.relevance_threshold("Which addresses?", "en") == relevance_threshold(minilm, "en")
    again = ingest(settings, IngestOptions([str(DOCS)]), kb=kb)
    assert again.chunks == 0 and again.skipped == report.documents  # incremental, both in step

    agent = DocsAgent(settings, AgentConfig(policy="grounded"), kb=kb)
    answer = agent.ask("open_url はどのアドレスへのアクセスを拒否しますか？")
    assert not answer.abstained and any(s["source"] == "security.md" for s in answer.sources)
    assert answer.answer.startswith("英語のドキュメントの該当箇所です") and "[1]" in answer.answer
    english = agent.ask("Which addresses does open_url refuse to fetch?")
    assert not english.abstained and english.sources[0]["source"] == "security.md"
    assert agent.ask("明日の東京の天気は？").abstained
