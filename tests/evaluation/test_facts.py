"""The local facts matcher with the real offline embedder: support in other words, across sentences,
in code formatting — and no credit for a different fact on the same topic or for padding."""

from __future__ import annotations

import pytest

from flywheel.evaluation._facts import FactMatcher, claims


@pytest.fixture(scope="module")
def matcher() -> FactMatcher:
    """The calibrated instrument: MiniLM and USE together, the default alpha and threshold."""
    from flywheel.config import load_settings
    from flywheel.knowledge import facts_embedder, minilm_path

    if minilm_path() is None:
        pytest.skip("the offline MiniLM package is not installed")
    return FactMatcher(facts_embedder(load_settings()).embed_documents)


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


def test_clauses_joined_by_a_conjunction_are_separate_claims_but_lists_stay_whole() -> None:
    assert claims(
        "Aliases avoid hardcoding version numbers and enable roll-back by switching the alias."
    ) == ["Aliases avoid hardcoding version numbers", "enable roll-back by switching the alias."]
    assert claims("experiment_id is required, and you must pass trace_ids, but not both.") == [
        "experiment_id is required",
        "you must pass trace_ids",
        "not both.",
    ]
    for whole in (
        "It supports OpenAI and Anthropic.",
        "Agent functions are registered with the @invoke and @stream decorators.",
        "It supports multi-turn dialogue, tool-calling and multi-agent orchestration.",
    ):
        assert claims(whole) == [whole]


def test_half_a_compound_fact_earns_half_its_credit(matcher: FactMatcher) -> None:
    fact = "Aliases avoid hardcoding version numbers and enable roll-back by switching the alias."
    answer = "Aliases let you avoid hardcoding version numbers in the application code [1]."
    assert credit(matcher, fact, answer) == 0.5


def test_the_facts_instrument_averages_its_models_cosines() -> None:
    import numpy as np

    from flywheel.knowledge._embeddings import ConcatEmbedder

    class Fixed:
        dim = 2

        def __init__(self, vecs: dict[str, list[float]]) -> None:
            self.vecs = vecs

        def embed_documents(self, texts: list[str]) -> list[list[float]]:
            return [self.vecs[t] for t in texts]

    a = Fixed({"x": [1.0, 0.0], "y": [0.0, 1.0]})  # cosine 0
    b = Fixed({"x": [3.0, 4.0], "y": [3.0, 4.0]})  # cosine 1, not normalized
    x, y = np.asarray(ConcatEmbedder(a, b).embed_documents(["x", "y"]))
    assert float(x @ y) == pytest.approx(0.5)
    assert float(np.linalg.norm(x)) == pytest.approx(1.0)


def test_padding_does_not_pay(matcher: FactMatcher) -> None:
    fact = "By default, traces are retained indefinitely."
    focused = "By default, traces are retained indefinitely [1]."
    padded = focused + " " + "Unrelated filler about other features of the product. " * 60
    assert matcher.score([fact], focused)[0] == 1.0
    assert matcher.score([fact], padded)[0] < 0.6
