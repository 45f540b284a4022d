"""log-model: log the agent from code, register a version, move an alias, verify in a fresh process."""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from flywheel.agent import AgentConfig
from flywheel.config import Settings
from flywheel.errors import FlywheelError
from flywheel.tracking import git_commit, use

__all__ = ["DEFAULT_MODEL_NAME", "LoggedAgent", "log_agent", "require_registry", "set_alias", "verify"]

DEFAULT_MODEL_NAME = "docs-qa-agent"
MODEL_CODE = Path(__file__).with_name("agent_model.py")
VERIFY_QUESTION = "How do I start the embedded stack?"


@dataclass
class LoggedAgent:
    name: str
    version: int
    aliases: list[str]
    model_uri: str
    model_id: str
    run_id: str
    verification: dict = field(default_factory=dict)


def require_registry(settings: Settings) -> None:
    """Raise a clear error when the tracking server (registry, prompts) is not reachable."""
    from flywheel.stack import require

    require(settings, "tracking")


@contextlib.contextmanager
def _environ(values: dict[str, str]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def log_agent(
    settings: Settings, config: AgentConfig, name: str = DEFAULT_MODEL_NAME, alias: str | None = "challenger"
) -> LoggedAgent:
    """Log the agent (models-from-code), register it as a new version of ``name``, set ``alias``."""
    import mlflow
    from mlflow import MlflowClient

    require_registry(settings)
    use(settings, settings.experiment)
    model_config = config.model_dump()
    with mlflow.start_run(run_name=f"log-{name}") as run:
        mlflow.log_params({k: str(v)[:500] for k, v in config.model_dump(exclude={"system_prompt"}).items()})
        mlflow.set_tags({"flywheel.git_commit": git_commit(), "flywheel.kind": "log-model"})
        # MLflow runs the model once while logging it (signature inference): in this process, with
        # settings taken from the environment, so hand it the ones in effect here.
        # MLflow prints its registration notices straight to stderr; the caller reports the result
        with _environ(settings.to_env()), contextlib.redirect_stderr(io.StringIO()):
            info = mlflow.pyfunc.log_model(
                name="agent",
                python_model=str(MODEL_CODE),
                model_config=model_config,
                pip_requirements=[f"mlflow=={mlflow.__version__}", "flywheel"],
                registered_model_name=name,
            )
    version = int(info.registered_model_version)
    client = MlflowClient(settings.tracking_uri)
    # the version's identity travels with it: tag it so traces can be traced back
    client.set_model_version_tag(name, str(version), "git_commit", git_commit())
    aliases = []
    if alias:
        client.set_registered_model_alias(name, alias, str(version))
        aliases.append(alias)
    return LoggedAgent(name, version, aliases, f"models:/{name}/{version}", info.model_id, run.info.run_id)


def set_alias(settings: Settings, name: str, alias: str, version: int) -> None:
    from mlflow import MlflowClient

    require_registry(settings)
    MlflowClient(settings.tracking_uri).set_registered_model_alias(name, alias, str(version))


def verify(settings: Settings, model_uri: str, question: str = VERIFY_QUESTION, timeout: float = 600) -> dict:
    """Load ``model_uri`` in a fresh Python process and answer ``question``; returns its JSON report."""
    proc = subprocess.run(
        [sys.executable, "-m", "flywheel.registry._verify", model_uri, question],
        env={**os.environ, **settings.to_env()},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise FlywheelError(
            "verify_failed",
            uri=model_uri,
            detail=(proc.stderr.strip().splitlines() or ["no output"])[-1][:400],
        )
    return json.loads(lines[-1])
