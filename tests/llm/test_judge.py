"""The judge client's retry policy against a real socket: a provider's 500s and 429s are retried
with backoff, a 400 (the request is wrong) is raised at once."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest


@pytest.fixture
def provider() -> Iterator[tuple[str, list[int], list[int]]]:
    script: list[int] = []  # status codes to answer with, in order; then 200
    seen: list[int] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            status = script.pop(0) if script else 200
            seen.append(status)
            body = (
                {
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": "7"},
                            "finish_reason": "stop",
                        }
                    ],
                    "id": "x",
                    "object": "chat.completion",
                    "created": 0,
                    "model": "m",
                }
                if status == 200
                else {"error": {"message": "nope", "type": "x"}}
            )
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1", script, seen
    finally:
        server.shutdown()
        server.server_close()


def test_transient_errors_are_retried_and_a_bad_request_is_not(
    provider: tuple[str, list[int], list[int]], tmp_path: Path
) -> None:
    import openai

    from flywheel.config import load_settings
    from flywheel.llm import make_judge

    url, script, seen = provider
    settings = load_settings(data_dir=tmp_path, mlflow_port=1, judge_base_url=url, judge_rps=1000)
    judge = make_judge(settings)
    assert judge is not None
    script[:] = [500, 429]
    assert judge("grade this") == "7"
    assert seen == [500, 429, 200]
    seen.clear()
    script[:] = [400]
    with pytest.raises(openai.BadRequestError):
        judge("grade this")
    assert seen == [400]  # not retried
