"""Providers behind the gateway, each speaking OpenAI's chat format to the gateway:

- ``openai``: any OpenAI-compatible server (the local llama.cpp server, OpenAI, vLLM, Ollama) —
  the request is passed through with only ``model`` replaced, and the response (or the SSE stream)
  is passed back byte for byte;
- ``anthropic``: the Messages API, translated both ways, streaming too;
- ``bedrock``: the Converse / ConverseStream API through boto3 (run in threads: boto3 is blocking).

A provider raises ``Retryable`` for what another destination may serve (connect errors, timeouts,
429, 5xx) *before* anything was sent to the client; the gateway then tries the next destination.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp

from flywheel.gateway._config import EndpointConfig

__all__ = ["Provider", "Reply", "Retryable", "make_provider"]


class Retryable(Exception):
    """The destination failed in a way another one may not: try the next."""

    def __init__(self, status: int, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.retry_after = status, message, retry_after


@dataclass
class Reply:
    status: int
    content_type: str
    body: bytes | None = None  # a whole response
    stream: AsyncIterator[bytes] | None = None  # SSE bytes, OpenAI chunk format


class Provider:
    def __init__(self, ep: EndpointConfig, config: dict[str, Any]) -> None:
        self.ep, self.config = ep, config

    async def start(self, pools: dict[str, Any]) -> None:
        """``pools``: connection pools shared by the endpoints that call the same server."""

    async def close(self) -> None:
        pass

    async def chat(self, body: dict[str, Any], stream: bool) -> Reply:
        raise NotImplementedError

    async def embeddings(self, body: dict[str, Any]) -> Reply:
        return _error_reply(400, f"{self.ep.model.provider} endpoints do not serve embeddings")


def _error_reply(status: int, message: str, kind: str = "invalid_request_error") -> Reply:
    return Reply(
        status, "application/json", json.dumps({"error": {"message": message, "type": kind}}).encode()
    )


def _key(value: Any) -> str | None:
    return None if not value or str(value).lower() == "none" else str(value)


class OpenAICompatible(Provider):
    """Pass-through: the hot path is one pooled aiohttp request and a JSON re-encode of the body."""

    async def start(self, pools: dict[str, Any]) -> None:
        self.base = str(self.config.get("openai_api_base") or "https://api.openai.com/v1").rstrip("/")
        key = _key(self.config.get("openai_api_key"))
        self.headers = {"Content-Type": "application/json"}
        if key:
            self.headers["Authorization"] = f"Bearer {key}"
        if self.config.get("openai_organization"):
            self.headers["OpenAI-Organization"] = str(self.config["openai_organization"])
        self.timeout = aiohttp.ClientTimeout(total=None, sock_connect=5, sock_read=self.ep.timeout_s)
        # one pool per upstream server: two A/B arms on one server share its keep-alive connections
        # (two pools measured ~10 % slower at 16 clients); the pool is bounded by the largest
        # max_connections among the endpoints that share it
        origin = self.base.split("/", 3)[2]
        session = pools.get(origin)
        if session is None or session.connector.limit < self.ep.max_connections:
            if session is not None:
                await session.close()
            session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self.ep.max_connections, ttl_dns_cache=300),
                auto_decompress=False,
                skip_auto_headers=("User-Agent",),
            )
            pools[origin] = session
        self.pools, self.origin = pools, origin

    @property
    def session(self) -> aiohttp.ClientSession:
        return self.pools[self.origin]  # type: ignore[no-any-return]

    async def close(self) -> None:
        if not self.session.closed:
            await self.session.close()

    async def _post(self, path: str, body: dict[str, Any]) -> aiohttp.ClientResponse:
        body = {**body, **self.ep.params, "model": self.ep.model.name}
        try:
            resp = await self.session.post(
                self.base + path, data=json.dumps(body).encode(), headers=self.headers, timeout=self.timeout
            )
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise Retryable(502, f"{self.ep.name}: {type(exc).__name__}: {exc}") from exc
        if resp.status == 429 or resp.status >= 500:
            text = (await resp.read())[:300].decode(errors="replace")
            resp.release()
            ra = resp.headers.get("Retry-After")
            raise Retryable(
                resp.status,
                f"{self.ep.name}: HTTP {resp.status}: {text}",
                float(ra) if ra and ra.isdigit() else None,
            )
        return resp

    async def chat(self, body: dict[str, Any], stream: bool) -> Reply:
        resp = await self._post("/chat/completions", body)
        ctype = resp.headers.get("Content-Type", "application/json")
        if stream and resp.status == 200:
            return Reply(resp.status, ctype, stream=_relay(resp, self.ep.name))
        try:
            data = await resp.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise Retryable(502, f"{self.ep.name}: {type(exc).__name__}: {exc}") from exc
        finally:
            resp.release()
        return Reply(resp.status, ctype, data)

    async def embeddings(self, body: dict[str, Any]) -> Reply:
        resp = await self._post("/embeddings", body)
        try:
            return Reply(resp.status, resp.headers.get("Content-Type", "application/json"), await resp.read())
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise Retryable(502, f"{self.ep.name}: {type(exc).__name__}: {exc}") from exc
        finally:
            resp.release()


async def _relay(resp: aiohttp.ClientResponse, name: str) -> AsyncIterator[bytes]:
    try:
        async for chunk in resp.content.iter_any():
            yield chunk
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise StreamBroken(f"{name}: {type(exc).__name__}: {exc}") from exc
    finally:
        resp.release()


class StreamBroken(Exception):
    """The upstream failed after the first byte reached the client."""


def _chunk(cid: str, model: str, delta: dict[str, Any], finish: str | None = None, **extra: Any) -> bytes:
    data = {
        "id": cid,
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        **extra,
    }
    return b"data: " + json.dumps(data).encode() + b"\n\n"


def _completion(cid: str, model: str, text: str, finish: str, tin: int, tout: int) -> bytes:
    return json.dumps(
        {
            "id": cid,
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish}
            ],
            "usage": {"prompt_tokens": tin, "completion_tokens": tout, "total_tokens": tin + tout},
        }
    ).encode()


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # OpenAI content parts
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return "" if content is None else str(content)


def _split_system(messages: list[dict[str, Any]]) -> tuple[str, list[dict[str, str]]]:
    system = "\n\n".join(
        _text(m.get("content")) for m in messages if m.get("role") in ("system", "developer")
    )
    rest = []
    for m in messages:
        role = m.get("role")
        if role in ("system", "developer"):
            continue
        rest.append(
            {"role": "assistant" if role == "assistant" else "user", "content": _text(m.get("content"))}
        )
    return system, rest


_ANTHROPIC_STOP = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
}


class Anthropic(Provider):
    """OpenAI chat ⇄ Anthropic Messages (``anthropic_api_base`` lets tests and proxies redirect it)."""

    async def start(self, pools: dict[str, Any]) -> None:
        self.base = str(self.config.get("anthropic_api_base") or "https://api.anthropic.com").rstrip("/")
        self.headers = {
            "content-type": "application/json",
            "anthropic-version": str(self.config.get("anthropic_version") or "2023-06-01"),
        }
        key = _key(self.config.get("anthropic_api_key"))
        if key:
            self.headers["x-api-key"] = key
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=self.ep.max_connections),
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=5, sock_read=self.ep.timeout_s),
        )

    async def close(self) -> None:
        await self.session.close()

    def request(self, body: dict[str, Any], stream: bool) -> dict[str, Any]:
        body = {**body, **self.ep.params}
        system, messages = _split_system(body.get("messages") or [])
        req: dict[str, Any] = {
            "model": self.ep.model.name,
            "messages": messages,
            "max_tokens": int(body.get("max_tokens") or body.get("max_completion_tokens") or 1024),
        }
        if system:
            req["system"] = system
        for ours, theirs in (("temperature", "temperature"), ("top_p", "top_p")):
            if body.get(ours) is not None:
                req[theirs] = body[ours]
        stop = body.get("stop")
        if stop:
            req["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
        if stream:
            req["stream"] = True
        return req

    async def chat(self, body: dict[str, Any], stream: bool) -> Reply:
        try:
            resp = await self.session.post(
                self.base + "/v1/messages", json=self.request(body, stream), headers=self.headers
            )
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise Retryable(502, f"{self.ep.name}: {type(exc).__name__}: {exc}") from exc
        if resp.status in (429, 529) or resp.status >= 500:
            text = (await resp.read())[:300].decode(errors="replace")
            resp.release()
            raise Retryable(
                resp.status if resp.status != 529 else 503, f"{self.ep.name}: HTTP {resp.status}: {text}"
            )
        if resp.status != 200:
            data = await resp.json(content_type=None)
            resp.release()
            msg = (data.get("error") or {}).get("message") if isinstance(data, dict) else str(data)
            return _error_reply(resp.status, f"{self.ep.name}: {msg}")
        if stream:
            return Reply(200, "text/event-stream", stream=self._translate(resp))
        data = await resp.json()
        resp.release()
        text = "".join(b.get("text", "") for b in data.get("content", []) if b.get("type") == "text")
        usage = data.get("usage") or {}
        return Reply(
            200,
            "application/json",
            _completion(
                "chatcmpl-" + str(data.get("id", uuid.uuid4().hex)),
                str(data.get("model", self.ep.model.name)),
                text,
                _ANTHROPIC_STOP.get(data.get("stop_reason", ""), "stop"),
                int(usage.get("input_tokens", 0)),
                int(usage.get("output_tokens", 0)),
            ),
        )

    async def _translate(self, resp: aiohttp.ClientResponse) -> AsyncIterator[bytes]:
        cid, model = "chatcmpl-" + uuid.uuid4().hex, self.ep.model.name
        tin = tout = 0
        try:
            async for raw in resp.content:  # one SSE line at a time
                line = raw.decode().strip()
                if not line.startswith("data:"):
                    continue
                event = json.loads(line[5:])
                kind = event.get("type")
                if kind == "message_start":
                    msg = event.get("message", {})
                    cid, model = "chatcmpl-" + str(msg.get("id", cid)), str(msg.get("model", model))
                    tin = int((msg.get("usage") or {}).get("input_tokens", 0))
                    yield _chunk(cid, model, {"role": "assistant", "content": ""})
                elif kind == "content_block_delta" and (event.get("delta") or {}).get("type") == "text_delta":
                    yield _chunk(cid, model, {"content": event["delta"].get("text", "")})
                elif kind == "message_delta":
                    tout = int((event.get("usage") or {}).get("output_tokens", 0))
                    reason = _ANTHROPIC_STOP.get((event.get("delta") or {}).get("stop_reason") or "", "stop")
                    usage = {"prompt_tokens": tin, "completion_tokens": tout, "total_tokens": tin + tout}
                    yield _chunk(cid, model, {}, reason, usage=usage)
                elif kind == "error":
                    raise StreamBroken(
                        f"{self.ep.name}: {(event.get('error') or {}).get('message', 'error')}"
                    )
                elif kind == "message_stop":
                    break
            yield b"data: [DONE]\n\n"
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise StreamBroken(f"{self.ep.name}: {type(exc).__name__}: {exc}") from exc
        finally:
            resp.release()


_BEDROCK_STOP = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
}
_BEDROCK_RETRYABLE = {
    "ThrottlingException": 429,
    "ServiceUnavailableException": 503,
    "InternalServerException": 500,
    "ModelNotReadyException": 503,
    "ModelTimeoutException": 504,
}


class Bedrock(Provider):
    """OpenAI chat ⇄ Bedrock Converse. Credentials: ``aws_access_key_id``/``aws_secret_access_key``
    references in the config, else boto3's usual chain; ``aws_region``; ``aws_endpoint_url`` lets
    tests and VPC endpoints redirect it."""

    async def start(self, pools: dict[str, Any]) -> None:
        import boto3
        from botocore.config import Config

        cfg = self.config.get("aws_config") or self.config  # MLflow nests them under aws_config
        self.client = boto3.client(
            "bedrock-runtime",
            region_name=cfg.get("aws_region") or "us-east-1",
            endpoint_url=cfg.get("aws_endpoint_url"),
            aws_access_key_id=_key(cfg.get("aws_access_key_id")),
            aws_secret_access_key=_key(cfg.get("aws_secret_access_key")),
            aws_session_token=_key(cfg.get("aws_session_token")),
            config=Config(
                read_timeout=self.ep.timeout_s,
                connect_timeout=5,
                retries={"max_attempts": 1},
                max_pool_connections=self.ep.max_connections,
            ),
        )

    def request(self, body: dict[str, Any]) -> dict[str, Any]:
        body = {**body, **self.ep.params}
        system, messages = _split_system(body.get("messages") or [])
        req: dict[str, Any] = {
            "modelId": self.ep.model.name,
            "messages": [{"role": m["role"], "content": [{"text": m["content"]}]} for m in messages],
        }
        if system:
            req["system"] = [{"text": system}]
        inference: dict[str, Any] = {}
        for ours, theirs in (("max_tokens", "maxTokens"), ("temperature", "temperature"), ("top_p", "topP")):
            if body.get(ours) is not None:
                inference[theirs] = body[ours]
        if body.get("stop"):
            inference["stopSequences"] = (
                [body["stop"]] if isinstance(body["stop"], str) else list(body["stop"])
            )
        if inference:
            req["inferenceConfig"] = inference
        return req

    def _call(self, op: str, req: dict[str, Any]) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return getattr(self.client, op)(**req)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            msg = exc.response.get("Error", {}).get("Message", str(exc))
            if code in _BEDROCK_RETRYABLE:
                raise Retryable(_BEDROCK_RETRYABLE[code], f"{self.ep.name}: {code}: {msg}") from exc
            raise _ClientFault(
                exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 400), f"{code}: {msg}"
            ) from exc
        except BotoCoreError as exc:  # connect errors, read timeouts
            raise Retryable(502, f"{self.ep.name}: {type(exc).__name__}: {exc}") from exc

    async def chat(self, body: dict[str, Any], stream: bool) -> Reply:
        req = self.request(body)
        try:
            if not stream:
                out = await asyncio.to_thread(self._call, "converse", req)
                text = "".join(c.get("text", "") for c in out["output"]["message"]["content"])
                usage = out.get("usage") or {}
                return Reply(
                    200,
                    "application/json",
                    _completion(
                        "chatcmpl-" + uuid.uuid4().hex,
                        self.ep.model.name,
                        text,
                        _BEDROCK_STOP.get(out.get("stopReason", ""), "stop"),
                        int(usage.get("inputTokens", 0)),
                        int(usage.get("outputTokens", 0)),
                    ),
                )
            out = await asyncio.to_thread(self._call, "converse_stream", req)
        except _ClientFault as exc:
            return _error_reply(exc.status, f"{self.ep.name}: {exc.message}")
        return Reply(200, "text/event-stream", stream=self._translate(out["stream"]))

    async def _translate(self, events: Any) -> AsyncIterator[bytes]:
        """ConverseStream events → OpenAI chunks; the blocking iterator runs in a thread and hands
        events over through a small bounded queue (back-pressure, no unbounded buffering)."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=32)
        done = object()
        stop = threading.Event()

        def pump() -> None:
            try:
                for ev in events:
                    if stop.is_set():
                        return
                    asyncio.run_coroutine_threadsafe(queue.put(ev), loop).result()
            except Exception as exc:
                asyncio.run_coroutine_threadsafe(queue.put(exc), loop).result()
            asyncio.run_coroutine_threadsafe(queue.put(done), loop).result()

        task = loop.run_in_executor(None, pump)
        cid, model, tin = "chatcmpl-" + uuid.uuid4().hex, self.ep.model.name, 0
        finish = "stop"
        try:
            while True:
                ev = await queue.get()
                if ev is done:
                    break
                if isinstance(ev, Exception):
                    raise StreamBroken(f"{self.ep.name}: {type(ev).__name__}: {ev}")
                if "messageStart" in ev:
                    yield _chunk(cid, model, {"role": "assistant", "content": ""})
                elif "contentBlockDelta" in ev:
                    yield _chunk(cid, model, {"content": ev["contentBlockDelta"]["delta"].get("text", "")})
                elif "messageStop" in ev:
                    finish = _BEDROCK_STOP.get(ev["messageStop"].get("stopReason", ""), "stop")
                elif "metadata" in ev:
                    u = ev["metadata"].get("usage") or {}
                    tin, tout = int(u.get("inputTokens", 0)), int(u.get("outputTokens", 0))
                    usage = {"prompt_tokens": tin, "completion_tokens": tout, "total_tokens": tin + tout}
                    yield _chunk(cid, model, {}, finish, usage=usage)
                else:
                    for key in (
                        "internalServerException",
                        "modelStreamErrorException",
                        "throttlingException",
                    ):
                        if key in ev:
                            raise StreamBroken(f"{self.ep.name}: {key}: {ev[key].get('message', '')}")
            yield b"data: [DONE]\n\n"
        finally:  # also when the client went away mid-stream: stop the thread, never leave it blocked
            stop.set()
            with contextlib.suppress(Exception):
                events.close()
            while not task.done():
                with contextlib.suppress(asyncio.QueueEmpty):
                    queue.get_nowait()
                await asyncio.sleep(0.005)


class _ClientFault(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


def make_provider(ep: EndpointConfig, config: dict[str, Any]) -> Provider:
    kind = ep.model.provider
    if kind == "openai":
        return OpenAICompatible(ep, config)
    if kind == "anthropic":
        return Anthropic(ep, config)
    return Bedrock(ep, config)
