"""Evaluation targets — what answers the questions: a local AgentConfig, an agent server URL, or a
registered model (models:/NAME@ALIAS). A Protocol plus constructors chosen from a target string."""

from __future__ import annotations

import contextlib
import json
import time
from typing import Any, Protocol

import httpx

from flywheel.agent import AgentConfig
from flywheel.config import Settings
from flywheel.errors import InputError
from flywheel.evaluation._scorers import EvalOutput

__all__ = ["AgentTarget", "HttpTarget", "Target", "answer_output", "make_target"]


class Target(Protocol):
    spec: str
    identity: dict[str, str]

    def run(self, question: str) -> EvalOutput: ...


def answer_output(answer: Any, model: str) -> EvalOutput:
    """An AgentAnswer as the EvalOutput scorers read."""
    return EvalOutput(
        answer=answer.answer,
        sources=answer.sources,
        tools_called=answer.tools_called,
        search_queries=answer.search_queries,
        refused=answer.refused,
        abstained=answer.abstained,
        latency_ms=answer.latency_ms,
        usage=answer.usage,
        trace_id=answer.trace_id,
        model=model,
        contexts=list(getattr(answer, "contexts", None) or []),
    )


class AgentTarget:
    """The agent in this process (a local AgentConfig, or a registered version loaded from MLflow)."""

    def __init__(
        self, settings: Settings, config: AgentConfig | None = None, model_uri: str | None = None
    ) -> None:
        from flywheel.registry import load_agent

        # MLflow's own exporter: assessments are logged on each trace right after it is written
        loaded = load_agent(settings, model_uri, config, trace_export="mlflow")
        self.agent = loaded.agent
        self.spec = model_uri or "local"
        prompt = self.agent.prompt("en")  # resolved now: moving the prompt alias changes the identity
        self.identity = {
            **loaded.identity,
            **self.agent.config.params(),
            **self.agent.version_identity(f"{prompt.name}@{prompt.version}").compact(),
        }
        self.model = self.agent.config.model or settings.llm_model
        self.trace_tags: dict[str, str] = {
            "flywheel.eval": "1"
        }  # the runner adds the dataset name and digest

    def run(self, question: str) -> EvalOutput:
        return answer_output(
            self.agent.ask(question, user_id="flywheel-eval", tags=self.trace_tags), self.model
        )


class HttpTarget:
    """An agent server speaking the Responses API (flywheel serve, or anything compatible)."""

    def __init__(self, url: str, api_key: str | None = None, timeout: float = 300) -> None:
        self.spec = url
        self.url = url.rstrip("/")
        if not self.url.endswith(("/responses", "/invocations")):
            self.url += "/responses"
        self.identity = {"endpoint": url}
        self._client = httpx.Client(
            timeout=timeout, headers={"Authorization": f"Bearer {api_key}"} if api_key else {}
        )

    def run(self, question: str) -> EvalOutput:
        t0 = time.perf_counter()
        resp = self._client.post(self.url, json={"input": question, "user": "flywheel-eval"})
        latency = (time.perf_counter() - t0) * 1000
        if resp.status_code != 200:
            return EvalOutput(error=f"HTTP {resp.status_code}: {resp.text[:200]}", latency_ms=latency)
        return self.output(resp.json(), question, latency)

    def output(self, data: dict[str, Any], question: str, latency: float) -> EvalOutput:
        """An EvalOutput from a Responses API answer (also what AgentCore's /invocations returns)."""
        from flywheel.serving import read_response

        answer = read_response(data)
        text, custom, meta, usage = answer.text, answer.custom, answer.metadata, answer.usage
        for key in ("registered_model.name", "registered_model.version", "registered_model.alias"):
            if key in meta:
                self.identity[key] = meta[key]
        # the server's VersionIdentity (config digest, prompt, LLM, its git commit)
        with contextlib.suppress(ValueError):
            self.identity.update(json.loads(meta.get("flywheel.identity") or "{}"))
        return EvalOutput(
            answer=text,
            sources=custom.get("sources", []),
            tools_called=custom.get("tools_called", []),
            refused=answer.refused,
            abstained=answer.abstained,
            latency_ms=latency,
            trace_id=answer.trace_id or None,
            model=answer.model,
            usage={
                "input_tokens": usage.get("input_tokens", 0),
                "output_tokens": usage.get("output_tokens", 0),
            },
            search_queries=custom.get(
                "search_queries", [question] if "doc_search" in custom.get("tools_called", []) else []
            ),
        )


def make_target(spec: str, settings: Settings, config: AgentConfig | None = None) -> Target:
    """``local`` | ``http(s)://…`` | ``models:/NAME@ALIAS``."""
    if spec == "local":
        return AgentTarget(settings, config)
    if spec.startswith("models:/"):
        return AgentTarget(settings, model_uri=spec)
    if spec.startswith(("http://", "https://")):
        return HttpTarget(spec, settings.api_key.get_secret_value() if settings.api_key else None)
    raise InputError("unknown_target", target=spec)
