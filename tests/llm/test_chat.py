"""The lean OpenAI-compatible chat model against a scripted server on a real socket: invoke, token
streaming, tool calls, usage, retry on 5xx, and clear errors for a refused key or a dead endpoint."""

from __future__ import annotations

import asyncio
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.tools import tool

from flywheel.errors import ServiceError, ServiceUnavailableError
from flywheel.llm import OpenAICompatibleChat, to_openai_messages
from tests.conftest import free_port
from tests.llm.conftest import Script, completion


def _model(url: str, **kw: Any) -> OpenAICompatibleChat:
    return OpenAICompatibleChat(model="m", base_url=url, max_tokens=64, temperature=0.1, **kw)


def test_invoke_sends_the_openai_body_and_reads_text_and_usage(llm_server: tuple[str, Script]) -> None:
    url, script = llm_server
    script.replies.append((200, completion("Port 5010 [1].")))
    reply = _model(url, api_key="sk-test").invoke([SystemMessage("be brief"), HumanMessage("port?")])
    assert reply.content == "Port 5010 [1]."
    assert reply.usage_metadata == {"input_tokens": 12, "output_tokens": 3, "total_tokens": 15}
    body = script.requests[0]
    assert body["model"] == "m" and body["max_tokens"] == 64 and body["temperature"] == 0.1
    assert body["messages"] == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "port?"},
    ]
    assert script.headers[0]["Authorization"] == "Bearer sk-test"


def test_stream_yields_tokens_and_usage(llm_server: tuple[str, Script]) -> None:
    url, script = llm_server
    chunks = [{"choices": [{"delta": {"content": t}}]} for t in ("Port ", "5010", ".")]
    chunks.append({"choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 3}})
    script.replies.append((200, chunks))
    parts = list(_model(url).stream([HumanMessage("port?")]))
    assert "".join(str(p.content) for p in parts) == "Port 5010."
    assert script.requests[0]["stream"] is True
    assert sum((p.usage_metadata or {}).get("output_tokens", 0) for p in parts) == 3


def test_async_invoke_and_stream(llm_server: tuple[str, Script]) -> None:
    url, script = llm_server
    script.replies.append((200, completion("async ok")))
    script.replies.append(
        (200, [{"choices": [{"delta": {"content": "a"}}]}, {"choices": [{"delta": {"content": "b"}}]}])
    )
    model = _model(url)

    async def go() -> tuple[str, str]:
        one = await model.ainvoke([HumanMessage("x")])
        two = "".join([str(c.content) async for c in model.astream([HumanMessage("y")])])
        return str(one.content), two

    assert asyncio.run(go()) == ("async ok", "ab")


def test_tool_calls_round_trip(llm_server: tuple[str, Script]) -> None:
    url, script = llm_server

    @tool
    def doc_search(query: str) -> str:
        """Search the docs."""
        return query

    call = {
        "id": "call_1",
        "type": "function",
        "function": {"name": "doc_search", "arguments": '{"query": "ports"}'},
    }
    script.replies.append((200, completion(tool_calls=[call])))
    reply = _model(url).bind_tools([doc_search]).invoke([HumanMessage("ports?")])
    assert reply.tool_calls == [
        {"name": "doc_search", "args": {"query": "ports"}, "id": "call_1", "type": "tool_call"}
    ]
    assert script.requests[0]["tools"][0]["function"]["name"] == "doc_search"
    # the tool round is sent back in the OpenAI format
    history = [HumanMessage("ports?"), reply, ToolMessage("5010", tool_call_id="call_1")]
    sent = to_openai_messages(history)
    assert sent[1]["tool_calls"][0]["function"] == {"name": "doc_search", "arguments": '{"query": "ports"}'}
    assert sent[2] == {"role": "tool", "content": "5010", "tool_call_id": "call_1"}


def test_a_5xx_is_retried_once(llm_server: tuple[str, Script]) -> None:
    url, script = llm_server
    script.replies += [(503, {"error": "loading model"}), (200, completion("after retry"))]
    assert _model(url).invoke([HumanMessage("x")]).content == "after retry"
    assert len(script.requests) == 2


def test_a_refused_request_says_which_endpoint_and_what_to_check(llm_server: tuple[str, Script]) -> None:
    url, script = llm_server
    script.replies.append((401, {"error": {"message": "invalid api key"}}))
    with pytest.raises(ServiceError) as err:
        _model(url).invoke([HumanMessage("x")])
    text = err.value.render("en")
    assert "HTTP 401" in text and url in text and "invalid api key" in text and "OPENAI_API_KEY" in text


def test_a_dead_endpoint_is_a_service_unavailable_error() -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"
    with pytest.raises(ServiceUnavailableError) as err:
        _model(url, max_retries=0).invoke([HumanMessage("x")])
    assert "LLM_BASE_URL" in err.value.render("en") and "flywheel up" in err.value.render("en")


def test_ai_message_without_tool_calls_is_plain() -> None:
    assert to_openai_messages([AIMessage("hi")]) == [{"role": "assistant", "content": "hi"}]


def test_a_streamed_answer_read_to_its_end_leaves_the_connection_for_the_next() -> None:
    """Leaving at ``[DONE]`` before the chunked body's end closed the connection: one new TCP
    connection per answer (measured in bench/serving.py: ~40 % of the agent server's req/s)."""
    connections: list[int] = []

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, chunked bodies

        def log_message(self, *_: Any) -> None: ...

        def setup(self) -> None:
            super().setup()
            connections.append(1)  # one handler per connection

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for data in (json.dumps({"choices": [{"delta": {"content": "ok"}}]}), "[DONE]"):
                chunk = f"data: {data}\n\n".encode()
                self.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
            self.wfile.write(b"0\r\n\r\n")

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        model = _model(f"http://127.0.0.1:{server.server_address[1]}/v1")
        for _ in range(3):
            assert "".join(str(c.content) for c in model.stream([HumanMessage("x")])) == "ok"

        async def go() -> list[str]:
            return [
                "".join([str(c.content) async for c in model.astream([HumanMessage("y")])]) for _ in range(2)
            ]

        assert asyncio.run(go()) == ["ok", "ok"]
        assert len(connections) == 2  # one for the sync client, one for the event loop's client
    finally:
        server.shutdown()
