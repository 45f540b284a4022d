"""Processes for bench/serving.py: a stub OpenAI-compatible LLM, the bare endpoint, the agent server.

python bench/_serving_apps.py stub  PORT
python bench/_serving_apps.py bare  PORT LLM_URL
python bench/_serving_apps.py agent PORT LLM_URL TRACKING_URI
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import uvicorn
from fastapi import FastAPI, Request

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
    async def chat(request: Request) -> dict:
        await request.body()
        return {**REPLY, "created": int(time.time())}

    return app


def bare_app(llm_url: str) -> FastAPI:
    import httpx

    app = FastAPI()
    client = httpx.AsyncClient(base_url=llm_url, timeout=30)

    @app.post("/bare")
    async def bare(request: Request) -> dict:
        body = await request.json()
        resp = await client.post(
            "/chat/completions",
            json={
                "model": "stub",
                "messages": [{"role": "user", "content": body["input"]}],
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


def agent_app(llm_url: str, tracking_uri: str, real_kb: bool) -> FastAPI:
    import logging

    from flywheel.agent import AgentConfig, DocsAgent
    from flywheel.config import load_settings
    from flywheel.serving import LoadedAgent, ServerLimits, build_app
    from flywheel.tracking import setup_tracing

    logging.getLogger("mlflow").setLevel(logging.ERROR)
    settings = load_settings(
        llm_base_url=llm_url, mlflow_tracking_uri=tracking_uri, experiment="bench-serving"
    )
    if settings.serve_trace:
        setup_tracing(settings, export=settings.serve_trace_export)
    kb = None if real_kb else StubKnowledgeBase(settings)
    agent = DocsAgent(settings, AgentConfig(), kb=kb)  # type: ignore[arg-type]
    return build_app(
        settings,
        LoadedAgent(agent, {"model_uri": "bench"}, "bench"),
        ServerLimits(max_concurrency=16, max_queue=256),
    )


if __name__ == "__main__":
    kind, port = sys.argv[1], int(sys.argv[2])
    if kind == "stub":
        app = stub_app()
    elif kind == "bare":
        app = bare_app(sys.argv[3])
    else:
        app = agent_app(sys.argv[3], sys.argv[4], real_kb=kind == "agent-real-kb")
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="error", access_log=False)
