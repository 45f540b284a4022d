"""A lean chat model for any OpenAI-compatible ``/chat/completions`` endpoint.

The embedded llama.cpp server, OpenAI, vLLM, Ollama, the flywheel gateway: they all speak the same
JSON. This LangChain chat model talks it over one keep-alive httpx client, with no SDK in between —
on the agent server's hot path the OpenAI SDK's request building and response parsing cost ~1.6 ms
of CPU per call, three times the HTTP round trip itself (bench/serving.py). It supports what the
agent uses: invoke, token streaming (so LangGraph's ``messages`` stream mode sees tokens), tool
calling (``bind_tools``), token usage, sync and async. Failures become flywheel errors that say
which endpoint failed and how to fix it.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from contextvars import ContextVar
from typing import Any

import httpx
from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import ConfigDict, PrivateAttr, SecretStr

from flywheel.errors import ServiceError, ServiceUnavailableError

__all__ = ["CANCEL", "GATEWAY", "Cancelled", "OpenAICompatibleChat", "to_openai_messages"]

RETRY_STATUSES = {408, 429, 500, 502, 503, 504}
TRANSIENT = (httpx.ConnectError, httpx.TimeoutException, httpx.RemoteProtocolError)
_DONE = object()  # the end of a server-sent event stream

# Why context variables here, when the agent's own per-call state travels as LangGraph's run context:
# a LangChain chat model gets nothing per call but keyword arguments, and those become the call's
# "invocation params" that callbacks and tracers serialize — no place for a threading.Event or a
# dict the model writes into. Context variables are what LangChain itself uses to carry a run's
# config into a model; they are copied into the worker thread with the rest of the request.
#
# Set by the agent server for the work of one request: once the event is set (the client went away,
# the request ran out of time) the LLM request in flight is closed, which makes llama.cpp (and any
# OpenAI-compatible server) stop generating for it. With a token set, non-streaming calls stream
# under the hood so there is a point, every token, to notice it.
CANCEL: ContextVar[threading.Event | None] = ContextVar("flywheel_llm_cancel", default=None)
# what the flywheel gateway said it did (route, A/B arm, endpoint that answered): the agent puts a
# dict here per run; the LLM fills it from the response headers; the agent tags its trace with it
GATEWAY: ContextVar[dict[str, str] | None] = ContextVar("flywheel_llm_gateway", default=None)
_GATEWAY_HEADERS = {
    "x-flywheel-route": "gateway.route",
    "x-flywheel-arm": "gateway.arm",
    "x-flywheel-endpoint": "gateway.endpoint",
}


def _note_gateway(headers: Any) -> None:
    """Record the gateway's routing headers (when the LLM is reached through the flywheel gateway)
    on the LLM span and for the trace's tags."""
    found = {tag: headers[h] for h, tag in _GATEWAY_HEADERS.items() if h in headers}
    if not found:
        return
    holder = GATEWAY.get()
    if holder is not None:
        holder.update(found)
    try:
        import mlflow

        sp = mlflow.get_current_active_span()
        if sp is not None:
            sp.set_attributes(found)
    except Exception:  # tracing off or not set up: the tags still reach the trace
        pass


class Cancelled(Exception):
    """The client that wanted this answer is gone; its LLM request was closed."""


def to_openai_messages(messages: Sequence[BaseMessage]) -> list[dict[str, Any]]:
    """LangChain messages → the OpenAI chat format."""
    out: list[dict[str, Any]] = []
    for m in messages:
        if isinstance(m, SystemMessage):
            out.append({"role": "system", "content": m.content})
        elif isinstance(m, HumanMessage):
            out.append({"role": "user", "content": m.content})
        elif isinstance(m, AIMessage):
            msg: dict[str, Any] = {"role": "assistant", "content": m.content or ""}
            if m.tool_calls:
                msg["tool_calls"] = [
                    {
                        "id": c["id"],
                        "type": "function",
                        "function": {"name": c["name"], "arguments": json.dumps(c["args"])},
                    }
                    for c in m.tool_calls
                ]
            out.append(msg)
        elif isinstance(m, ToolMessage):
            out.append({"role": "tool", "content": str(m.content), "tool_call_id": m.tool_call_id})
        else:
            out.append({"role": m.type, "content": m.content})
    return out


def _usage(raw: dict[str, Any] | None) -> dict[str, int] | None:
    if not raw:
        return None
    i, o = int(raw.get("prompt_tokens") or 0), int(raw.get("completion_tokens") or 0)
    return {"input_tokens": i, "output_tokens": o, "total_tokens": int(raw.get("total_tokens") or i + o)}


def _tool_calls(raw: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    calls = []
    for c in raw or []:
        fn = c.get("function") or {}
        try:
            args = json.loads(fn.get("arguments") or "{}")
        except ValueError:
            args = {"__raw__": fn.get("arguments")}
        calls.append({"name": fn.get("name", ""), "args": args, "id": c.get("id") or "", "type": "tool_call"})
    return calls


class OpenAICompatibleChat(BaseChatModel):
    """Chat completions over plain HTTP; see the module docstring."""

    model: str
    base_url: str
    api_key: SecretStr | None = None
    temperature: float | None = None
    max_tokens: int | None = None
    frequency_penalty: float | None = None
    timeout: float = 120.0
    max_retries: int = 1

    model_config = ConfigDict(arbitrary_types_allowed=True)
    _client: httpx.Client | None = PrivateAttr(default=None)
    _aclients: dict[int, httpx.AsyncClient] = PrivateAttr(default_factory=dict)

    @property
    def _llm_type(self) -> str:
        return "openai-compatible"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model": self.model, "base_url": self.base_url}

    # -- HTTP plumbing
    def _headers(self) -> dict[str, str]:
        key = self.api_key.get_secret_value() if self.api_key else ""
        return {"Authorization": f"Bearer {key}"} if key else {}

    @property
    def client(self) -> httpx.Client:
        if self._client is None:
            self._client = httpx.Client(
                base_url=self.base_url.rstrip("/"), headers=self._headers(), timeout=self.timeout
            )
        return self._client

    @property
    def aclient(self) -> httpx.AsyncClient:
        loop = id(asyncio.get_running_loop())  # an AsyncClient belongs to one event loop
        if loop not in self._aclients:
            self._aclients[loop] = httpx.AsyncClient(
                base_url=self.base_url.rstrip("/"),
                headers=self._headers(),
                timeout=self.timeout,
                limits=httpx.Limits(max_connections=64, max_keepalive_connections=64),
            )
        return self._aclients[loop]

    def _body(self, messages: list[BaseMessage], stop: list[str] | None, stream: bool, **kw: Any) -> dict:
        body: dict[str, Any] = {"model": self.model, "messages": to_openai_messages(messages)}
        for key in ("temperature", "max_tokens", "frequency_penalty"):
            if getattr(self, key) is not None:
                body[key] = getattr(self, key)
        if stop:
            body["stop"] = stop
        if kw.get("tools"):
            body["tools"] = kw["tools"]
            if kw.get("tool_choice"):
                body["tool_choice"] = kw["tool_choice"]
        if stream:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
        return body

    def _unreachable(self, exc: Exception) -> ServiceUnavailableError:
        return ServiceUnavailableError(
            "llm_unreachable", url=self.base_url, detail=f"{type(exc).__name__}: {exc}".rstrip(": ")
        )

    def _failed(self, resp: httpx.Response) -> ServiceError:
        try:
            text = resp.read().decode("utf-8", "replace")
        except httpx.HTTPError:
            text = ""
        return ServiceError(
            "llm_http_error",
            url=self.base_url,
            status=resp.status_code,
            model=self.model,
            detail=text[:300] or resp.reason_phrase,
        )

    def _outcome(self, attempt: int, resp: httpx.Response | None, exc: Exception | None) -> float | None:
        """After one attempt: seconds to wait before retrying, or None when ``resp`` is the answer.
        Raises the flywheel error when the attempt failed for good."""
        retry = attempt < self.max_retries
        if exc is not None:
            if retry:
                return 0.5 * (attempt + 1)
            raise self._unreachable(exc) from exc
        assert resp is not None
        if resp.status_code in RETRY_STATUSES and retry:
            return 0.5 * (attempt + 1)
        if resp.status_code >= 400:
            raise self._failed(resp)
        return None

    def _post(self, body: dict) -> dict[str, Any]:
        for attempt in range(self.max_retries + 1):
            resp, exc = None, None
            try:
                resp = self.client.post("/chat/completions", json=body)
            except TRANSIENT as e:
                exc = e
            wait = self._outcome(attempt, resp, exc)
            if wait is None:
                _note_gateway(resp.headers)  # type: ignore[union-attr]
                return resp.json()  # type: ignore[union-attr, no-any-return]
            time.sleep(wait)
        raise AssertionError("unreachable")

    async def _apost(self, body: dict) -> dict[str, Any]:
        for attempt in range(self.max_retries + 1):
            resp, exc = None, None
            try:
                resp = await self.aclient.post("/chat/completions", json=body)
            except TRANSIENT as e:
                exc = e
            wait = self._outcome(attempt, resp, exc)
            if wait is None:
                _note_gateway(resp.headers)  # type: ignore[union-attr]
                return resp.json()  # type: ignore[union-attr, no-any-return]
            await asyncio.sleep(wait)
        raise AssertionError("unreachable")

    # -- results
    def _result(self, data: dict[str, Any]) -> ChatResult:
        choice = (data.get("choices") or [{}])[0]
        msg = choice.get("message") or {}
        message = AIMessage(
            content=msg.get("content") or "",
            tool_calls=_tool_calls(msg.get("tool_calls")),
            usage_metadata=_usage(data.get("usage")),  # type: ignore[arg-type]
            response_metadata={
                "model_name": data.get("model", self.model),
                "finish_reason": choice.get("finish_reason"),
            },
        )
        return ChatResult(generations=[ChatGeneration(message=message)])

    @classmethod
    def _sse(cls, line: str) -> ChatGenerationChunk | object | None:
        """One server-sent event line → a chunk, ``_DONE`` at the end, None for nothing to yield."""
        if not line.startswith("data:"):
            return None
        payload = line[5:].strip()
        return _DONE if payload == "[DONE]" else cls._chunk(json.loads(payload))

    @staticmethod
    def _chunk(data: dict[str, Any]) -> ChatGenerationChunk | None:
        usage = _usage(data.get("usage"))
        choices = data.get("choices") or []
        delta = (choices[0].get("delta") or {}) if choices else {}
        text = delta.get("content") or ""
        calls = [
            {
                "name": (c.get("function") or {}).get("name"),
                "args": (c.get("function") or {}).get("arguments"),
                "id": c.get("id"),
                "index": c.get("index"),
                "type": "tool_call_chunk",
            }
            for c in delta.get("tool_calls") or []
        ]
        if not text and not calls and not usage:
            return None
        return ChatGenerationChunk(
            message=AIMessageChunk(
                content=text,
                tool_call_chunks=calls,  # type: ignore[arg-type]
                usage_metadata=usage,  # type: ignore[arg-type]
            )
        )

    # -- LangChain entry points
    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        if CANCEL.get() is not None:
            from langchain_core.language_models.chat_models import generate_from_stream

            return generate_from_stream(self._stream(messages, stop, None, **kwargs))
        return self._result(self._post(self._body(messages, stop, False, **kwargs)))

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return self._result(await self._apost(self._body(messages, stop, False, **kwargs)))

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        body = self._body(messages, stop, True, **kwargs)
        token = CANCEL.get()
        for attempt in range(self.max_retries + 1):
            started = False
            try:
                with self.client.stream("POST", "/chat/completions", json=body) as resp:
                    if resp.status_code >= 400:
                        if resp.status_code in RETRY_STATUSES and attempt < self.max_retries:
                            resp.read()
                            time.sleep(0.5 * (attempt + 1))
                            continue
                        raise self._failed(resp)
                    _note_gateway(resp.headers)
                    done = False
                    for line in resp.iter_lines():
                        if token is not None and token.is_set():
                            raise Cancelled  # leaving the block closes the connection mid-answer
                        if done:  # read to the end of the body: a fully read response returns its
                            continue  # connection to the pool (leaving at [DONE] closed it: a new
                        chunk = self._sse(line)  # TCP connection per answer)
                        if chunk is _DONE:
                            done = True
                            continue
                        if isinstance(chunk, ChatGenerationChunk):
                            if run_manager and chunk.text:
                                run_manager.on_llm_new_token(chunk.text, chunk=chunk)
                            started = True
                            yield chunk
                return
            except TRANSIENT as exc:
                if started or attempt >= self.max_retries:
                    raise self._unreachable(exc) from exc
                time.sleep(0.5 * (attempt + 1))

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        body = self._body(messages, stop, True, **kwargs)
        try:
            async with self.aclient.stream("POST", "/chat/completions", json=body) as resp:
                if resp.status_code >= 400:
                    await resp.aread()
                    raise self._failed(resp)
                _note_gateway(resp.headers)
                done = False
                async for line in resp.aiter_lines():
                    if done:  # read to the end: the connection goes back to the pool
                        continue
                    chunk = self._sse(line)
                    if chunk is _DONE:
                        done = True
                        continue
                    if isinstance(chunk, ChatGenerationChunk):
                        if run_manager and chunk.text:
                            await run_manager.on_llm_new_token(chunk.text, chunk=chunk)
                        yield chunk
        except TRANSIENT as exc:
            raise self._unreachable(exc) from exc

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> Any:  # type: ignore[override]
        return self.bind(tools=[convert_to_openai_tool(t) for t in tools], **kwargs)
