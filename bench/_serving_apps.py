"""Processes for bench/serving.py: a stub OpenAI-compatible LLM, the bare endpoint, the agent server.

python bench/_serving_apps.py stub  PORT
python bench/_serving_apps.py bare  PORT LLM_URL
python bench/_serving_apps.py agent PORT LLM_URL TRACKING_URI [EXPERIMENT]
python bench/_serving_apps.py agent-workers PORT LLM_URL TRACKING_URI EXPERIMENT WORKERS
python bench/_serving_apps.py mlflow PORT LLM_URL TRACKING_URI EXPERIMENT (mlflow|otlp)

``mlflow`` serves the same agent (stub knowledge base) with MLflow's own AgentServer
(``mlflow.genai.agent_server``), tracing with MLflow's default exporter or over OTLP to the
tracking server's ``/v1/traces`` (MLflow's documented OTLP path, the same batch settings flywheel
uses).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI, Request, Response

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

REPLY = {
    "id": "chatcmpl-stub",
    "object": "chat.completion",
    "created": 0,
    "model": "stub",
    "choices": [
        {
            "index": 0,
            "finish_reason": "stop",
            "message": {"role": "assistant", "content": "The gateway listens on port 5010 [1]."},
        }
    ],
    "usage": {"prompt_tokens": 50, "completion_tokens": 10, "total_tokens": 60},
}


def stub_app() -> FastAPI:
    app = FastAPI()

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> Any:
        body = await request.json()
        created = int(time.time())
        if not body.get("stream"):
            return {**REPLY, "created": created}
        head = {"id": "chatcmpl-stub", "object": "chat.completion.chunk", "created": created, "model": "stub"}
        text = REPLY["choices"][0]["message"]["content"]  # type: ignore[index]
        chunks = [
            {
                **head,
                "choices": [
                    {"index": 0, "delta": {"role": "assistant", "content": text}, "finish_reason": None}
                ],
            },
            {
                **head,
                "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
                "usage": REPLY["usage"],
            },
        ]
        payload = "".join(f"data: {json.dumps(c)}\n\n" for c in chunks) + "data: [DONE]\n\n"
        return Response(payload, media_type="text/event-stream")

    return app


def bare_app(llm_url: str) -> FastAPI:
    import httpx

    app = FastAPI()
    client = httpx.AsyncClient(base_url=llm_url, timeout=30)

    @app.post("/bare")
    async def bare(request: Request) -> dict:
        body = await request.json()
        question = body["input"] if isinstance(body["input"], str) else body["input"][-1]["content"]
        resp = await client.post(
            "/chat/completions",
            json={
                "model": "stub",
                "messages": [{"role": "user", "content": question}],
                "max_tokens": 64,
            },
        )
        return {"output_text": resp.json()["choices"][0]["message"]["content"]}

    return app


class StubKnowledgeBase:
    """Fixed hits: isolates the server's own overhead from embedding and vector search."""

    def __init__(self, settings) -> None:  # type: ignore[no-untyped-def]
        from flywheel.knowledge import Hit

        self.settings = settings
        self._hits = [
            Hit(
                f"h{i}",
                0.03,
                0.8,
                "The gateway listens on port 5010.",
                "Gateway",
                "Gateway > Ports",
                "gateway.md",
            )
            for i in range(5)
        ]

        class _Index:
            def exists(self) -> bool:
                return True

        self.index = _Index()

    def search(self, query: str, k: int = 5, mode: str = "hybrid"):  # type: ignore[no-untyped-def]
        from flywheel.knowledge import SearchResult

        return SearchResult(self._hits[:k])


def agent_app(llm_url: str, tracking_uri: str, real_kb: bool, experiment: str = "bench-serving") -> FastAPI:
    import logging

    from flywheel.agent import AgentConfig, DocsAgent
    from flywheel.config import load_settings
    from flywheel.serving import LoadedAgent, ServerLimits, build_app
    from flywheel.tracking import setup_tracing

    logging.getLogger("mlflow").setLevel(logging.ERROR)
    settings = load_settings(llm_base_url=llm_url, mlflow_tracking_uri=tracking_uri, experiment=experiment)
    if settings.serve_trace:
        setup_tracing(settings, export=settings.serve_trace_export)
    kb = None if real_kb else StubKnowledgeBase(settings)
    agent = DocsAgent(settings, AgentConfig(), kb=kb)  # type: ignore[arg-type]
    return build_app(
        settings,
        LoadedAgent(agent, {"model_uri": "bench"}, "bench"),
        ServerLimits(max_concurrency=16, max_queue=256),
    )


def agent_workers_app() -> FastAPI:
    """uvicorn factory of the multi-worker arm: each worker builds its own app (as `flywheel serve
    --workers N` does), configured through the environment."""
    env = os.environ
    return agent_app(env["BENCH_LLM"], env["BENCH_TRACKING"], False, env["BENCH_EXPERIMENT"])


def mlflow_app(llm_url: str, tracking_uri: str, experiment: str, export: str) -> FastAPI:
    """The same agent behind MLflow's AgentServer, as its docs show: an ``@invoke()`` function."""
    import asyncio
    import logging
    import uuid

    from mlflow.genai.agent_server import AgentServer, invoke
    from mlflow.types.responses import ResponsesAgentRequest, ResponsesAgentResponse

    from flywheel.agent import AgentConfig, DocsAgent
    from flywheel.config import load_settings
    from flywheel.tracking import setup_tracing

    logging.getLogger("mlflow").setLevel(logging.ERROR)
    settings = load_settings(llm_base_url=llm_url, mlflow_tracking_uri=tracking_uri, experiment=experiment)
    setup_tracing(settings, export=export)
    agent = DocsAgent(settings, AgentConfig(), kb=StubKnowledgeBase(settings))  # type: ignore[arg-type]

    @invoke()
    async def answer(request: ResponsesAgentRequest) -> ResponsesAgentResponse:
        last = request.input[-1]
        question = getattr(last, "content", "")
        answer = await asyncio.to_thread(agent.ask, str(question))
        return ResponsesAgentResponse(
            output=[
                {
                    "type": "message",
                    "id": uuid.uuid4().hex,
                    "role": "assistant",
                    "content": [{"type": "output_text", "text": answer.answer, "annotations": []}],
                }
            ]
        )

    return AgentServer("ResponsesAgent").app


if __name__ == "__main__":
    kind, port = sys.argv[1], int(sys.argv[2])
    if kind == "stub":
        app = stub_app()
    elif kind == "bare":
        app = bare_app(sys.argv[3])
    elif kind == "mlflow":
        app = mlflow_app(sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6])
    elif kind == "agent-workers":
        os.environ.update(BENCH_LLM=sys.argv[3], BENCH_TRACKING=sys.argv[4], BENCH_EXPERIMENT=sys.argv[5])
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        uvicorn.run(
            "_serving_apps:agent_workers_app",
            factory=True,
            workers=int(sys.argv[6]),
            host="127.0.0.1",
            port=port,
            log_level="error",
            access_log=False,
        )
        sys.exit(0)
    else:
        experiment = sys.argv[5] if len(sys.argv) > 5 else "bench-serving"
        app = agent_app(sys.argv[3], sys.argv[4], real_kb=kind == "agent-real-kb", experiment=experiment)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="error", access_log=False)
