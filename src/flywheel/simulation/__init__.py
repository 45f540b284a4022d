"""The user/load simulator: scripted users (single questions, multi-turn personas, harmful prompts)
against an agent server, closed or open loop, bounded; a report of latency, time to first token,
errors and the refusal rate on harmful prompts. ``simulation/locustfile.py`` runs the same users on
Locust for distributed capacity tests."""

from flywheel.simulation._client import Outcome, SimPrompt
from flywheel.simulation._run import SimOptions, SimReport, load_sim_config, simulate

__all__ = ["Outcome", "SimOptions", "SimPrompt", "SimReport", "load_sim_config", "simulate"]
