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
