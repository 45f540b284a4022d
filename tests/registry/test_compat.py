"""Agent versions logged by an earlier flywheel keep loading: their models-from-code file imports
these names, so they stay importable where those versions expect them."""

from __future__ import annotations

import importlib

import pytest

# (module, name) imported by registry/agent_model.py of earlier releases
EARLIER_IMPORTS = [
    ("flywheel.agent", "AgentConfig"),
    ("flywheel.agent", "DocsAgent"),
    ("flywheel.agent", "setup_tracing"),  # moved to flywheel.tracking; re-exported
    ("flywheel.config", "load_settings"),
    ("flywheel.registry._prompts", "prompt_loader"),
    ("flywheel.tracking", "setup_tracing"),
]


@pytest.mark.parametrize("module,name", EARLIER_IMPORTS)
def test_names_that_logged_versions_import_still_exist(module: str, name: str) -> None:
    assert hasattr(importlib.import_module(module), name)
