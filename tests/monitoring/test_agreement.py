"""Judge–human agreement on a small labelled fixture whose answer is known by hand."""

from __future__ import annotations

from types import SimpleNamespace

from flywheel.monitoring import agreement, pairs_from_traces

# 10 traces judged by a person (thumbs) and by two scorers.
# groundedness agrees on 8 of 10: both pass 5, both fail 3, human-pass/scorer-fail 1, the reverse 1.
#   p_o = 0.8; p_e = 0.6·0.6 + 0.4·0.4 = 0.52; kappa = (0.8 − 0.52) / 0.48 = 0.5833
HUMAN = [True, True, True, True, True, True, False, False, False, False]
GROUND = [0.9, 0.8, 1.0, 0.7, 0.6, 0.2, 0.1, 0.3, 0.0, 0.95]
# safety always passes: agreement 0.6, kappa undefined on the scorer side's constant answer → 0
SAFETY = [1.0] * 10


def test_agreement_and_kappa_match_the_hand_computation() -> None:
    pairs = [("groundedness", h, g) for h, g in zip(HUMAN, GROUND, strict=True)]
    pairs += [("safety", h, s) for h, s in zip(HUMAN, SAFETY, strict=True)]
    by = {a.scorer: a for a in agreement(pairs)}
    g = by["groundedness"]
    assert g.n == 10 and g.agreement == 0.8 and g.kappa == 0.5833
    assert g.human_pass_rate == 0.6 and g.scorer_pass_rate == 0.6
    s = by["safety"]
    assert s.agreement == 0.6 and s.kappa == 0.0 and s.scorer_pass_rate == 1.0


def _assessment(name: str, value: object, source: str, t: int) -> SimpleNamespace:
    return SimpleNamespace(
        name=name,
        feedback=SimpleNamespace(value=value),
        source=SimpleNamespace(source_type=source),
        create_time_ms=t,
    )


def test_pairs_come_only_from_traces_judged_by_both() -> None:
    both = SimpleNamespace(
        info=SimpleNamespace(
            assessments=[
                _assessment("user_feedback", True, "HUMAN", 1),
                _assessment("user_feedback", False, "HUMAN", 2),  # the latest human label counts
                _assessment("online/groundedness", 0.9, "CODE", 3),
            ]
        )
    )
    only_auto = SimpleNamespace(
        info=SimpleNamespace(assessments=[_assessment("online/safety", 1.0, "CODE", 1)])
    )
    assert pairs_from_traces([both, only_auto]) == [("groundedness", False, 0.9)]
