"""The agent answers through the gateway with only its base URL changed, on the real stack; the
gateway's A/B arm is on the agent's trace."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from flywheel.config import Settings
from tests.serving.conftest import serve

pytestmark = pytest.mark.integration


def test_the_agent_answers_through_the_gateway(stack: Settings, tmp_path: Path) -> None:
    import mlflow

    from flywheel.agent import AgentConfig, DocsAgent
    from flywheel.gateway import build_gateway
    from flywheel.tracking import flush_traces, setup_tracing

    config = yaml.safe_load(
        (Path(__file__).resolve().parents[2] / "gateway" / "gateway_ab_test.yaml").read_text()
    )
    for ep in config["endpoints"]:
        ep["model"]["config"]["openai_api_base"] = stack.llm_url  # the stack's LLM on its test port
    path = tmp_path / "ab.yaml"
    path.write_text(yaml.safe_dump(config))
    with serve(build_gateway(str(path))) as (url, _):
        settings = stack.model_copy(update={"llm_base_url": url + "/v1"})  # the only change
        assert setup_tracing(settings, "gateway-it")
        agent = DocsAgent(settings, AgentConfig(policy="retrieve_first", max_tokens=48, temperature=0))
        answer = agent.ask("How do I start the embedded stack?", session_id="gw-session-1")
        assert answer.answer.strip() and answer.sources
        flush_traces()
        trace = mlflow.get_trace(answer.trace_id)
        assert trace.info.tags["gateway.arm"] in ("arm-a", "arm-b")
        assert trace.info.tags["gateway.route"] == "chat"
