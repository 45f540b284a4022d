"""Every grounded answer to every golden question is well-formed Markdown: fences balanced, every
code block quoted whole from its excerpt (so no citation marker inside), table rows under their
header, one citation per section. The excerpts are real chunks of the question's corpus, the
question's own page first (retrieval is tested elsewhere; this is about how answers are composed),
ranked with the real MiniLM."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from flywheel.agent._grounded import compose, markdown_problems, section_citations, select_units
from flywheel.knowledge import chunk_document, key_terms, read_documents
from tests.conftest import DOCS, SHARED

ROOT = Path(__file__).resolve().parents[2]
SETS = [
    (ROOT / "datasets" / "flywheel-docs-golden.json", DOCS),
    (SHARED / "datasets" / "mlflow-docs-golden.json", SHARED / "corpora" / "mlflow-docs"),
    (ROOT / "datasets" / "mlflow-docs-golden-ja.json", SHARED / "corpora" / "mlflow-docs"),
]


def _hits(question: str, source: str, chunks: list) -> list[dict]:
    """Five excerpts: the chunks sharing most of the question's terms, the item's page preferred."""
    terms = key_terms(question)
    ranked = sorted(
        chunks, key=lambda c: (-(c.source == source), -len(terms & key_terms(c.embedding_text())), c.index)
    )
    return [
        {"text": c.text, "source": c.source, "headings": c.heading_path, "title": c.title} for c in ranked[:5]
    ]


def problems(answer: str, hits: list[dict]) -> list[str]:
    return markdown_problems(answer, [h["text"] for h in hits], section_citations(hits))


@pytest.mark.parametrize("dataset, corpus", SETS, ids=[p[0].stem for p in SETS])
def test_every_golden_answer_is_wellformed(dataset: Path, corpus: Path) -> None:
    if not dataset.exists() or not corpus.exists():
        pytest.skip(f"{dataset} or {corpus} is absent (../shared)")
    from flywheel.config import Settings
    from flywheel.knowledge import get_embedder

    embed = get_embedder(Settings()).embed_documents
    chunks = [c for doc in read_documents([str(corpus)]) for c in chunk_document(doc)]
    items = [i for i in json.loads(dataset.read_text()) if i["metadata"].get("kind") != "adversarial"]
    bad = {}
    answered = 0
    for item in items:
        question = item["input"]["question"]
        hits = _hits(question, str(item["metadata"].get("source", "")), chunks)
        answer = compose(select_units(question, hits, embed), cite=section_citations(hits))
        answered += bool(answer)
        if found := problems(answer, hits):
            bad[question] = found
    assert answered >= len(items) * 0.8
    assert not bad, json.dumps(bad, ensure_ascii=False, indent=1)


def test_the_check_finds_what_it_is_meant_to() -> None:
    hits = [{"text": "```bash\nflywheel up\n```", "source": "a", "headings": "x"}]
    assert problems("```bash\nflywheel up\n```", hits) == []
    assert "unbalanced fence" in problems("```bash\nflywheel up", hits)
    assert any("not quoted whole" in p for p in problems("```bash\nflywheel up [1]\n```", hits))
    assert any("without its header" in p for p in problems("Text.\n\n| port | 5005 |", hits))
    two = [*hits, {"text": "more", "source": "a", "headings": "x"}]
    assert any("already cited" in p for p in problems("A [1]. B [2].", two))
