"""AgentConfig: every hyperparameter of the agent in one serializable object, so experiments can vary any."""

from __future__ import annotations

import hashlib
from typing import Any, Literal

from pydantic import BaseModel, Field

__all__ = ["EMBEDDED_POLICY", "AgentConfig", "Policy", "default_config"]

Policy = Literal["retrieve_first", "react", "grounded"]


# The policy of the embedded default (SmolLM2-135M): the winner of bench/answer_quality.py — the
# highest mean of response facts and citations on the MLflow docs golden set among the policies that
# refuse every adversarial item and abstain on every out-of-scope one. A capable LLM (LLM_BASE_URL)
# keeps retrieve_first.
EMBEDDED_POLICY: Policy = "grounded"


class AgentConfig(BaseModel):
    """What an agent version is. Logged with the model, tagged on every trace."""

    model: str | None = Field(None, description="LLM name; None: the configured LLM_MODEL")
    base_url: str | None = Field(None, description="OpenAI-compatible base URL; None: the configured LLM")
    system_prompt: str | None = Field(None, description="None: the built-in prompt for the language")
    prompt_name: str | None = Field(None, description="where the prompt came from (registry name@version)")
    language: Literal["auto", "en", "ja"] = "auto"
    temperature: float = Field(0.1, ge=0, le=2)
    max_tokens: int = Field(256, ge=16, le=8192)
    frequency_penalty: float = Field(0.3, ge=-2, le=2, description="small models loop without it")
    top_k: int = Field(5, ge=1, le=50)
    search_mode: Literal["hybrid", "dense"] = "hybrid"
    min_relevance: float | None = Field(
        None,
        ge=0,
        le=1,
        description="below this cosine score the docs are taken not to cover the question; "
        "None: the embedding model's calibrated threshold (knowledge.relevance_threshold)",
    )
    min_relevance_ja: float | None = Field(
        None,
        ge=0,
        le=1,
        description="the same for Japanese questions; None: the embedding model's calibration",
    )
    policy: Policy = "retrieve_first"
    answer_units: int = Field(8, ge=1, le=30, description="grounded: most excerpt sentences in an answer")
    answer_chars: int = Field(1200, ge=100, le=8000, description="grounded: most characters of an answer")
    lead_sentence: bool = Field(
        False, description="grounded: the LLM writes a lead sentence, kept only if it adds no new facts"
    )
    max_prompt_chars: int = Field(
        6000, ge=500, description="retrieve_first: cap on the excerpts' characters (bounds prefill time)"
    )
    tools: list[str] = Field(default_factory=lambda: ["doc_search", "web_search", "open_url"])
    max_steps: int = Field(4, ge=1, le=20, description="react: most tool rounds before answering")
    context_chars: int = Field(
        1200, ge=200, description="characters of each retrieved chunk shown to the LLM"
    )
    history_turns: int = Field(3, ge=0, le=20)
    guardrails: bool = True
    input_screen: Literal["auto", "full"] = Field(
        "auto",
        description="auto: the full input screen for policies that call an LLM, the extractive one "
        "(rules that only protect an LLM do not refuse) for grounded without a lead sentence; "
        "full: the full screen for every policy",
    )
    timeout: float = Field(120.0, gt=0)

    def screen_profile(self) -> str:
        """The guardrail's input profile for this config (safety.screen's ``profile``): risk follows
        the policy — an answer made only of quoted excerpts cannot be steered by an injection."""
        extractive = self.policy == "grounded" and not self.lead_sentence
        return "extractive" if extractive and self.input_screen == "auto" else "full"

    def tags(self) -> dict[str, str]:
        """What identifies the config on a trace: the whole config as JSON (``agent.config``, kept on
        the root span), its digest (traces of one config group by ``agent.config_digest``) and the
        policy. One trace tag per field would cost the tracking server a database merge per field per
        trace — most of its ingest time."""
        config = self.model_dump_json(exclude={"system_prompt"})
        return {
            "agent.config": config,
            "agent.config_digest": hashlib.sha256(config.encode()).hexdigest()[:12],
            "agent.policy": self.policy,
        }

    def params(self) -> dict[str, str]:
        """Flat string parameters (one per field) for MLflow runs."""
        return {f"agent.{k}": str(v) for k, v in self.model_dump(exclude={"system_prompt"}).items()}


def default_config(settings: Any, **overrides: Any) -> AgentConfig:
    """The default AgentConfig for these settings: ``EMBEDDED_POLICY`` when the LLM is the embedded
    one, ``retrieve_first`` otherwise; ``overrides`` (e.g. from ``--set``) win."""
    policy = EMBEDDED_POLICY if getattr(settings, "embedded_llm", False) else "retrieve_first"
    return AgentConfig(**{"policy": policy, **overrides})
