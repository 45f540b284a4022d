"""Calibration: a scorer fitted to human labels agrees with them better on labels it never saw, and
the fitted scorer is a new version that no resumed evaluation or monitor mixes with the old."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np

from flywheel.monitoring._calibrate import LabelledTrace, calibrate_scorer

TRUE_THRESHOLD = 0.74  # the people call an answer good when its hidden quality reaches this


def _labelled(n: int = 400, noise: float = 0.05, seed: int = 3) -> list[LabelledTrace]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        q = float(rng.uniform(0, 1))
        label = (q >= TRUE_THRESHOLD) != (rng.uniform() < noise)
        out.append(LabelledTrace(f"tr-{i:04d}", label, f"q{i}", SimpleNamespace(quality=q)))
    return out


def _groundedness_like(name: str, params: dict[str, float], t: LabelledTrace) -> float:
    """A sentence counts as supported when its similarity (the hidden quality, give or take) reaches
    the scorer's threshold: the share of supported sentences is the score."""
    tau = params.get("threshold", 0.62)
    sims = t.output.quality + np.linspace(-0.05, 0.05, 5)
    return float(np.mean(sims >= tau))


def test_calibration_finds_the_peoples_threshold_and_raises_kappa_on_held_out_labels() -> None:
    labelled = _labelled()
    cal = calibrate_scorer("groundedness", labelled, context=None, score=_groundedness_like)
    assert cal.n_train + cal.n_test == len(labelled) and min(cal.n_train, cal.n_test) > 150
    assert abs(cal.params["threshold"] - TRUE_THRESHOLD) <= 0.06, cal.params
    before, after = cal.before["kappa"], cal.after["kappa"]
    assert after > before + 0.1, (before, after)
    assert after >= 0.8 and cal.after["kappa_ci"][0] > cal.before["kappa"]
    assert cal.spec != "groundedness(threshold=0.62)" and cal.spec.startswith("groundedness(threshold=")


def test_a_scorer_without_parameters_gets_a_pass_mark_only() -> None:
    labelled = _labelled()
    cal = calibrate_scorer(
        "answer_relevance", labelled, context=None, score=lambda n, p, t: t.output.quality * 0.8
    )
    assert cal.params == {} and abs(cal.pass_at - TRUE_THRESHOLD * 0.8) <= 0.05
    assert cal.after["kappa"] > cal.before["kappa"]


def test_a_calibrated_scorer_is_a_new_version_everywhere(tmp_path: Path) -> None:
    from flywheel.config import load_settings
    from flywheel.evaluation import EvalOptions, make_scorer
    from flywheel.evaluation._runner import _key
    from flywheel.evaluation._scorers import scorer_spec
    from flywheel.monitoring._calibrate import calibrated_scorers, pass_marks, save_calibration

    settings = load_settings(data_dir=tmp_path / "data", mlflow_port=1)
    default = calibrated_scorers(settings, ["groundedness"])
    assert scorer_spec(default[0]) == scorer_spec(make_scorer("groundedness"))
    cal = calibrate_scorer("groundedness", _labelled(), context=None, score=_groundedness_like)
    path = save_calibration(settings, [cal])
    new = calibrated_scorers(settings, ["groundedness"])
    assert scorer_spec(new[0]) == cal.spec != scorer_spec(default[0])
    assert pass_marks(settings) == {"groundedness": cal.pass_at}

    # a resumed evaluation keys its results by the scorers' specs: the old scores are not reused
    ds = SimpleNamespace(name="d", digest="x", items=[])
    target = SimpleNamespace(name="t", spec="t", identity={})
    assert _key(EvalOptions(ds, target, default, None)) != _key(EvalOptions(ds, target, new, None))

    # a second calibration keeps the first in the history
    save_calibration(settings, [cal])
    import json

    assert len(json.loads(path.read_text())["history"]) == 1


def test_the_vectorized_kappa_is_scikit_learns() -> None:
    from sklearn.metrics import cohen_kappa_score

    from flywheel.monitoring._calibrate import _kappas

    rng = np.random.default_rng(0)
    h = rng.uniform(size=(20, 50)) < 0.4
    a = (rng.uniform(size=(20, 50)) < 0.3) | h & (rng.uniform(size=(20, 50)) < 0.7)
    ours = _kappas(h, a)
    theirs = [cohen_kappa_score(h[i], a[i]) for i in range(20)]
    assert np.allclose(ours, theirs)


def test_the_low_score_queue_uses_the_calibrated_pass_marks() -> None:
    """A score of 0.55 passes the default mark (0.5) but fails a calibrated 0.6: the review queue
    and the regression curation then agree on what a low score is."""
    from flywheel.monitoring._review import _in_queue

    def trace(value: float) -> SimpleNamespace:
        a = SimpleNamespace(
            name="online/answer_relevance",
            feedback=SimpleNamespace(value=value),
            source=SimpleNamespace(source_type="CODE"),
            create_time_ms=1,
        )
        return SimpleNamespace(info=SimpleNamespace(assessments=[a], trace_id="tr-1", tags={}))

    assert not _in_queue("low-score", trace(0.55))
    assert _in_queue("low-score", trace(0.55), {"answer_relevance": 0.6})
    assert not _in_queue("low-score", trace(0.65), {"answer_relevance": 0.6})
    assert _in_queue("low-score", trace(0.45), {"groundedness": 0.3})  # other scorers keep 0.5


def test_an_llm_judge_is_aligned_with_few_shot_examples_from_the_train_labels(tmp_path: Path) -> None:
    """The judge (a stand-in: this tests the alignment, not an LLM) is lenient on its own — every
    answer a 7 — and follows the people's bar once it sees their graded examples. calibrate
    picks balanced examples from the train half only, never scores a trace it showed, keeps the
    version that agrees best on train, and that version's spec survives a save and a reload."""
    from flywheel.config import load_settings
    from flywheel.evaluation import ScorerContext
    from flywheel.evaluation._scorers import EvalOutput, scorer_spec
    from flywheel.monitoring._calibrate import _is_test, calibrated_scorers, save_calibration

    rng = np.random.default_rng(5)
    quality: dict[str, float] = {}
    labelled = []
    for i in range(120):
        q = float(rng.uniform(0, 1))
        answer = f"answer {i}"
        quality[answer] = q
        out = EvalOutput(answer=answer, question=f"q{i}", contexts=[f"excerpt {i}"])
        labelled.append(LabelledTrace(f"tr-{i:04d}", q >= 0.6, f"q{i}", out))
    prompts: list[str] = []

    def judge(prompt: str) -> str:
        prompts.append(prompt)
        case = prompt.rsplit("ANSWER: ", 1)[1].split("\n", 1)[0]
        if "graded by the people" not in prompt:
            return "7"
        return "8" if quality[case] >= 0.6 else "3"

    cal = calibrate_scorer("judge_groundedness", labelled, ScorerContext(judge=judge))
    shots = cal.params["examples"]
    assert len(shots) in (2, 4, 6)
    assert {s[3] for s in shots} == {"pass", "fail"}
    assert not any(_is_test(s[4]) for s in shots)  # only train traces are shown
    aligned = [p for p in prompts if "graded by the people" in p]
    assert aligned
    for p in aligned:  # a trace shown as an example is never graded with itself shown
        shots_part, case_part = p.split("Now the case to grade.")
        case = case_part.rsplit("ANSWER: ", 1)[1].split("\n", 1)[0]
        assert f"ANSWER: {case}\n" not in shots_part
    assert cal.before["kappa"] is None or cal.before["kappa"] < 0.2
    assert cal.after["kappa"] > 0.9
    assert "sha256:" in cal.spec and len(cal.spec) < 80

    settings = load_settings(data_dir=tmp_path / "data", mlflow_port=1)
    save_calibration(settings, [cal])
    (reloaded,) = calibrated_scorers(settings, ["judge_groundedness"])
    assert scorer_spec(reloaded) == cal.spec  # JSON turned the tuples into lists: same version
