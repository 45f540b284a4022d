"""Which runtime backend this process deploys to (``FLYWHEEL_RUNTIME_BACKEND``)."""

from __future__ import annotations

from typing import Any

from flywheel.config import Settings
from flywheel.errors import InputError

__all__ = ["runtimes_for"]


def runtimes_for(settings: Settings, backend: str | None = None) -> Any:
    """The runtimes of ``backend`` (default: the settings'): local, kubernetes, docker, agentcore."""
    backend = backend or settings.runtime_backend
    if backend == "local":
        from flywheel.runtime._local import LocalRuntimes

        return LocalRuntimes(settings)
    if backend == "kubernetes":
        from flywheel.runtime._kubernetes import KubernetesRuntimes

        return KubernetesRuntimes(
            settings, settings.runtime_namespace, settings.runtime_image, ttl_s=settings.runtime_ttl_s
        )
    if backend == "docker":
        from flywheel.runtime._docker import DockerRuntimes

        return DockerRuntimes(settings, settings.runtime_image, ttl_s=settings.runtime_ttl_s)
    if backend == "agentcore":
        from flywheel.runtime._agentcore import AgentCoreRuntimes

        if not settings.agentcore_role_arn:
            raise InputError(
                "option_value",
                option="FLYWHEEL_AGENTCORE_ROLE_ARN",
                value="(unset)",
                expected="the ARN of the AgentCore execution role",
            )
        return AgentCoreRuntimes(
            settings,
            image=settings.runtime_image,
            role_arn=settings.agentcore_role_arn,
            ttl_s=settings.runtime_ttl_s,
        )
    raise InputError(
        "option_value", option="--backend", value=backend, expected="local, kubernetes, docker or agentcore"
    )
