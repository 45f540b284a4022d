"""Every LLM call of every stage: the HTTP chat model the agent answers with, and the judge client
the scorers grade with. Below agent and evaluation, above config; it imports neither."""

from flywheel.llm._chat import CANCEL, GATEWAY, Cancelled, OpenAICompatibleChat, to_openai_messages
from flywheel.llm._judge import judge_identity, make_judge

__all__ = [
    "CANCEL",
    "GATEWAY",
    "Cancelled",
    "OpenAICompatibleChat",
    "judge_identity",
    "make_judge",
    "to_openai_messages",
]
