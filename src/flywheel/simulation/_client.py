"""What one simulated user does, shared by the async simulator and the Locust file: the request body,
reading a (streamed) Responses API answer, and the outcome of one request."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Outcome", "SimPrompt", "is_harmful_name", "read_answer", "read_stream", "request_body"]

# a prompt counts as harmful when its config says so ("harmful": true) or, for configs in the seed's
# {name, prompt} shape, when its name says so (e.g. "harmful-exfiltration", "jailbreak_dan")
_HARMFUL_NAME = re.compile(r"harm|jailbreak|attack|inject|exfiltrat|malicious|abuse", re.IGNORECASE)


def is_harmful_name(name: str) -> bool:
    return bool(_HARMFUL_NAME.search(name))


@dataclass(frozen=True)
class SimPrompt:
    """One scripted user: a single question, or several turns of one conversation (a persona)."""

    name: str
    turns: tuple[str, ...]
    harmful: bool = False


@dataclass
class Outcome:
    """What happened to one request."""

    name: str
    harmful: bool
    start: float
    latency_s: float
    status: int  # HTTP status, 0 for a transport error
    error: str = ""  # "" when it succeeded; else e.g. "429 rate_limited", "ConnectTimeout"
    ttft_s: float | None = None
    refused: bool = False
    abstained: bool = False
    text: str = ""
    trace_id: str = ""
    response_id: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == 200 and not self.error


def request_body(
    question: str, stream: bool, previous_response_id: str | None, tags: dict[str, str]
) -> dict[str, Any]:
    body: dict[str, Any] = {"input": question, "stream": stream, "metadata": dict(tags)}
    if previous_response_id:
        body["previous_response_id"] = previous_response_id
    return body


def read_answer(outcome: Outcome, body: dict[str, Any]) -> None:
    """Fill the outcome from a Responses API response object."""
    from flywheel.serving import read_response

    answer = read_response(body)
    outcome.response_id = answer.id
    outcome.text = answer.text
    outcome.refused = answer.refused
    outcome.abstained = answer.abstained
    outcome.trace_id = answer.trace_id
    if answer.failed is not None:
        outcome.error = "response.failed " + answer.failed


def read_stream(outcome: Outcome, lines: Iterable[str], now: Any) -> None:
    """Consume server-sent events: time to first token, then the final response (or the failure)."""
    for line in lines:
        if not line.startswith("data:"):
            continue
        payload = line[5:].strip()
        if not payload or payload == "[DONE]":
            continue
        event = json.loads(payload)
        kind = event.get("type", "")
        if kind == "response.output_text.delta" and outcome.ttft_s is None:
            outcome.ttft_s = now() - outcome.start
        elif kind in ("response.completed", "response.failed"):
            read_answer(outcome, event.get("response") or {})
            if kind == "response.failed" and not outcome.error:
                outcome.error = "response.failed"
