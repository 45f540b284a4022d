"""Processes for bench/scaleout.py.

- ``python -m bench._scaleout_apps remote PORT DELAY``: a remote-like service that answers after
  DELAY seconds — the agent's Responses API (``POST /responses``) and an OpenAI-compatible chat
  completion (``POST /v1/chat/completions``, the judge: it replies with a grade). It stands for a
  remote LLM or agent: the figures measure coordination, not this machine's two cores (the issue
  asks for exactly that stub).
- ``python -m bench._scaleout_apps tune-worker URL -- ARGS``: ``flywheel tune ARGS`` whose runtime
  backend deploys nothing and points every trial at the remote-like agent at URL (deploying a real
  agent server per trial is CPU-bound here: four at once on two cores would measure the cores).
  Everything else — the shared Optuna study, claims, heartbeats, the evaluation runner, its MLflow
  runs, the report and the registration — is the real path.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any

from bench._gateway_apps import _read

ANSWER = "Start the stack with `flywheel up` [1]; it runs MLflow, the LLM server and Milvus."


def remote(delay: float) -> Any:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        if scope["type"] != "http":
            return
        await _read(receive)
        if scope["path"] == "/health":
            body: dict[str, Any] = {"status": "OK"}
        elif scope["path"].endswith("/chat/completions"):
            await asyncio.sleep(delay)
            body = {
                "id": "c1",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": "remote",
                "choices": [
                    {"index": 0, "message": {"role": "assistant", "content": "8"}, "finish_reason": "stop"}
                ],
                "usage": {"prompt_tokens": 100, "completion_tokens": 1, "total_tokens": 101},
            }
        else:
            await asyncio.sleep(delay)
            body = {
                "id": "resp_1",
                "object": "response",
                "model": "remote",
                "output": [
                    {
                        "type": "message",
                        "role": "assistant",
                        "content": [{"type": "output_text", "text": ANSWER}],
                    }
                ],
                "custom_outputs": {
                    "sources": [{"n": 1, "source": "docs/getting-started.md", "title": "Getting started"}],
                    "tools_called": ["doc_search"],
                },
                "usage": {"input_tokens": 400, "output_tokens": 40},
            }
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": json.dumps(body).encode()})

    return app


def tune_worker(url: str, args: list[str]) -> None:
    import flywheel.runtime as runtime_pkg
    from flywheel.runtime import Runtime
    from flywheel.runtime._base import RuntimeBackend

    class RemoteRuntimes(RuntimeBackend):
        """Every trial's "runtime" is the remote-like agent: deploy and delete cost nothing."""

        backend = "remote-stub"

        def __init__(self, settings: Any) -> None:
            self.settings = settings

        def deploy(
            self,
            model_uri: Any = None,
            config: Any = None,
            purpose: str = "manual",
            name: Any = None,
            timeout: float = 300.0,
        ) -> Runtime:
            return Runtime(
                str(name),
                url,
                purpose,
                model_uri,
                dict(config or {}),
                {"backend": "remote-stub"},
                time.time(),
            )

        def all(self) -> list[Runtime]:
            return []

        def delete(self, name: str) -> bool:
            return True

        def gc(self, purposes: tuple[str, ...] = ("gate", "tune")) -> list[str]:
            return []

    runtime_pkg.runtimes_for = lambda settings, backend=None: RemoteRuntimes(settings)  # type: ignore[assignment]
    from flywheel.cli.main import run

    sys.argv = ["flywheel", "tune", *args]
    run()


if __name__ == "__main__":
    if sys.argv[1] == "remote":
        import uvicorn

        uvicorn.run(
            remote(float(sys.argv[3])),
            host="127.0.0.1",
            port=int(sys.argv[2]),
            log_level="warning",
            access_log=False,
        )
    elif sys.argv[1] == "tune-worker":
        tune_worker(sys.argv[2], sys.argv[4:] if sys.argv[3] == "--" else sys.argv[3:])
