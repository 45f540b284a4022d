"""The local facts matcher with the real offline embedder: support in other words, across sentences,
in code formatting — and no credit for a different fact on the same topic or for padding."""

from __future__ import annotations

import pytest

from flywheel.evaluation._facts import FactMatcher, claims


@pytest.fixture(scope="module")
def matcher() -> FactMatcher:
    from flywheel.knowledge import SentenceTransformerEmbedder, minilm_path

    if minilm_path() is None:
        pytest.skip("the offline MiniLM package is not installed")
    return FactMatcher(SentenceTransformerEmbedder("all-MiniLM-L6-v2").embed_documents)


def credit(m: FactMatcher, fact: str, answer: str) -> float:
    return m.match([fact], answer)[0].credit


def test_support_in_other_words_and_in_a_longer_sentence(matcher: FactMatcher) -> None:
    fact = "By default, traces are retained indefinitely."
    assert (
        credit(matcher, fact, "Unless a retention policy is set, traces are retained indefinitely [1].")
        == 1.0
    )
    assert (
        credit(
            matcher,
            fact,
            "Traces are kept indefinitely by default, and you can delete old ones with delete_traces [2].",
        )
        == 1.0
    )


def test_support_across_two_adjacent_sentences(matcher: FactMatcher) -> None:
    fact = "The gateway listens on port 5010 and splits traffic for A/B tests."
    answer = "The gateway listens on port 5010. It also splits traffic between providers for A/B tests."
    assert credit(matcher, fact, answer) == 1.0


def test_identifiers_in_code_formatting(matcher: FactMatcher) -> None:
    fact = "Register a filter with mlflow.tracing.configure."
    assert (
        credit(
            matcher, fact, "Call `mlflow.tracing.configure(span_processors=[f])` to register the filter [3]."
        )
        == 1.0
    )


def test_a_different_number_is_a_different_fact(matcher: FactMatcher) -> None:
    fact = "The AI Gateway listens on port 5000 by default."
    assert credit(matcher, fact, "The AI Gateway listens on port 5001 by default.") == 0.0


def test_a_different_fact_on_the_same_topic_gets_no_credit(matcher: FactMatcher) -> None:
    fact = "Prompt versions are immutable once created."
    assert credit(matcher, fact, "Prompts can be loaded by alias with the prompts:/name@alias URI.") == 0.0


def test_compound_facts_earn_partial_credit_and_yes_no_is_not_a_claim() -> None:
    assert claims("Install it with pip; it needs Python 3.10.") == [
        "Install it with pip",
        "it needs Python 3.10.",
    ]
    assert claims("Yes. By default traces go to the active experiment.") == [
        "By default traces go to the active experiment."
    ]


def test_padding_does_not_pay(matcher: FactMatcher) -> None:
    fact = "By default, traces are retained indefinitely."
    focused = "By default, traces are retained indefinitely [1]."
    padded = focused + " " + "Unrelated filler about other features of the product. " * 60
    assert matcher.score([fact], focused)[0] == 1.0
    assert matcher.score([fact], padded)[0] < 0.6
