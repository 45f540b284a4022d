"""Test doubles: a deterministic embedder (for ingest logic, not retrieval quality) and a fake chat model."""

from __future__ import annotations

import hashlib
import math
import re
from typing import Any

from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage


class HashEmbedder:
    """Bag-of-words hashed into 64 dimensions; counts what it embeds."""

    name = "hash-64"
    dim = 64

    def __init__(self) -> None:
        self.embedded = 0

    def _vec(self, text: str) -> list[float]:
        v = [0.0] * self.dim
        for word in re.findall(r"\w+", text.lower()):
            v[int(hashlib.md5(word.encode()).hexdigest(), 16) % self.dim] += 1.0
        norm = math.sqrt(sum(x * x for x in v)) or 1.0
        return [x / norm for x in v]

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        self.embedded += len(texts)
        return [self._vec(t) for t in texts]

    def embed_query(self, text: str) -> list[float]:
        return self._vec(text)


class FakeChat(GenericFakeChatModel):
    """Replays scripted replies and records every prompt it was given; supports bind_tools."""

    prompts: list[Any] = []  # noqa: RUF012

    def invoke(self, messages: Any, *args: Any, **kwargs: Any) -> AIMessage:  # type: ignore[override]
        self.prompts.append(messages)
        return super().invoke(messages, *args, **kwargs)  # type: ignore[return-value]

    def bind_tools(self, tools: Any, **kwargs: Any) -> FakeChat:  # type: ignore[override]
        return self


def fake_chat(*replies: str | AIMessage) -> FakeChat:
    msgs = [r if isinstance(r, AIMessage) else AIMessage(r) for r in replies]
    chat = FakeChat(messages=iter(msgs))
    chat.prompts = []
    return chat
