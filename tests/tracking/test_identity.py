"""VersionIdentity: one digest per identity, a new one when anything it names changes."""

from __future__ import annotations

import json

from flywheel.agent import AgentConfig
from flywheel.tracking import VersionIdentity


def test_the_digest_follows_every_field_and_tags_carry_it() -> None:
    a = VersionIdentity.build(
        AgentConfig(), model={"registered_model.name": "m", "registered_model.version": "3"}
    )
    assert (
        a.digest()
        == VersionIdentity.build(
            AgentConfig(), model={"registered_model.name": "m", "registered_model.version": "3"}
        ).digest()
    )
    assert a.digest() != a.merged(dataset_digest="abc").digest()
    assert (
        a.digest()
        != VersionIdentity.build(AgentConfig(top_k=9), model={"registered_model.name": "m"}).digest()
    )
    tags = a.tags()
    assert tags["flywheel.identity_digest"] == a.digest()
    assert json.loads(tags["flywheel.identity"])["model_version"] == "3"
    compact = a.compact()
    compact["model_name"] = "changed"  # a copy: the frozen identity is not touched
    assert a.compact()["model_name"] == "m"


def test_from_mapping_reads_the_registered_model_keys() -> None:
    vi = VersionIdentity.from_mapping(
        {"registered_model.name": "x", "agent.config_digest": "d", "other": "ignored"}
    )
    assert (vi.model_name, vi.agent_config_digest) == ("x", "d")
