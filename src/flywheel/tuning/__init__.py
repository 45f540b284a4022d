"""Hyperparameter search over agent configurations (model × prompt × any AgentConfig field): each
trial deployed, evaluated and deleted; a Pareto front; the best registered as ``challenger``."""

from flywheel.tuning._spec import Trial, TuneSpec, load_spec
from flywheel.tuning._tune import TrialResult, TuneResult, choose, pareto_front, run_tune, run_tune_worker

__all__ = [
    "Trial",
    "TrialResult",
    "TuneResult",
    "TuneSpec",
    "choose",
    "load_spec",
    "pareto_front",
    "run_tune",
    "run_tune_worker",
]
