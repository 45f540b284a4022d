"""Deploy → evaluate → delete: one candidate agent measured in its own runtime (gate and tune)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flywheel.config import Settings

__all__ = ["deploy_and_evaluate"]


def deploy_and_evaluate(
    settings: Settings,
    runtimes: Any,
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
    from flywheel.evaluation import EvalOptions, HttpTarget, run_evaluation, version_identity

    rt = runtimes.deploy(model_uri, config, purpose=purpose, name=name)
    try:
        on_deployed(rt)
        api_key = settings.api_key.get_secret_value() if settings.api_key else None
        target = (
            _AgentCoreTarget(runtimes, rt)
            if rt.record.get("backend") == "agentcore"
            else HttpTarget(rt.url, api_key)
        )
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
        runtimes.delete(rt.record["id"] if rt.record.get("backend") == "agentcore" else rt.name)


class _AgentCoreTarget:
    """An AgentCore runtime as an evaluation target: each question in its own session."""

    def __init__(self, runtimes: Any, runtime: Any) -> None:
        from flywheel.evaluation import HttpTarget

        self.runtimes, self.runtime = runtimes, runtime
        self.spec = runtime.url
        self.identity: dict[str, str] = {"endpoint": runtime.url}
        self._parse = HttpTarget("http://unused")  # only its Responses API parsing

    def run(self, question: str) -> Any:
        import time
        import uuid

        t0 = time.perf_counter()
        data = self.runtimes.invoke(
            self.runtime, question, session_id=uuid.uuid4().hex + uuid.uuid4().hex[:8]
        )
        out = self._parse.output(data, question, (time.perf_counter() - t0) * 1000)
        self.identity.update({k: v for k, v in self._parse.identity.items() if k != "endpoint"})
        return out
