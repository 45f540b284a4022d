"""Protocol hygiene and bounded work: every client-triggered case is a 4xx with a message, a slow
body times out, /feedback answers at once, /metrics tells the truth, abandoned LLM work is cancelled."""

from __future__ import annotations

import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import httpx
import pytest

from flywheel.agent import AgentConfig, DocsAgent, make_chat_model
from flywheel.config import load_settings
from flywheel.knowledge import IngestOptions, KnowledgeBase, ingest
from flywheel.serving import LoadedAgent, ServerLimits, build_app
from tests.conftest import free_port
from tests.fakes import HashEmbedder, fake_chat
from tests.serving.conftest import running

Q = "Which port does the gateway use?"


def _agent(tmp_path: Path, llm: object | None = None, policy: str = "retrieve_first", **kw) -> DocsAgent:  # type: ignore[no-untyped-def]
    folder = tmp_path / "docs"
    folder.mkdir(exist_ok=True)
    (folder / "gateway.md").write_text("# Gateway\n\nThe gateway listens on port 5010 and splits traffic.")
    settings = load_settings(data_dir=tmp_path / "data", collection="hyg_test", mlflow_port=1, **kw)
    kb = KnowledgeBase(settings, embedder=HashEmbedder())
    ingest(settings, IngestOptions([str(folder)]), kb=kb)
    config = AgentConfig(policy=policy, min_relevance=0.05)  # type: ignore[arg-type]
    return DocsAgent(
        settings, config, kb=kb, llm=llm or fake_chat(*["The gateway listens on port 5010 [1]."] * 20)
    )


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"input": Q, "custom_inputs": {"thread_id": [1]}}, 400, "invalid_request"),
        ({"input": Q, "custom_inputs": {"user_id": {"a": 1}}}, 400, "invalid_request"),
        ({"input": "x" * 60_000}, 400, "invalid_request"),
    ],
)
def test_client_input_is_a_4xx_with_a_message(tmp_path: Path, body: dict, status: int, code: str) -> None:
    agent = _agent(tmp_path)
    with running(build_app(agent.settings, LoadedAgent(agent))) as url:
        resp = httpx.post(url + "/responses", json=body)
        assert resp.status_code == status, resp.text
        assert resp.json()["error"]["code"] == code and resp.json()["error"]["message"]


def test_headers_request_ids_and_413(tmp_path: Path) -> None:
    agent = _agent(tmp_path)
    app = build_app(agent.settings, LoadedAgent(agent), ServerLimits(max_body_bytes=2048))
    with running(app) as url:
        big = httpx.post(url + "/responses", json={"input": Q}, headers={"X-Big": "a" * 100_000})
        assert big.status_code == 431 and "headers" in big.json()["error"]["message"]
        long_id = httpx.post(url + "/responses", json={"input": Q}, headers={"X-Request-ID": "r" * 60_000})
        assert long_id.status_code == 431  # a 60 KB id is over the header limit: never echoed
        bad_id = httpx.post(url + "/responses", json={"input": Q}, headers={"X-Request-ID": "a b\tc<script>"})
        assert bad_id.status_code == 200 and bad_id.headers["x-request-id"] != "a b\tc<script>"
        good = httpx.post(url + "/responses", json={"input": Q}, headers={"X-Request-ID": "req-42.a"})
        assert good.headers["x-request-id"] == "req-42.a"
        too_big = httpx.post(url + "/responses", json={"input": "y" * 3000})
        assert too_big.status_code == 413 and "retry-after" not in too_big.headers
        assert too_big.json()["error"]["code"] == "request_too_large"


def test_a_body_shorter_than_its_length_times_out(tmp_path: Path) -> None:
    agent = _agent(tmp_path, serve_body_timeout=1.0)
    with running(build_app(agent.settings, LoadedAgent(agent))) as url:
        host, port = url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            sock.sendall(
                b"POST /responses HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Content-Length: 500\r\n\r\n" + b'{"input": "short'
            )
            started = time.monotonic()
            reply = sock.recv(4096).decode()
            waited = time.monotonic() - started
        assert reply.startswith("HTTP/1.1 408"), reply
        assert "body_timeout" in reply and waited < 8


def test_metrics_count_requests_and_show_the_queue(tmp_path: Path) -> None:
    agent = _agent(tmp_path)
    with running(build_app(agent.settings, LoadedAgent(agent))) as url:
        httpx.post(url + "/responses", json={"input": Q})
        httpx.post(url + "/responses", content=b"{not json")
        text = httpx.get(url + "/metrics").text
    assert 'flywheel_requests_total{path="/responses",status="200"} 1.0' in text
    assert 'flywheel_requests_total{path="/responses",status="400"} 1.0' in text
    assert "flywheel_queue_depth 0.0" in text and "flywheel_slots_total 4.0" in text
    assert 'flywheel_dependency_up{dependency="index"} 1.0' in text


def test_feedback_answers_at_once(tmp_path: Path) -> None:
    """Tracking server down (nothing on port 1): an unknown trace id is a 503 at once, not a 60 s wait."""
    agent = _agent(tmp_path)
    with running(build_app(agent.settings, LoadedAgent(agent))) as url:
        started = time.monotonic()
        resp = httpx.post(url + "/feedback", json={"trace_id": "tr-unknown", "value": True}, timeout=30)
        assert time.monotonic() - started < 5  # it used to block 10-60 s
        assert resp.status_code == 503 and resp.json()["error"]["code"] == "tracking_unavailable"
        assert resp.headers["retry-after"]


class _SlowLLM(BaseHTTPRequestHandler):
    """Streams one token every 0.2 s for 30 s; records when the client closed the connection."""

    protocol_version = "HTTP/1.1"
    closed: ClassVar[list[float]] = []
    started: ClassVar[list[float]] = []

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length", 0)))
        self.started.append(time.monotonic())
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()
        try:
            for _ in range(150):
                data = b'data: {"choices": [{"delta": {"content": "tok "}}]}\n\n'
                self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                self.wfile.flush()
                time.sleep(0.2)
        except OSError:
            self.closed.append(time.monotonic())

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("content-length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: object) -> None:
        pass


@pytest.mark.parametrize("mode", ["stream", "timeout"])
def test_abandoned_work_cancels_the_llm_request(tmp_path: Path, mode: str) -> None:
    port = free_port()
    _SlowLLM.closed, _SlowLLM.started = [], []
    server = ThreadingHTTPServer(("127.0.0.1", port), _SlowLLM)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        settings = load_settings(data_dir=tmp_path / "data", llm_port=port)
        agent = _agent(tmp_path, llm=make_chat_model(settings, AgentConfig()), llm_port=port)
        limits = ServerLimits(request_timeout=1.5 if mode == "timeout" else 60)
        with running(build_app(agent.settings, LoadedAgent(agent), limits)) as url:
            if mode == "stream":
                with httpx.stream("POST", url + "/responses", json={"input": Q, "stream": True}) as resp:
                    for line in resp.iter_lines():
                        if "output_text.delta" in line:
                            break  # the client goes away after the first token
            else:
                resp = httpx.post(url + "/responses", json={"input": Q}, timeout=30)
                assert resp.status_code == 504
            deadline = time.monotonic() + 10
            while not _SlowLLM.closed and time.monotonic() < deadline:
                time.sleep(0.1)
        assert _SlowLLM.started, "the LLM was never called"
        assert _SlowLLM.closed, "the LLM request kept running after the client was gone"
        assert _SlowLLM.closed[0] - _SlowLLM.started[0] < 10  # well before its 30 s of tokens
    finally:
        server.shutdown()
