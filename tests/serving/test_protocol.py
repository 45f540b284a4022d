"""One request, one parse: the agent server and the MLflow model (``mlflow models serve``) give the
same request the same thread, user and tags."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
from mlflow.types.responses import ResponsesAgentRequest

from flywheel.registry.agent_model import FlywheelResponsesAgent
from flywheel.serving import LoadedAgent, build_app, request_context
from tests.serving.conftest import running
from tests.serving.test_app import _agent

REQUEST: dict[str, Any] = {
    "input": [{"role": "user", "content": "Which port does the gateway use?"}],
    "custom_inputs": {"thread_id": "thread-42", "user_id": "ana", "tags": {"team": "docs"}},
    "context": {"conversation_id": "ignored-when-custom-says", "user_id": "ignored"},
}


class _Recorder:
    """Wraps the real agent and records what each server passes to it."""

    def __init__(self, agent: Any) -> None:
        self.agent, self.calls = agent, []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.agent, name)

    def ask(self, question: str, **kwargs: Any) -> Any:
        self.calls.append((question, kwargs))
        return self.agent.ask(question, **kwargs)


def test_both_servers_parse_one_request_the_same_way(tmp_path: Path) -> None:
    agent = _Recorder(_agent(tmp_path))
    with running(build_app(agent.settings, LoadedAgent(agent, {"model_uri": "local"}, "t"))) as url:
        served = httpx.post(url + "/responses", json=REQUEST).json()
    model = FlywheelResponsesAgent({})
    model._agent = agent
    model.predict(ResponsesAgentRequest(**REQUEST))
    (q1, server_kw), (q2, model_kw) = agent.calls
    assert q1 == q2 == "Which port does the gateway use?"
    assert server_kw["thread_id"] == model_kw["thread_id"] == "thread-42" == served["metadata"]["thread_id"]
    assert server_kw["user_id"] == model_kw["user_id"] == "ana"
    assert server_kw["tags"]["team"] == model_kw["tags"]["team"] == "docs"


def test_precedence_and_context_fallbacks() -> None:
    ctx = request_context(
        {
            "input": "Hi?",
            "metadata": {"thread_id": "m", "sim_run": "7"},
            "conversation": {"id": "c"},
            "user": "u",
        }
    )
    assert (ctx.thread_id, ctx.user_id, ctx.tags) == ("m", "u", {"client.sim_run": "7"})
    mlflow_style = request_context(
        {
            "input": [
                {"type": "function_call_output", "call_id": "1", "output": "x"},
                {"role": "user", "content": [{"type": "input_text", "text": "What?"}]},
            ],
            "context": {"conversation_id": "conv", "user_id": "who"},
        }
    )
    assert (mlflow_style.question, mlflow_style.thread_id, mlflow_style.user_id) == ("What?", "conv", "who")
