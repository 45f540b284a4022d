"""Prompt loading falls back to the built-in prompt, with a warning, when the registry is unusable."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from flywheel.agent import DEFAULT_SYSTEM_PROMPTS
from flywheel.config import load_settings
from flywheel.registry import load_system_prompt, prompt_name_for
from tests.conftest import free_port


def test_registry_down_falls_back_to_builtin(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    settings = load_settings(data_dir=tmp_path, mlflow_port=free_port())  # nothing listens there
    with caplog.at_level(logging.WARNING, logger="flywheel.prompts"):
        loaded = load_system_prompt(settings, "en")
    assert loaded.text == DEFAULT_SYSTEM_PROMPTS["en"] and loaded.name == "builtin"
    assert "not reachable" in loaded.fallback_reason
    assert any("built-in system prompt" in r.message for r in caplog.records)


def test_prompt_names_per_language() -> None:
    assert prompt_name_for("docs-qa-system", "en") == "docs-qa-system"
    assert prompt_name_for("docs-qa-system", "ja") == "docs-qa-system-ja"
