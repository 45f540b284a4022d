"""The agent's guardrails live in :mod:`flywheel.safety`; this module keeps the agent's old names."""

from flywheel.safety import RULES, GuardRule, Verdict, register_rule, screen

__all__ = ["RULES", "GuardRule", "Verdict", "register_rule", "screen"]
