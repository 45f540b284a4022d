"""The OpenAI Responses API as flywheel speaks it: request schema, response objects, stream events.

The stream follows OpenAI's event sequence (response.created → … → response.completed) so that the
unmodified OpenAI SDK's ``client.responses.stream`` works; MLflow's stock Agent Server never sends
``response.created`` and the SDK cannot consume its stream.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = [
    "RequestContext",
    "ResponseAnswer",
    "ResponsesRequest",
    "StreamWriter",
    "question_of",
    "read_response",
    "request_context",
    "response_object",
]


class ContentPart(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: str = "input_text"
    text: str = ""


class InputMessage(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: Literal["user", "assistant", "system", "developer"]
    content: str | list[ContentPart]
    type: str | None = "message"


class ResponsesRequest(BaseModel):
    """The subset of a Responses API request the agent uses (other fields are accepted and ignored)."""

    model_config = ConfigDict(extra="allow")
    input: str | list[InputMessage] = Field(..., description="a question, or a list of messages")
    stream: bool = False
    model: str | None = None
    user: str | None = None
    metadata: dict[str, str] | None = None
    previous_response_id: str | None = None
    conversation: str | dict[str, Any] | None = None
    custom_inputs: dict[str, Any] | None = None

    @field_validator("input")
    @classmethod
    def _not_empty(cls, value: Any) -> Any:
        if isinstance(value, str) and not value.strip():
            raise ValueError("input must not be empty")
        if isinstance(value, list) and not value:
            raise ValueError("input must contain at least one message")
        return value


def question_of(req: ResponsesRequest) -> str:
    if isinstance(req.input, str):
        return req.input
    for msg in reversed(req.input):
        if msg.role == "user":
            text = msg.content if isinstance(msg.content, str) else " ".join(p.text for p in msg.content)
            if text.strip():
                return text
    raise ValueError("input has no user message with text")


_RESERVED = ("thread_id", "user_id", "session_id")
_ROLES = ("user", "assistant", "system", "developer")


@dataclass(frozen=True)
class RequestContext:
    """One Responses request, parsed once: what the agent needs to answer it. Both servers (the
    agent server and the MLflow model's ``predict``) build it with :func:`request_context`, so one
    request gets the same thread, user and tags under either."""

    question: str
    thread_id: str | None = None  # None: a new conversation (or the one previous_response_id names)
    user_id: str | None = None
    session_id: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    stream: bool = False
    previous_response_id: str | None = None

    def agent_kwargs(self, thread_id: str, **tags: str) -> dict[str, Any]:
        """Keyword arguments of ``DocsAgent.ask``/``stream`` for this request."""
        return {
            "thread_id": thread_id,
            "user_id": self.user_id,
            "session_id": self.session_id,
            "tags": {**tags, **self.tags},
        }


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def request_context(req: ResponsesRequest | dict[str, Any]) -> RequestContext:
    """Parse a Responses request (flywheel's schema, or MLflow's ``ResponsesAgentRequest`` as a dict)
    into a :class:`RequestContext`. Precedence, first found wins — thread: ``metadata.thread_id``,
    ``custom_inputs.thread_id``, ``conversation`` (an id or ``{"id": …}``), MLflow's
    ``context.conversation_id``; user: ``user``, ``metadata.user_id``, ``custom_inputs.user_id``,
    ``context.user_id``. Other metadata becomes ``client.*`` trace tags, ``custom_inputs.tags`` tags."""
    data = req.model_dump() if isinstance(req, BaseModel) else dict(req)
    if isinstance(req, ResponsesRequest):
        parsed = req
    else:  # items other than messages (tool calls and their outputs) carry no question
        items = data.get("input")
        if isinstance(items, list):
            items = [i for i in items if isinstance(i, dict) and i.get("role") in _ROLES]
        parsed = ResponsesRequest.model_validate({**data, "input": items})
    meta = {str(k): v for k, v in (data.get("metadata") or {}).items()}
    custom = data.get("custom_inputs") or {}
    context = data.get("context") or {}
    conversation = data.get("conversation")
    if isinstance(conversation, dict):
        conversation = conversation.get("id")
    tags = {f"client.{k}"[:64]: str(v)[:200] for k, v in list(meta.items())[:8] if k not in _RESERVED}
    tags.update({str(k)[:64]: str(v)[:200] for k, v in (custom.get("tags") or {}).items()})
    return RequestContext(
        question=question_of(parsed),
        thread_id=_text(meta.get("thread_id"))
        or _text(custom.get("thread_id"))
        or _text(conversation)
        or _text(context.get("conversation_id")),
        user_id=_text(data.get("user"))
        or _text(meta.get("user_id"))
        or _text(custom.get("user_id"))
        or _text(context.get("user_id")),
        session_id=_text(meta.get("session_id")) or _text(custom.get("session_id")),
        tags=tags,
        stream=bool(data.get("stream")),
        previous_response_id=_text(data.get("previous_response_id")),
    )


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:24]}"


def message_item(item_id: str, text: str, status: str = "completed") -> dict[str, Any]:
    content = (
        [{"type": "output_text", "text": text, "annotations": []}] if status == "completed" or text else []
    )
    return {"type": "message", "id": item_id, "status": status, "role": "assistant", "content": content}


def response_object(
    resp_id: str,
    model: str,
    created: int,
    *,
    status: str = "completed",
    output: list[dict] | None = None,
    usage: dict[str, int] | None = None,
    metadata: dict[str, Any] | None = None,
    custom_outputs: dict[str, Any] | None = None,
) -> dict:
    usage = usage or {}
    inp, out = int(usage.get("input_tokens", 0)), int(usage.get("output_tokens", 0))
    return {
        "id": resp_id,
        "object": "response",
        "created_at": created,
        "status": status,
        "model": model,
        "output": output or [],
        "parallel_tool_calls": False,
        "tool_choice": "auto",
        "tools": [],
        "error": None,
        "incomplete_details": None,
        "instructions": None,
        "temperature": None,
        "top_p": None,
        "usage": {
            "input_tokens": inp,
            "output_tokens": out,
            "total_tokens": inp + out,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens_details": {"reasoning_tokens": 0},
        },
        "metadata": metadata or {},
        "custom_outputs": custom_outputs or {},
    }


class StreamWriter:
    """Formats the Responses API event sequence as server-sent events."""

    def __init__(self, model: str) -> None:
        self.model = model
        self.resp_id = new_id("resp")
        self.item_id = new_id("msg")
        self.created = int(time.time())
        self.seq = 0
        self.text: list[str] = []

    def _event(self, etype: str, **payload: Any) -> str:
        import json

        body = {"type": etype, "sequence_number": self.seq, **payload}
        self.seq += 1
        return f"event: {etype}\ndata: {json.dumps(body, ensure_ascii=False)}\n\n"

    def start(self) -> list[str]:
        pending = response_object(self.resp_id, self.model, self.created, status="in_progress")
        return [
            self._event("response.created", response=pending),
            self._event("response.in_progress", response=pending),
            self._event(
                "response.output_item.added",
                output_index=0,
                item=message_item(self.item_id, "", status="in_progress"),
            ),
            self._event(
                "response.content_part.added",
                item_id=self.item_id,
                output_index=0,
                content_index=0,
                part={"type": "output_text", "text": "", "annotations": []},
            ),
        ]

    def delta(self, text: str) -> str:
        self.text.append(text)
        return self._event(
            "response.output_text.delta",
            item_id=self.item_id,
            output_index=0,
            content_index=0,
            delta=text,
            logprobs=[],
        )

    def finish(
        self, usage: dict[str, int], metadata: dict[str, Any], custom_outputs: dict[str, Any]
    ) -> list[str]:
        text = "".join(self.text)
        part = {"type": "output_text", "text": text, "annotations": []}
        item = message_item(self.item_id, text)
        done = response_object(
            self.resp_id,
            self.model,
            self.created,
            output=[item],
            usage=usage,
            metadata=metadata,
            custom_outputs=custom_outputs,
        )
        return [
            self._event(
                "response.output_text.done",
                item_id=self.item_id,
                output_index=0,
                content_index=0,
                text=text,
                logprobs=[],
            ),
            self._event(
                "response.content_part.done", item_id=self.item_id, output_index=0, content_index=0, part=part
            ),
            self._event("response.output_item.done", output_index=0, item=item),
            self._event("response.completed", response=done),
        ]

    def fail(self, message: str, code: str = "server_error") -> str:
        failed = response_object(self.resp_id, self.model, self.created, status="failed")
        failed["error"] = {"code": code, "message": message}
        return self._event("response.failed", response=failed)


@dataclass
class ResponseAnswer:
    """A Responses API answer as its clients read it (the evaluation target, the simulator): the
    text of its message items, flywheel's ``custom_outputs`` and ``metadata``, and the failure."""

    id: str
    text: str
    model: str
    custom: dict[str, Any]
    metadata: dict[str, Any]
    usage: dict[str, Any]
    failed: str | None  # the error code of a ``failed`` response ("" when it gives none)

    @property
    def refused(self) -> bool:
        return bool(self.custom.get("refused"))

    @property
    def abstained(self) -> bool:
        return bool(self.custom.get("abstained"))

    @property
    def trace_id(self) -> str:
        return str(self.metadata.get("trace_id") or self.custom.get("trace_id") or "")


def read_response(body: dict[str, Any]) -> ResponseAnswer:
    """Read a response object (``POST /responses``, the ``response`` of ``response.completed``, or
    AgentCore's ``/invocations``): one reader, so every client agrees on what an answer said."""
    text = "".join(
        str(part.get("text", ""))
        for item in body.get("output") or []
        if isinstance(item, dict) and item.get("type", "message") == "message"
        for part in item.get("content") or []
        if isinstance(part, dict)
    )
    failed = None
    if body.get("status") == "failed":
        failed = str((body.get("error") or {}).get("code") or "")
    return ResponseAnswer(
        id=str(body.get("id", "")),
        text=text,
        model=str(body.get("model", "")),
        custom=dict(body.get("custom_outputs") or {}),
        metadata=dict(body.get("metadata") or {}),
        usage=dict(body.get("usage") or {}),
        failed=failed,
    )
