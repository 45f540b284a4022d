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


def test_the_evaluation_target_and_the_simulator_read_an_answer_alike() -> None:
    """One reader of a Responses answer: what the server writes, the evaluation target and the
    load simulator both read the same way (text of message items only, refusal, trace id)."""
    from flywheel.evaluation._targets import HttpTarget
    from flywheel.serving import read_response
    from flywheel.serving._protocol import message_item, response_object
    from flywheel.simulation._client import Outcome, read_answer

    body = response_object(
        "resp_1",
        "docs-qa-agent",
        0,
        output=[
            {"type": "reasoning", "content": [{"type": "output_text", "text": "(not the answer)"}]},
            message_item("msg_1", "Port 5005 [1]."),
        ],
        usage={"input_tokens": 3, "output_tokens": 4},
        metadata={"trace_id": "tr-abc"},
        custom_outputs={"refused": False, "abstained": True, "sources": [{"n": 1}]},
    )
    answer = read_response(body)
    assert (answer.text, answer.trace_id, answer.abstained, answer.failed) == (
        "Port 5005 [1].",
        "tr-abc",
        True,
        None,
    )
    out = HttpTarget("http://127.0.0.1:1").output(body, "which port?", 12.0)
    sim = Outcome("x", False, 0.0, 0.1, 200)
    read_answer(sim, body)
    assert out.answer == sim.text == answer.text
    assert out.trace_id == sim.trace_id == "tr-abc"
    assert out.abstained and sim.abstained and not (out.refused or sim.refused)
    assert out.usage == {"input_tokens": 3, "output_tokens": 4}

    failed = read_response({**body, "status": "failed", "error": {"code": "llm_unreachable"}})
    assert failed.failed == "llm_unreachable"
