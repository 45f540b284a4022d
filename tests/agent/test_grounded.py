"""The grounded (extractive) policy's sentence selection, the lead-sentence check and repetition trimming."""

from __future__ import annotations

from flywheel.agent._grounded import (
    compose,
    lead_is_grounded,
    section_citations,
    select_units,
    trim_repetition,
)
from flywheel.knowledge import split_units
from tests.fakes import HashEmbedder

HITS = [
    {
        "text": "Traces are retained indefinitely by default. You can delete them.\n\n"
        "Use delete_traces to remove old traces:\n\n```python\nclient.delete_traces(\n    experiment_id='1', max_timestamp_millis=t\n)\n```\n\n"
        "Deletion is irreversible.",
        "source": "retention.md",
    },
    {
        "text": "The gateway listens on port 5010. Traces are retained indefinitely by default.",
        "source": "gateway.md",
    },
    {
        "text": "- Item one about traces retention\n- Item two\n\n| key | value |\n|---|---|\n| port | 5010 |",
        "source": "list.md",
    },
]


def test_units_keep_code_blocks_whole_and_cut_prose_into_sentences() -> None:
    units = split_units(HITS[0]["text"], 1)
    code = [u for u in units if u.code]
    assert len(code) == 1 and code[0].text.startswith("```python") and code[0].text.endswith("```")
    assert "max_timestamp_millis=t" in code[0].text
    assert [u.text for u in units if not u.code][:2] == [
        "Traces are retained indefinitely by default.",
        "You can delete them.",
    ]
    table = split_units(HITS[2]["text"], 3)
    assert [u.text for u in table] == [
        "- Item one about traces retention",
        "- Item two",
        "| port | 5010 |",
    ]
    assert table[-1].header == "| key | value |\n|---|---|"  # a row is shown under its header


def test_selection_cites_the_right_excerpt_dedups_and_orders() -> None:
    chosen = select_units("How do I delete old traces?", HITS, HashEmbedder().embed_documents, max_units=4)
    texts = [c.unit.text for c in chosen]
    # the same sentence in two excerpts is kept once
    assert sum(t == "Traces are retained indefinitely by default." for t in texts) == 1
    # the code block a chosen sentence introduces comes along, right after it
    i = texts.index("Use delete_traces to remove old traces:")
    assert chosen[i + 1].unit.code
    # within an excerpt, the best unit (with what it brought) first, then document order
    first = [c for c in chosen if c.unit.hit == chosen[0].unit.hit]
    assert first[0].score == max(c.score for c in first)
    answer = compose(chosen)
    assert "Use delete_traces to remove old traces: [1]" in answer
    assert "Traces are retained indefinitely by default [1]." in answer
    assert "```python" in answer


def test_length_is_bounded() -> None:
    long_hits = [{"text": " ".join(f"Sentence number {i} about traces." for i in range(200)), "source": "x"}]
    chosen = select_units("traces", long_hits, HashEmbedder().embed_documents, max_units=50, max_chars=300)
    assert sum(len(c.unit.text) for c in chosen) <= 300


def test_a_lead_with_an_invented_number_or_name_is_dropped() -> None:
    excerpts = "The gateway listens on port 5010. Use `mlflow gateway start` to start it."
    assert lead_is_grounded("The gateway listens on port 5010.", excerpts)
    assert not lead_is_grounded("The gateway listens on port 8080.", excerpts)
    assert not lead_is_grounded("Start it with `flywheel gateway run`.", excerpts)
    assert not lead_is_grounded("It is built on Kubernetes.", excerpts)


def test_repetition_is_trimmed() -> None:
    looping = "1. The list of addresses.\n2. The list of addresses.\n3. The list of addresses.\n4. The list of addresses."
    assert trim_repetition(looping) == "1. The list of addresses."
    assert trim_repetition("A fact. Another fact. A fact.") == "A fact. Another fact."


def test_a_japanese_question_gets_a_japanese_lead_naming_each_page_once() -> None:
    from flywheel.agent._grounded import japanese_lead

    hits = [
        {"title": "Delete Traces", "source": "delete.md"},
        {"title": "Tracing FAQ", "source": "faq.md"},
        {"title": "Delete Traces", "source": "delete.md"},
    ]
    chosen = select_units("delete old traces", HITS, HashEmbedder().embed_documents, max_units=4)
    numbers = list(dict.fromkeys(c.unit.hit for c in chosen))
    lead = japanese_lead(chosen, hits)
    assert lead.startswith("英語のドキュメントの該当箇所です")
    for n in numbers:  # every excerpt the answer quotes is cited in the lead
        assert f"[{n}]" in lead
    assert lead.count("「Delete Traces」") <= 1
    assert compose(chosen, lead).startswith(lead)


def _fenced_blocks(text: str) -> list[str]:
    import re

    return re.findall(r"^```.*?^```", text, re.M | re.S)


def test_code_is_quoted_whole_with_balanced_fences_and_no_citation_inside() -> None:
    hits = [
        {
            "text": "Install it first.\n\nRun the server with this command:\n\n```bash\nmlflow server \\\n\n"
            "  --port 5000\n```\n\nBy following these steps, you should be able to serve it.",
            "source": "a.md",
            "headings": "Serve",
        }
    ]
    answer = compose(
        select_units("How do I run the server on port 5000?", hits, HashEmbedder().embed_documents)
    )
    assert answer.count("```") % 2 == 0
    for block in _fenced_blocks(answer):
        assert block in hits[0]["text"]  # the excerpt's block, byte for byte: no marker inside
    # a sentence that only makes sense after its neighbour is not quoted alone
    assert "By following these steps" not in answer or "Run the server" in answer


def test_two_chunks_of_one_section_share_one_citation() -> None:
    hits = [
        {"text": "Traces are kept forever by default.", "source": "r.md", "headings": "Retention"},
        {"text": "Old traces can be deleted with delete_traces.", "source": "r.md", "headings": "Retention"},
        {"text": "The gateway listens on port 5010.", "source": "g.md", "headings": "Gateway"},
    ]
    assert section_citations(hits) == {1: 1, 2: 1, 3: 3}
    chosen = select_units("How are old traces deleted and kept?", hits, HashEmbedder().embed_documents)
    answer = compose(chosen, cite=section_citations(hits))
    assert "[2]" not in answer and "[1]" in answer


def test_table_rows_come_with_their_header_and_only_when_they_match() -> None:
    hits = [
        {
            "text": "The server takes these options:\n\n| option | default |\n|---|---|\n"
            "| port | 5000 |\n| workers | 4 |\n| host | 127.0.0.1 |",
            "source": "opts.md",
            "headings": "Options",
        }
    ]
    answer = compose(select_units("What is the default port?", hits, HashEmbedder().embed_documents))
    assert "| option | default |" in answer and "| port | 5000" in answer
    assert "workers" not in answer and "host" not in answer


def test_stored_vectors_replace_embedding_and_give_the_same_choice() -> None:
    import numpy as np

    from flywheel.knowledge import unit_key

    emb = HashEmbedder()
    calls: list[int] = []

    def counting(texts: list[str]) -> list[list[float]]:
        calls.append(len(texts))
        return emb.embed_documents(texts)

    question = "How do I delete old traces?"
    before = select_units(question, HITS, counting)
    stored = [
        {unit_key(u.text): np.asarray(emb.embed_query(u.text)) for u in split_units(h["text"], n)}
        for n, h in enumerate(HITS, 1)
    ]
    calls.clear()
    after = select_units(question, HITS, counting, qvec=emb.embed_query(question), stored=stored)
    assert calls == []  # nothing embedded at question time
    assert [c.unit.text for c in after] == [c.unit.text for c in before]
