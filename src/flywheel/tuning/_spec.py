"""The tuning file: what to search over and how to choose.

It reads the other seed's ``hpo_config.json`` shape — ``models`` × ``system_prompts`` — and adds any
other ``AgentConfig`` field under ``search``::

    {
      "models": ["gpt-4o-mini", {"name": "smollm2-greedy", "temperature": 0.0}],
      "system_prompts": {"builtin": null, "terse": "You answer from the excerpts only…"},
      "search": {"policy": ["grounded", "retrieve_first"], "top_k": [3, 5]},
      "strategy": "grid",                      # or "optuna" (TPE) with "n_trials"
      "dataset": "datasets/flywheel-docs-golden.json",
      "per_kind": {"happy_path": 6, "adversarial": 2, "out_of_scope": 2},
      "objective": {"response_facts": 1, "citations": 1, "abstention": 1},
      "constraints": {"refusal": 1.0},
      "register": {"name": "docs-qa-agent", "alias": "challenger"}
    }

A model given as a string sets ``AgentConfig.model``; as an object, ``name`` labels it and every other
key is an AgentConfig field (``model``, ``base_url``, ``temperature``, …), so one set of weights
served with different settings counts as a second model. A system prompt is its text, or null for
the built-in prompt.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from flywheel.config import read_json_file
from flywheel.errors import InputError

__all__ = ["Trial", "TuneSpec", "load_spec"]


class ModelChoice(BaseModel):
    model_config = ConfigDict(extra="allow")
    name: str


class TuneSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    models: list[ModelChoice] = Field(default_factory=list)
    system_prompts: dict[str, str | None] = Field(default_factory=dict)
    search: dict[str, list[Any]] = Field(default_factory=dict)
    fixed: dict[str, Any] = Field(default_factory=dict, description="AgentConfig fields of every trial")
    strategy: Literal["grid", "optuna"] = "grid"
    n_trials: int | None = Field(None, ge=1, description="optuna: the trial budget; grid: a cap")
    parallel: int = Field(1, ge=1, le=16, description="trials at once (local: 1 per 2 cores)")
    seed: int = 0
    dataset: str = "datasets/flywheel-docs-golden.json"
    split: Literal["all", "train"] = Field(
        "all", description="train: search on the dataset's train half, so the gate can judge on the test half"
    )
    per_kind: dict[str, int] | None = None
    scorers: list[str] = Field(
        default_factory=lambda: ["response_facts", "citations", "refusal", "abstention", "latency"]
    )
    objective: dict[str, float] = Field(
        default_factory=lambda: {"response_facts": 1.0, "citations": 1.0, "abstention": 1.0}
    )
    constraints: dict[str, float] = Field(default_factory=lambda: {"refusal": 1.0})
    price_per_mtok: dict[str, dict[str, float]] = Field(
        default_factory=dict, description="model name → {input, output} USD per million tokens"
    )
    tolerance: float = Field(
        0.02, ge=0, description="choose the fastest trial within this much quality of the best"
    )
    register_as: dict[str, str] | None = Field(
        default_factory=lambda: {"name": "docs-qa-agent", "alias": "challenger"}, alias="register"
    )

    @field_validator("models", mode="before")
    @classmethod
    def _models(cls, v: Any) -> Any:
        return [{"name": m, "model": m} if isinstance(m, str) else m for m in (v or [])]

    @field_validator("system_prompts", mode="before")
    @classmethod
    def _prompts(cls, v: Any) -> Any:
        if isinstance(v, list):  # a list of texts: name them by position
            return {f"prompt{i + 1}": p for i, p in enumerate(v)}
        return v

    def dimensions(self) -> dict[str, list[tuple[str, dict[str, Any]]]]:
        """Each dimension: its choices as (label, AgentConfig overrides)."""
        dims: dict[str, list[tuple[str, dict[str, Any]]]] = {}
        if self.models:
            dims["model"] = [(m.name, m.model_dump(exclude={"name"})) for m in self.models]
        if self.system_prompts:
            dims["prompt"] = [
                (name, {"system_prompt": text, "prompt_name": f"tune:{name}"} if text else {})
                for name, text in self.system_prompts.items()
            ]
        for field, values in self.search.items():
            dims[field] = [(json.dumps(v) if not isinstance(v, str) else v, {field: v}) for v in values]
        return dims

    def grid(self) -> list[Trial]:
        dims = self.dimensions()
        names = list(dims)
        trials = []
        for combo in itertools.product(*(dims[n] for n in names)):
            trials.append(self.trial({n: label for n, (label, _) in zip(names, combo, strict=True)}))
        return trials[: self.n_trials] if self.n_trials else trials

    def trial(self, labels: dict[str, str]) -> Trial:
        dims = self.dimensions()
        overrides: dict[str, Any] = dict(self.fixed)
        for name, label in labels.items():
            overrides.update(dict(dims[name])[label])
        return Trial(labels, overrides)

    def digest(self) -> str:
        return hashlib.sha256(self.model_dump_json().encode()).hexdigest()[:10]


class Trial:
    """One configuration: the chosen label per dimension and the AgentConfig overrides they make."""

    def __init__(self, labels: dict[str, str], overrides: dict[str, Any]) -> None:
        self.labels = labels
        self.overrides = overrides

    @property
    def key(self) -> str:
        blob = json.dumps(self.overrides, sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]

    def label(self) -> str:
        return " · ".join(f"{k}={v}" for k, v in self.labels.items())


def load_spec(path: Path) -> TuneSpec:
    """Read and validate a tuning file; every mistake names the file, the key and what is expected."""
    raw = read_json_file(path, {"en": "tuning file", "ja": "チューニング設定"}, "--config")
    try:
        spec = TuneSpec.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise InputError(
            "config_key",
            path=str(path),
            field=".".join(str(x) for x in err["loc"]) or "(top level)",
            detail=err["msg"],
        ) from exc
    if not spec.dimensions():
        raise InputError(
            "config_key",
            path=str(path),
            field="models / system_prompts / search",
            detail="nothing to search over",
        )
    return spec
