"""The grounded (extractive) policy's sentence selection, the lead-sentence check and repetition trimming."""

from __future__ import annotations

from flywheel.agent._grounded import compose, lead_is_grounded, select_units, split_units, trim_repetition
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
        "| key | value |",
        "| port | 5010 |",
    ]


def test_selection_cites_the_right_excerpt_dedups_and_orders() -> None:
    chosen = select_units("How do I delete old traces?", HITS, HashEmbedder().embed_documents, max_units=4)
    texts = [c.unit.text for c in chosen]
    # the same sentence in two excerpts is kept once
    assert sum(t == "Traces are retained indefinitely by default." for t in texts) == 1
    # the code block a chosen sentence introduces comes along, right after it
    i = texts.index("Use delete_traces to remove old traces:")
    assert chosen[i + 1].unit.code
    # within an excerpt, document order
    by_hit = [c.unit.pos for c in chosen if c.unit.hit == 1]
    assert by_hit == sorted(by_hit)
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
