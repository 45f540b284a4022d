"""Local stand-ins for providers, each speaking its real wire format: an OpenAI-compatible server,
Anthropic's Messages API and Bedrock's Converse API (JSON and the binary AWS event stream)."""

from __future__ import annotations

import json
import struct
import zlib
from typing import Any


async def _body(receive: Any) -> bytes:
    raw, more = b"", True
    while more:
        msg = await receive()
        raw += msg.get("body", b"")
        more = msg.get("more_body", False)
    return raw


async def _lifespan(receive: Any, send: Any) -> None:
    while (await receive())["type"] != "lifespan.shutdown":
        await send({"type": "lifespan.startup.complete"})
    await send({"type": "lifespan.shutdown.complete"})


async def _send(send: Any, status: int, body: bytes, ctype: bytes = b"application/json") -> None:
    await send({"type": "http.response.start", "status": status, "headers": [(b"content-type", ctype)]})
    await send({"type": "http.response.body", "body": body})


class _Stub:
    """An ASGI app with a lifespan and /health; ``handle`` answers the provider's own paths."""

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
        elif scope["path"] == "/health":
            await _send(send, 200, b'{"status":"ok"}')
        else:
            await self.handle(scope, receive, send)

    async def handle(self, scope: Any, receive: Any, send: Any) -> None:
        raise NotImplementedError


class OpenAIStub(_Stub):
    """Answers instantly. ``mode``: ok | fail (HTTP 500) | slow429 (HTTP 429) | break (stream dies
    after the first chunk). Counts requests; keeps the last body."""

    def __init__(self, name: str, mode: str = "ok") -> None:
        self.name, self.mode, self.calls, self.last = name, mode, 0, {}

    async def handle(self, scope: Any, receive: Any, send: Any) -> None:
        raw = await _body(receive)
        self.calls += 1
        if self.mode == "fail":
            await _send(send, 500, b'{"error":{"message":"boom"}}')
            return
        if self.mode == "slow429":
            await _send(send, 429, b'{"error":{"message":"slow down"}}')
            return
        if scope["path"].endswith("/embeddings"):
            await _send(
                send,
                200,
                json.dumps({"object": "list", "data": [{"embedding": [0.1, 0.2], "index": 0}]}).encode(),
            )
            return
        body = json.loads(raw)
        self.last = body
        if body.get("stream"):
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [(b"content-type", b"text/event-stream")],
                }
            )
            for i, word in enumerate(["Hello", " from", f" {self.name}"]):
                chunk = {
                    "id": "c1",
                    "object": "chat.completion.chunk",
                    "model": body["model"],
                    "choices": [{"index": 0, "delta": {"content": word}, "finish_reason": None}],
                }
                await send(
                    {
                        "type": "http.response.body",
                        "body": f"data: {json.dumps(chunk)}\n\n".encode(),
                        "more_body": True,
                    }
                )
                if self.mode == "break" and i == 0:
                    raise RuntimeError("the stub dies mid-stream")  # uvicorn drops the connection
            await send({"type": "http.response.body", "body": b"data: [DONE]\n\n", "more_body": False})
            return
        answer = {
            "id": "c1",
            "object": "chat.completion",
            "created": 0,
            "model": body["model"],
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": f"hi from {self.name}"},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 3, "completion_tokens": 3, "total_tokens": 6},
        }
        await _send(send, 200, json.dumps(answer).encode())


class AnthropicStub(_Stub):
    """The Messages API: checks the key and version headers, keeps the last request."""

    def __init__(self, key: str) -> None:
        self.key, self.last, self.headers = key, {}, {}

    async def handle(self, scope: Any, receive: Any, send: Any) -> None:
        headers = {k.decode(): v.decode() for k, v in scope["headers"]}
        self.headers = headers
        body = json.loads(await _body(receive))
        self.last = body
        if headers.get("x-api-key") != self.key or not headers.get("anthropic-version"):
            await _send(
                send,
                401,
                b'{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key"}}',
            )
            return
        if scope["path"] != "/v1/messages" or "max_tokens" not in body:
            await _send(
                send,
                400,
                b'{"type":"error","error":{"type":"invalid_request_error","message":"max_tokens required"}}',
            )
            return
        if body.get("stream"):
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [(b"content-type", b"text/event-stream")],
                }
            )
            events = [
                (
                    "message_start",
                    {
                        "type": "message_start",
                        "message": {"id": "msg_1", "model": body["model"], "usage": {"input_tokens": 7}},
                    },
                ),
                (
                    "content_block_start",
                    {
                        "type": "content_block_start",
                        "index": 0,
                        "content_block": {"type": "text", "text": ""},
                    },
                ),
                (
                    "content_block_delta",
                    {
                        "type": "content_block_delta",
                        "index": 0,
                        "delta": {"type": "text_delta", "text": "Bonjour"},
                    },
                ),
                (
                    "content_block_delta",
                    {
                        "type": "content_block_delta",
                        "index": 0,
                        "delta": {"type": "text_delta", "text": " !"},
                    },
                ),
                ("content_block_stop", {"type": "content_block_stop", "index": 0}),
                (
                    "message_delta",
                    {
                        "type": "message_delta",
                        "delta": {"stop_reason": "end_turn"},
                        "usage": {"output_tokens": 2},
                    },
                ),
                ("message_stop", {"type": "message_stop"}),
            ]
            for name, data in events:
                frame = f"event: {name}\ndata: {json.dumps(data)}\n\n".encode()
                await send({"type": "http.response.body", "body": frame, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            return
        answer = {
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "model": body["model"],
            "content": [{"type": "text", "text": "Bonjour !"}],
            "stop_reason": "max_tokens",
            "usage": {"input_tokens": 7, "output_tokens": 2},
        }
        await _send(send, 200, json.dumps(answer).encode())


def event_frame(event_type: str, payload: dict[str, Any]) -> bytes:
    """One AWS event-stream message (what ConverseStream sends): prelude, headers, payload, CRCs."""
    headers = b""
    for name, value in (
        (":event-type", event_type),
        (":content-type", "application/json"),
        (":message-type", "event"),
    ):
        n, v = name.encode(), value.encode()
        headers += struct.pack("!B", len(n)) + n + struct.pack("!BH", 7, len(v)) + v
    body = json.dumps(payload).encode()
    total = 12 + len(headers) + len(body) + 4
    prelude = struct.pack("!II", total, len(headers))
    prelude += struct.pack("!I", zlib.crc32(prelude))
    message = prelude + headers + body
    return message + struct.pack("!I", zlib.crc32(message))


class BedrockStub(_Stub):
    """Converse (JSON) and ConverseStream (event stream) on /model/{id}/converse[-stream]."""

    def __init__(self) -> None:
        self.last: dict[str, Any] = {}
        self.path = ""

    async def handle(self, scope: Any, receive: Any, send: Any) -> None:
        self.path = scope["path"]
        self.last = json.loads(await _body(receive))
        if scope["path"].endswith("/converse-stream"):
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [(b"content-type", b"application/vnd.amazon.eventstream")],
                }
            )
            frames = [
                event_frame("messageStart", {"role": "assistant"}),
                event_frame("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "Hola"}}),
                event_frame("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": " amigo"}}),
                event_frame("messageStop", {"stopReason": "end_turn"}),
                event_frame(
                    "metadata",
                    {
                        "usage": {"inputTokens": 5, "outputTokens": 2, "totalTokens": 7},
                        "metrics": {"latencyMs": 1},
                    },
                ),
            ]
            for frame in frames:
                await send({"type": "http.response.body", "body": frame, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            return
        answer = {
            "output": {"message": {"role": "assistant", "content": [{"text": "Hola amigo"}]}},
            "stopReason": "end_turn",
            "usage": {"inputTokens": 5, "outputTokens": 2, "totalTokens": 7},
            "metrics": {"latencyMs": 1},
        }
        await _send(send, 200, json.dumps(answer).encode())
