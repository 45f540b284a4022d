"""The CI quality gate: candidate vs champion on the same items, paired, decided by a thresholds file."""

from flywheel.gate._gate import (
    GateDecision,
    Thresholds,
    compare,
    decide,
    default_champion,
    holm,
    load_thresholds,
    power,
    repeated,
    run_gate,
)

__all__ = [
    "GateDecision",
    "Thresholds",
    "compare",
    "decide",
    "default_champion",
    "holm",
    "load_thresholds",
    "power",
    "repeated",
    "run_gate",
]
