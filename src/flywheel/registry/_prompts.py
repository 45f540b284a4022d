"""System prompts in the MLflow prompt registry, with the built-in prompt as the fallback.

One prompt per language: ``docs-qa-system`` (English) and ``docs-qa-system-ja`` (Japanese). The
agent loads ``prompts:/NAME@ALIAS`` (alias ``production`` by default); when the registry is down or
the prompt/alias is missing it uses the built-in prompt and logs a warning saying so.
"""

from __future__ import annotations

import logging

from flywheel.agent import DEFAULT_SYSTEM_PROMPTS, LoadedPrompt
from flywheel.config import Settings
from flywheel.tracking import tracking_reachable, use

__all__ = [
    "DEFAULT_PROMPT_ALIAS",
    "DEFAULT_PROMPT_NAME",
    "load_system_prompt",
    "prompt_loader",
    "prompt_name_for",
    "push_default_prompts",
    "registry_reachable",
]

log = logging.getLogger("flywheel.prompts")
DEFAULT_PROMPT_NAME = "docs-qa-system"
DEFAULT_PROMPT_ALIAS = "production"


def prompt_name_for(base: str, lang: str) -> str:
    return base if lang == "en" else f"{base}-{lang}"


def registry_reachable(settings: Settings) -> bool:
    """The registry lives in the tracking server."""
    return tracking_reachable(settings)


def push_default_prompts(
    settings: Settings, base: str = DEFAULT_PROMPT_NAME, alias: str = DEFAULT_PROMPT_ALIAS
) -> list[tuple[str, int]]:
    """Register the built-in prompts as new versions (unless identical to the latest) and alias them."""
    import mlflow

    use(settings)
    out = []
    for lang, text in DEFAULT_SYSTEM_PROMPTS.items():
        name = prompt_name_for(base, lang)
        latest = None
        try:
            latest = mlflow.genai.load_prompt(f"prompts:/{name}@latest")
        except Exception:  # the prompt does not exist yet
            latest = None
        if latest is not None and latest.template == text:
            version = latest.version
        else:
            version = mlflow.genai.register_prompt(
                name=name,
                template=text,
                commit_message="flywheel built-in system prompt",
                tags={"language": lang, "source": "flywheel"},
            ).version
        mlflow.genai.set_prompt_alias(name, alias=alias, version=int(version))
        out.append((name, int(version)))
    return out


def load_system_prompt(
    settings: Settings, lang: str, base: str = DEFAULT_PROMPT_NAME, alias: str = DEFAULT_PROMPT_ALIAS
) -> LoadedPrompt:
    """``prompts:/NAME@ALIAS`` from the registry, else the built-in prompt (with a logged warning)."""
    name = prompt_name_for(base, lang)
    builtin = DEFAULT_SYSTEM_PROMPTS[lang]
    if not registry_reachable(settings):
        reason = f"the prompt registry at {settings.tracking_uri} is not reachable"
    else:
        import mlflow

        use(settings)
        try:
            prompt = mlflow.genai.load_prompt(f"prompts:/{name}@{alias}")
            return LoadedPrompt(prompt.template, name, str(prompt.version))
        except Exception as exc:  # MLflow raises MlflowException for a missing prompt or alias
            reason = f"prompts:/{name}@{alias} could not be loaded ({str(exc).splitlines()[0][:160]})"
    log.warning("using the built-in system prompt: %s. Register it with `flywheel prompts push`.", reason)
    return LoadedPrompt(builtin, "builtin", "builtin", reason)


def prompt_loader(settings: Settings, base: str = DEFAULT_PROMPT_NAME, alias: str = DEFAULT_PROMPT_ALIAS):  # type: ignore[no-untyped-def]
    """A loader for DocsAgent: language → LoadedPrompt from the registry (with fallback)."""
    return lambda lang: load_system_prompt(settings, lang, base, alias)
