"""Version identity: what produced a trace, an evaluation run, a tune trial or a gate decision.

One typed object, built once per run and attached the same way everywhere (``tags()``): the agent
config digest, the prompt (name@version), the registered model (name, version, alias), the LLM, the
dataset (name and digest), the scorers with their arguments, and the git commit. Its ``digest()`` is
the resume key of work that depends on all of them: change any and cached results are not reused.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import subprocess
from dataclasses import dataclass
from functools import cached_property, lru_cache
from typing import Any

__all__ = ["VersionIdentity", "git_commit"]


@lru_cache(maxsize=1)
def git_commit() -> str:
    """HEAD of the working tree this process runs from, or "unknown" outside a git checkout."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True, timeout=5
        )
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


@dataclass(frozen=True)
class VersionIdentity:
    """Everything a result depends on. Empty fields mean "not involved" (e.g. no registered model for
    a local config), never "unknown but probably the same"."""

    agent_config_digest: str = ""
    prompt: str = ""  # name@version of a registry prompt, "builtin:<lang>" or "inline:<digest>"
    model_name: str = ""
    model_version: str = ""
    model_alias: str = ""
    llm: str = ""  # model@base_url the agent calls
    dataset: str = ""
    dataset_digest: str = ""
    scorers: str = ""  # scorer specs with their arguments, ';'-joined
    git_commit: str = ""

    @classmethod
    def build(
        cls,
        config: Any | None = None,
        settings: Any | None = None,
        *,
        model: dict[str, str] | None = None,
        dataset: Any | None = None,
        scorers: list[str] | None = None,
    ) -> VersionIdentity:
        """From an AgentConfig (``config``), the settings (for the LLM defaults), a registered model
        (``{"registered_model.name": …, "registered_model.version": …, "registered_model.alias": …}``),
        a Dataset and the scorers' specs (``evaluation.scorer_spec``)."""
        fields: dict[str, str] = {"git_commit": git_commit()}
        if config is not None:
            fields["agent_config_digest"] = config.tags()["agent.config_digest"]
            if config.prompt_name:
                fields["prompt"] = config.prompt_name
            elif config.system_prompt:
                fields["prompt"] = "inline:" + hashlib.sha256(config.system_prompt.encode()).hexdigest()[:12]
            else:
                fields["prompt"] = f"builtin:{config.language}"
            llm_model = config.model or getattr(settings, "llm_model", "")
            base = config.base_url or getattr(settings, "llm_url", "")
            fields["llm"] = f"{llm_model}@{base}"
        if model:
            fields["model_name"] = model.get("registered_model.name", "")
            fields["model_version"] = str(model.get("registered_model.version", ""))
            fields["model_alias"] = model.get("registered_model.alias", "")
        if dataset is not None:
            fields["dataset"], fields["dataset_digest"] = dataset.name, dataset.digest
        if scorers:
            fields["scorers"] = ";".join(scorers)
        return cls(**fields)

    @classmethod
    def from_mapping(cls, data: dict[str, Any], **overrides: str) -> VersionIdentity:
        """From a flat mapping: the fields by name, ``registered_model.*`` keys, and
        ``agent.config_digest``; ``overrides`` win (empty ones are ignored)."""
        aliases = {
            "agent.config_digest": "agent_config_digest",
            "registered_model.name": "model_name",
            "registered_model.version": "model_version",
            "registered_model.alias": "model_alias",
        }
        names = set(cls.__dataclass_fields__)
        fields = {aliases.get(k, k): str(v) for k, v in data.items() if aliases.get(k, k) in names and v}
        fields.update({k: v for k, v in overrides.items() if v})
        return cls(**fields)

    def merged(self, **changes: str) -> VersionIdentity:
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v})

    def as_dict(self) -> dict[str, str]:
        return dataclasses.asdict(self)

    @cached_property
    def _compact(self) -> dict[str, str]:
        return {k: v for k, v in self.as_dict().items() if v}

    def compact(self) -> dict[str, str]:
        """The non-empty fields (computed once: the identity is frozen, and traces ask per request)."""
        return dict(self._compact)

    def tags(self) -> dict[str, str]:
        """How the identity is attached everywhere (trace tags, run tags, reports): its digest, and its
        non-empty fields as one JSON value (one tag, not ten: each tag is a database row per trace)."""
        return {
            "flywheel.identity_digest": self.digest(),
            "flywheel.identity": json.dumps(self.compact(), sort_keys=True)[:5000],
        }

    @cached_property
    def _digest(self) -> str:
        return hashlib.sha256(json.dumps(self.as_dict(), sort_keys=True).encode()).hexdigest()[:16]

    def digest(self) -> str:
        return self._digest
