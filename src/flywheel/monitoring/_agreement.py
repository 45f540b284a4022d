"""Judge–human agreement: where a person and an automated scorer both judged a trace, how often do
they agree, and how much more than chance (Cohen's kappa, scikit-learn's implementation)?

A human label is a HUMAN assessment (the chat page's ``user_feedback`` thumbs, a reviewer's label);
an automated one is an ``online/<scorer>`` assessment (or any CODE/LLM_JUDGE assessment). Both are
reduced to pass/fail: booleans as they are, numbers at ``threshold`` (0.5), so a scorer is judged on
the decision it would drive.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

__all__ = ["Agreement", "agreement", "pairs_from_traces"]


@dataclass(frozen=True)
class Agreement:
    scorer: str
    n: int
    agreement: float
    kappa: float | None  # None when one side never varies (kappa is undefined)
    human_pass_rate: float
    scorer_pass_rate: float


def _passes(value: Any, threshold: float) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return float(value) >= threshold
    if isinstance(value, str) and value.lower() in ("yes", "pass", "true", "good", "helpful"):
        return True
    if isinstance(value, str) and value.lower() in ("no", "fail", "false", "bad", "not helpful"):
        return False
    return None


def agreement(pairs: Iterable[tuple[str, Any, Any]], threshold: float = 0.5) -> list[Agreement]:
    """``pairs``: (scorer name, human value, scorer value) per trace → one Agreement per scorer."""
    from sklearn.metrics import cohen_kappa_score

    by: dict[str, tuple[list[bool], list[bool]]] = {}
    for scorer, human, auto in pairs:
        h, a = _passes(human, threshold), _passes(auto, threshold)
        if h is None or a is None:
            continue
        hs, auto_s = by.setdefault(scorer, ([], []))
        hs.append(h)
        auto_s.append(a)
    out = []
    for scorer, (hs, auto_s) in sorted(by.items()):
        n = len(hs)
        agree = sum(x == y for x, y in zip(hs, auto_s, strict=True)) / n
        varied = len(set(hs)) > 1 or len(set(auto_s)) > 1
        kappa = float(cohen_kappa_score(hs, auto_s)) if varied and len(set(hs + auto_s)) > 1 else None
        if kappa is not None and kappa != kappa:  # NaN: no variation on either side
            kappa = None
        out.append(
            Agreement(
                scorer,
                n,
                round(agree, 4),
                None if kappa is None else round(kappa, 4),
                round(sum(hs) / n, 4),
                round(sum(auto_s) / n, 4),
            )
        )
    return out


def pairs_from_traces(traces: Iterable[Any], human_name: str | None = None) -> list[tuple[str, Any, Any]]:
    """(scorer, human value, scorer value) for every trace carrying both kinds of assessment; the
    human value is the latest HUMAN assessment (named ``human_name`` if given)."""
    pairs = []
    for trace in traces:
        humans, autos = [], {}
        for a in trace.info.assessments or []:
            feedback = getattr(a, "feedback", None)
            if feedback is None:
                continue
            kind = str(getattr(a.source, "source_type", ""))
            if kind.endswith("HUMAN"):
                if human_name is None or a.name == human_name:
                    humans.append((a.create_time_ms, feedback.value))
            elif a.name.startswith("online/") or kind.endswith(("CODE", "LLM_JUDGE")):
                autos[a.name.removeprefix("online/")] = feedback.value
        if humans and autos:
            human = max(humans, key=lambda t: t[0])[1]
            pairs += [(name, human, value) for name, value in autos.items()]
    return pairs
