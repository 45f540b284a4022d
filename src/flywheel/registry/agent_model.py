"""The agent as an MLflow model, from code (logged with ``python_model=<this file>``).

A ``ResponsesAgent``: it speaks the OpenAI Responses API, which `mlflow models serve`, MLflow's
Agent Server and flywheel's own server all understand, and it streams. The AgentConfig travels in
the logged ``model_config``; infrastructure (LLM URL, index, tracking server) comes from the
environment of wherever the model is loaded, like any deployment.
"""

from __future__ import annotations

import uuid
from collections.abc import Generator
from typing import Any

import mlflow
from mlflow.pyfunc import ResponsesAgent
from mlflow.types.responses import ResponsesAgentRequest, ResponsesAgentResponse, ResponsesAgentStreamEvent


def _context(request: ResponsesAgentRequest) -> Any:
    """The request parsed the way the agent server parses it (serving's RequestContext): one request
    gets the same thread id, user and tags under `mlflow models serve` as under `flywheel serve`."""
    from flywheel.serving import request_context

    return request_context(request.model_dump(exclude_none=True))


class FlywheelResponsesAgent(ResponsesAgent):
    """Wraps flywheel's DocsAgent; built lazily on the first request (no connections at import)."""

    def __init__(self, config: dict[str, Any]) -> None:
        self._config = dict(config)
        self._agent: Any = None
        self.settings: Any = None  # set by whoever loads the model in-process; else from the environment

    @property
    def agent(self) -> Any:
        if self._agent is None:
            from flywheel.agent import AgentConfig, DocsAgent
            from flywheel.config import load_settings
            from flywheel.registry._prompts import prompt_loader
            from flywheel.tracking import setup_tracing

            config = dict(self._config)
            identity = config.pop("_identity", {})
            settings = self.settings or load_settings()
            setup_tracing(settings)
            agent_config = AgentConfig(**config)
            self._agent = DocsAgent(
                settings, agent_config, prompt_loader=prompt_loader(settings), identity=identity
            )
        return self._agent

    def _kwargs(self, request: ResponsesAgentRequest) -> tuple[str, dict[str, Any]]:
        ctx = _context(request)
        return ctx.question, ctx.agent_kwargs(ctx.thread_id or uuid.uuid4().hex)

    def predict(self, request: ResponsesAgentRequest) -> ResponsesAgentResponse:  # type: ignore[override]
        question, kwargs = self._kwargs(request)
        answer = self.agent.ask(question, **kwargs)
        item = self.create_text_output_item(text=answer.answer, id=f"msg_{uuid.uuid4().hex[:24]}")
        return ResponsesAgentResponse(output=[item], custom_outputs=answer.custom_outputs())

    def predict_stream(  # type: ignore[override]
        self, request: ResponsesAgentRequest
    ) -> Generator[ResponsesAgentStreamEvent, None, None]:
        item_id = f"msg_{uuid.uuid4().hex[:24]}"
        question, kwargs = self._kwargs(request)
        for event in self.agent.stream(question, **kwargs):
            if event["type"] == "delta":
                yield ResponsesAgentStreamEvent(
                    **self.create_text_delta(delta=event["text"], item_id=item_id)
                )
            else:
                answer = event["answer"]
                yield ResponsesAgentStreamEvent(
                    type="response.output_item.done",
                    item=self.create_text_output_item(text=answer.answer, id=item_id),
                    custom_outputs=answer.custom_outputs(),
                )


# The logged model_config is only visible while MLflow executes this file: read it now.
# (development_config: what a plain `python agent_model.py` import gets.)
_CONFIG = mlflow.models.ModelConfig(development_config={"policy": "retrieve_first"}).to_dict()
mlflow.models.set_model(FlywheelResponsesAgent(_CONFIG))
