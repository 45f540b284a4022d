"""Scorers calibrated by the people who review: fit the local online scorers to human labels.

``flywheel monitor calibrate`` pairs every labelled production trace (a reviewer's ``review/correct``,
else a thumbs ``user_feedback``) with what the scorer says of it, splits the pairs once into a
train and a test part (by a hash of the trace id, so a re-run splits alike), and on **train** fits

- the scorer's own parameter where it has one (``groundedness``: the similarity a sentence needs to
  count as supported — this changes the score itself), and
- the pass mark: a score at or above it is a pass (what the review queue's *low-score* and
  ``monitor curate`` use),

by the highest Cohen's kappa with the people (scikit-learn's ``cohen_kappa_score``; among ties the
middle of the plateau). On **test** it reports agreement and kappa, each with a 95 % bootstrap
interval, before (the defaults) and after. The result is a new **scorer version** in
``data/monitor/scorers.json``: the parameters change the scorer's spec
(``groundedness(threshold=0.7)``), and a spec is part of every evaluation's resume key and of the
online monitor's cursor, so no score of the old version is reused or mixed with the new one.
Older versions stay in the file's history.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from flywheel.config import Settings

__all__ = [
    "Calibration",
    "LabelledTrace",
    "calibrate_scorer",
    "calibrated_scorers",
    "labelled_traces",
    "pass_marks",
    "save_calibration",
]

HUMAN_LABELS = ("review/correct", "user_feedback")
GRIDS: dict[str, dict[str, list[float]]] = {  # a scorer's own parameter, where it has one
    "groundedness": {"threshold": [round(float(x), 2) for x in np.arange(0.40, 0.92, 0.04)]},
}
PASS_MARKS = [round(float(x), 2) for x in np.arange(0.05, 1.0, 0.05)]
JUDGE_SHOTS = (2, 4, 6)  # few-shot sizes tried when aligning an LLM judge (half pass, half fail)


def judge_examples(train: list[LabelledTrace], k: int) -> list[list[str]]:
    """``k`` labelled train traces as the judge's few-shot examples, half the people passed and
    half they failed (fewer when one side is short), picked by a hash of the trace id so a re-run
    picks alike; only traces with an answer and recorded excerpts."""
    usable = sorted(
        (t for t in train if getattr(t.output, "answer", "") and getattr(t.output, "contexts", None)),
        key=lambda t: hashlib.sha256(b"shot:" + t.trace_id.encode()).hexdigest(),
    )
    chosen = [t for t in usable if t.label][: k // 2] + [t for t in usable if not t.label][: k - k // 2]
    return [
        [
            "\n---\n".join(t.output.contexts),
            t.question,
            t.output.answer,
            "pass" if t.label else "fail",
            t.trace_id,
        ]
        for t in chosen
    ]


@dataclass
class LabelledTrace:
    trace_id: str
    label: bool  # the person's verdict: a good answer
    question: str
    output: Any  # EvalOutput


@dataclass
class Calibration:
    scorer: str
    n_train: int
    n_test: int
    params: dict[str, Any]  # the scorer's own parameter, or an aligned judge's few-shot examples
    pass_at: float
    spec: str
    before: dict[str, Any]  # on test: agreement, kappa and their 95 % intervals
    after: dict[str, Any]
    train_kappa: float | None
    history: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "history"}


def labelled_traces(traces: Iterable[Any]) -> list[LabelledTrace]:
    """Traces a person judged: the latest ``review/correct``, else the latest ``user_feedback``."""
    from flywheel.monitoring._agreement import _passes
    from flywheel.monitoring._online import trace_to_output

    out = []
    for trace in traces:
        found: dict[str, tuple[int, Any]] = {}
        for a in trace.info.assessments or []:
            fb = getattr(a, "feedback", None)
            if fb is None or a.name not in HUMAN_LABELS:
                continue
            if not str(getattr(a.source, "source_type", "")).endswith("HUMAN"):
                continue
            t = int(a.create_time_ms or 0)
            if a.name not in found or t >= found[a.name][0]:
                found[a.name] = (t, fb.value)
        value = next((found[n][1] for n in HUMAN_LABELS if n in found), None)
        label = _passes(value, 0.5)  # the agreement report's reading of a label
        if label is None:
            continue
        question, output = trace_to_output(trace)
        out.append(LabelledTrace(trace.info.trace_id, label, question, output))
    return out


def _is_test(trace_id: str) -> bool:
    return int(hashlib.sha256(trace_id.encode()).hexdigest()[:8], 16) % 2 == 1


def _kappa(human: list[bool], auto: list[bool]) -> float | None:
    from sklearn.metrics import cohen_kappa_score

    if len(set(human) | set(auto)) < 2:
        return None
    k = float(cohen_kappa_score(human, auto))
    return None if k != k else k


def _kappas(h: np.ndarray, a: np.ndarray) -> np.ndarray:
    """Cohen's kappa of boolean rows, vectorized over the rows (the bootstrap's resamples):
    (p_o - p_e) / (1 - p_e). The same figure as scikit-learn's ``cohen_kappa_score`` (a test checks),
    which validates its input on every call — 1,000 resamples cost it about a second."""
    po = np.mean(h == a, axis=-1)
    ph, pa = h.mean(axis=-1), a.mean(axis=-1)
    pe = ph * pa + (1 - ph) * (1 - pa)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(pe < 1, (po - pe) / (1 - pe), np.nan)


def _figures(human: list[bool], auto: list[bool], n_boot: int = 1000, seed: int = 0) -> dict[str, Any]:
    """Agreement and kappa with 95 % percentile-bootstrap intervals (resampling the pairs)."""
    h, a = np.array(human, dtype=bool), np.array(auto, dtype=bool)
    n = len(h)
    if not n:
        return {"n": 0, "agreement": None, "kappa": None}
    idx = np.random.default_rng(seed).integers(0, n, (n_boot, n))
    agree_b = np.mean(h[idx] == a[idx], axis=1)
    kappa_b = _kappas(h[idx], a[idx])
    kappa_b = kappa_b[~np.isnan(kappa_b)]
    kappa = _kappa(human, auto)
    return {
        "n": n,
        "agreement": round(float(np.mean(h == a)), 4),
        "agreement_ci": [round(float(np.percentile(agree_b, q)), 4) for q in (2.5, 97.5)],
        "kappa": None if kappa is None else round(kappa, 4),
        "kappa_ci": [round(float(np.percentile(kappa_b, q)), 4) for q in (2.5, 97.5)]
        if len(kappa_b)
        else None,
    }


def calibrate_scorer(
    name: str,
    labelled: list[LabelledTrace],
    context: Any,
    default_pass: float = 0.5,
    score: Callable[[str, dict[str, Any], LabelledTrace], float | None] | None = None,
) -> Calibration:
    """Fit ``name``'s parameter (if it has one in :data:`GRIDS`) and pass mark on the train part of
    ``labelled``; report both settings on the test part. ``score`` (for tests) replaces running the
    scorer: (name, params, trace) → value."""
    from flywheel.evaluation import GoldenItem, make_scorer, scorer_spec

    def run(params: dict[str, Any], t: LabelledTrace) -> float | None:
        if score is not None:
            return score(name, params, t)
        scorer = scorers.setdefault(json.dumps(params, sort_keys=True), make_scorer(name, **params))
        item = GoldenItem.model_validate({"input": {"question": t.question or "(no question)"}})
        return scorer(item, t.output, context).value

    scorers: dict[str, Any] = {}
    if context is not None and getattr(context, "embed", None) is not None:
        from flywheel.evaluation import ScorerContext
        from flywheel.monitoring._online import cached_embed

        # every candidate parameter re-reads the same sentences: embed each once
        context = ScorerContext(embed=cached_embed(context.embed), judge=context.judge)
    train = [t for t in labelled if not _is_test(t.trace_id)]
    test = [t for t in labelled if _is_test(t.trace_id)]
    grid = GRIDS.get(name, {})
    candidates: list[dict[str, Any]] = (
        [{k: v} for k, values in grid.items() for v in values] if grid else [{}]
    )
    if name == "judge_groundedness":  # align the LLM judge: few-shot examples from the train labels
        candidates += [{"examples": ex} for k in JUDGE_SHOTS if (ex := judge_examples(train, k))]
        candidates = list({json.dumps(c): c for c in candidates}.values())

    def shown(p: dict[str, Any]) -> set[str]:  # a trace shown as an example is not scored on
        return {ex[4] for ex in p.get("examples", [])}

    values = {
        json.dumps(p): [None if t.trace_id in shown(p) else run(p, t) for t in train] for p in candidates
    }
    scored: list[tuple[float, dict[str, Any], float]] = []
    for p in candidates:
        vals = values[json.dumps(p)]
        pairs = [(t.label, v) for t, v in zip(train, vals, strict=True) if v is not None]
        if not pairs:
            continue
        h = np.array([x for x, _ in pairs], dtype=bool)
        v = np.array([y for _, y in pairs], dtype=float)
        ks = _kappas(
            np.broadcast_to(h, (len(PASS_MARKS), len(h))), v[None, :] >= np.array(PASS_MARKS)[:, None]
        )
        scored += [(-1.0 if k != k else float(k), p, cut) for k, cut in zip(ks, PASS_MARKS, strict=True)]
    best = max(s[0] for s in scored)
    ties = [s for s in scored if s[0] >= best - 1e-9]
    _, params, pass_at = ties[len(ties) // 2]  # the middle of the plateau, not its edge

    def on_test(p: dict[str, Any], cut: float) -> dict[str, Any]:
        pairs = [(t.label, v) for t in test if (v := run(p, t)) is not None]
        return _figures([h for h, _ in pairs], [v >= cut for _, v in pairs])

    default_params: dict[str, Any] = {}
    spec = scorer_spec(make_scorer(name, **params))
    return Calibration(
        scorer=name,
        n_train=len(train),
        n_test=len(test),
        params=params,
        pass_at=pass_at,
        spec=spec,
        before=on_test(default_params, default_pass),
        after=on_test(params, pass_at),
        train_kappa=None if best < -0.5 else round(best, 4),
    )


def _path(settings: Settings) -> Path:
    return settings.data_path / "monitor" / "scorers.json"


def save_calibration(settings: Settings, results: list[Calibration]) -> Path:
    """Write the new scorer versions; the previous ones go to the file's history."""
    path = _path(settings)
    old = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    current = dict(old.get("scorers", {}))
    history = list(old.get("history", []))
    for c in results:
        if c.scorer in current:
            history.append({"scorer": c.scorer, **current[c.scorer]})
        current[c.scorer] = {**c.to_json(), "calibrated_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"scorers": current, "history": history}, indent=2), encoding="utf-8")
    return path


def _current(settings: Settings) -> dict[str, Any]:
    path = _path(settings)
    try:
        return dict(json.loads(path.read_text(encoding="utf-8")).get("scorers", {}))
    except (OSError, ValueError):
        return {}


def calibrated_scorers(settings: Settings, names: list[str]) -> list[Any]:
    """The scorers ``names`` at their calibrated version where there is one (else the default)."""
    from flywheel.evaluation import make_scorer

    current = _current(settings)
    return [make_scorer(n, **(current.get(n, {}).get("params") or {})) for n in names]


def pass_marks(settings: Settings, default: float = 0.5) -> dict[str, float]:
    """Scorer → the calibrated pass mark (scorers never calibrated are absent: use ``default``)."""
    return {n: float(c.get("pass_at", default)) for n, c in _current(settings).items()}
