"""--set KEY=VALUE parsing shared by log-model and eval: JSON values, clear errors, no traceback."""

from __future__ import annotations

import pytest

from flywheel.cli._common import agent_config
from flywheel.errors import InputError


def test_values_are_parsed_as_json_when_they_are_json() -> None:
    cfg = agent_config(["top_k=8", "policy=react", 'tools=["doc_search"]', "temperature=0.5"])
    assert (cfg.top_k, cfg.policy, cfg.tools, cfg.temperature) == (8, "react", ["doc_search"], 0.5)


@pytest.mark.parametrize(
    ("sets", "needle"),
    [(["nope"], "not KEY=VALUE"), (["top_k=abc"], "--set top_k"), (["policy=coin_flip"], "--set policy")],
)
def test_bad_sets_are_input_errors(sets: list[str], needle: str) -> None:
    with pytest.raises(InputError) as info:
        agent_config(sets)
    assert needle in info.value.render("en")
