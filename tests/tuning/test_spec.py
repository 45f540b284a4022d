"""The tuning file, the Pareto front and the choice rule, without a stack."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from flywheel.errors import InputError
from flywheel.tuning import TrialResult, TuneSpec, choose, load_spec, pareto_front


def test_the_seed_shape_and_any_agent_config_field_make_a_grid() -> None:
    spec = TuneSpec.model_validate(
        {
            "models": ["gpt-4o-mini", {"name": "local-warm", "temperature": 0.8}],
            "system_prompts": {"builtin": None, "terse": "Answer briefly."},
            "search": {"policy": ["grounded", "retrieve_first"], "tools": [["doc_search"], []]},
            "fixed": {"max_tokens": 128},
        }
    )
    grid = spec.grid()
    assert len(grid) == 2 * 2 * 2 * 2
    assert len({t.key for t in grid}) == len(grid)  # every configuration is distinct
    first = grid[0]
    assert first.labels == {
        "model": "gpt-4o-mini",
        "prompt": "builtin",
        "policy": "grounded",
        "tools": '["doc_search"]',
    }
    assert first.overrides == {
        "max_tokens": 128,
        "model": "gpt-4o-mini",
        "policy": "grounded",
        "tools": ["doc_search"],
    }
    terse_warm = next(t for t in grid if t.labels["prompt"] == "terse" and t.labels["model"] == "local-warm")
    assert terse_warm.overrides["system_prompt"] == "Answer briefly."
    assert terse_warm.overrides["prompt_name"] == "tune:terse"
    assert terse_warm.overrides["temperature"] == 0.8 and "model" not in terse_warm.overrides


def test_a_list_of_prompts_and_a_trial_cap() -> None:
    spec = TuneSpec.model_validate({"system_prompts": ["A.", "B.", "C."], "n_trials": 2})
    assert [t.labels["prompt"] for t in spec.grid()] == ["prompt1", "prompt2"]


def test_mistakes_name_the_file_and_the_key(tmp_path: Path) -> None:
    bad = tmp_path / "t.json"
    bad.write_text(json.dumps({"models": ["m"], "strategy": "random"}))
    with pytest.raises(InputError) as err:
        load_spec(bad)
    text = err.value.render()
    assert str(bad) in text and "strategy" in text
    bad.write_text(json.dumps({"modles": ["m"]}))
    with pytest.raises(InputError, match="modles"):
        load_spec(bad)
    bad.write_text(json.dumps({"strategy": "grid"}))
    with pytest.raises(InputError, match="nothing to search over"):
        load_spec(bad)
    with pytest.raises(InputError, match="does not exist"):
        load_spec(tmp_path / "missing.json")


def test_the_shipped_tuning_file_is_valid() -> None:
    spec = load_spec(Path(__file__).resolve().parents[2] / "tuning" / "tuning.json")
    assert len(spec.grid()) >= 8  # 2 models × 2 prompts × 2 policies


def _t(key: str, q: float, lat: float, cost: float = 0.0, feasible: bool = True) -> TrialResult:
    return TrialResult(key, {"k": key}, {}, quality=q, latency_p50_ms=lat, cost_usd=cost, feasible=feasible)


def test_pareto_front_and_choice() -> None:
    trials = [
        _t("best-slow", 0.80, 9000),
        _t("near-fast", 0.79, 3000),
        _t("dominated", 0.70, 5000),
        _t("fastest-worse", 0.50, 1000),
        _t("infeasible", 0.99, 500, feasible=False),
    ]
    front = {t.key for t in pareto_front(trials)}
    assert front == {"best-slow", "near-fast", "fastest-worse"}
    # within the tolerance of the best quality, the faster wins; outside it, quality does
    assert choose(pareto_front(trials), tolerance=0.02).key == "near-fast"  # type: ignore[union-attr]
    assert choose(pareto_front(trials), tolerance=0.0).key == "best-slow"  # type: ignore[union-attr]
    assert choose(pareto_front([_t("x", 1.0, 1, feasible=False)]), 0.02) is None


def test_cost_breaks_a_tie() -> None:
    trials = [_t("dear", 0.8, 1000, cost=0.01), _t("cheap", 0.8, 1000, cost=0.001)]
    assert [t.key for t in pareto_front(trials)] == ["cheap"]
