"""Registry: the agent as an MLflow model (log, register, alias, verify) and system prompts."""

from flywheel.registry._loading import LoadedAgent, load_agent
from flywheel.registry._logging import (
    DEFAULT_MODEL_NAME,
    LoggedAgent,
    log_agent,
    require_registry,
    set_alias,
    verify,
)
from flywheel.registry._prompts import (
    DEFAULT_PROMPT_ALIAS,
    DEFAULT_PROMPT_NAME,
    load_system_prompt,
    prompt_loader,
    prompt_name_for,
    push_default_prompts,
    registry_reachable,
)

__all__ = [
    "DEFAULT_MODEL_NAME",
    "DEFAULT_PROMPT_ALIAS",
    "DEFAULT_PROMPT_NAME",
    "LoadedAgent",
    "LoggedAgent",
    "load_agent",
    "load_system_prompt",
    "log_agent",
    "prompt_loader",
    "prompt_name_for",
    "push_default_prompts",
    "registry_reachable",
    "require_registry",
    "set_alias",
    "verify",
]
