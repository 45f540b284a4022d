"""Deploy → evaluate → delete: one candidate agent measured in its own runtime (gate and tune)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flywheel.config import Settings
from flywheel.runtime._base import RuntimeBackend

__all__ = ["deploy_and_evaluate"]


def deploy_and_evaluate(
    settings: Settings,
    runtimes: RuntimeBackend,
    *,
    name: str,
    purpose: str,
    model_uri: str | None,
    config: dict[str, Any] | None,
    dataset: Any,
    scorers: list[Any],
    context: Any,
    results_dir: Path,
    parent_run_id: str | None = None,
    tags: dict[str, str] | None = None,
    concurrency: int = 2,
    on_deployed: Any = lambda runtime: None,
) -> tuple[Any, Any]:
    """Start a runtime for ``model_uri`` or ``config``, evaluate it on ``dataset`` (an MLflow run
    named ``name``, child of ``parent_run_id``), always delete it. Returns (EvalResult,
    VersionIdentity)."""
    from flywheel.evaluation import EvalOptions, run_evaluation, version_identity

    rt = runtimes.deploy(model_uri, config, purpose=purpose, name=name)
    try:
        on_deployed(rt)
        target = runtimes.target(rt, settings.api_key.get_secret_value() if settings.api_key else None)
        options = EvalOptions(
            dataset,
            target,
            scorers,
            context,
            concurrency=concurrency,
            results_dir=results_dir,
            run_name=name,
            fresh=True,
            parent_run_id=parent_run_id,
            tags=tags or {},
        )
        result = run_evaluation(settings, options)
        return result, version_identity(result, options)
    finally:
        runtimes.delete(rt.name)
