"""The LangGraph QA agent: config, policies, tools (doc_search, web_search, open_url), guardrails."""

from flywheel.agent._agent import AgentAnswer, DocsAgent, make_chat_model
from flywheel.agent._config import EMBEDDED_POLICY, AgentConfig, Policy, default_config
from flywheel.agent._grounded import markdown_problems
from flywheel.agent._guardrails import RULES, GuardRule, Verdict, register_rule, screen
from flywheel.agent._prompts import ABSTAIN, DEFAULT_SYSTEM_PROMPTS, REFUSAL, LoadedPrompt, detect_language
from flywheel.agent._threads import make_store
from flywheel.agent._tools import TOOL_BUILDERS, ToolContext, build_tools, register_tool
from flywheel.agent._untrusted import check_question

# tracing lives in flywheel.tracking; these names stay importable from here because agent versions
# logged before the move import them in their models-from-code file (registry/agent_model.py)
from flywheel.tracking import flush_traces, setup_tracing, tracing_enabled

__all__ = [
    "ABSTAIN",
    "DEFAULT_SYSTEM_PROMPTS",
    "EMBEDDED_POLICY",
    "REFUSAL",
    "RULES",
    "TOOL_BUILDERS",
    "AgentAnswer",
    "AgentConfig",
    "DocsAgent",
    "GuardRule",
    "LoadedPrompt",
    "Policy",
    "ToolContext",
    "Verdict",
    "build_tools",
    "check_question",
    "default_config",
    "detect_language",
    "flush_traces",
    "make_chat_model",
    "make_store",
    "markdown_problems",
    "register_rule",
    "register_tool",
    "screen",
    "setup_tracing",
    "tracing_enabled",
]
