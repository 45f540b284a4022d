"""What every runtime backend shares: the ``Runtime`` record, how a new runtime is named, and the
backend interface (``deploy``, ``get``/``all``, ``delete``, ``gc``; ``target`` turns a runtime into
an evaluation target — over HTTP unless the backend has its own way in)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from flywheel.config import Settings
from flywheel.stack import ProcessRecord, is_alive, same_process

__all__ = ["Runtime", "RuntimeBackend", "runtime_name"]


def runtime_name(settings: Settings, name: str | None, purpose: str) -> str:
    """The name a new runtime gets: the one asked for, or PURPOSE-RANDOM; prefixed by the profile."""
    return settings.runtime_name(name or f"{purpose}-{uuid.uuid4().hex[:8]}")


@dataclass
class Runtime:
    name: str
    url: str
    purpose: str
    model_uri: str | None
    config: dict[str, Any]
    record: dict[str, Any]
    created: float
    owner: dict[str, float] | None = None  # pid and create_time of the process that started it

    def alive(self) -> bool:
        if self.record.get("backend", "local") != "local":  # kubernetes, docker, agentcore
            return bool(self.record.get("ready_replicas"))
        return is_alive(ProcessRecord(**self.record))

    def orphaned(self) -> bool:
        """The process that started it (a gate, a tune) is gone: nobody will delete it."""
        if self.record.get("backend", "local") != "local":
            return False  # remote backends expire instead (flywheel.io/expires-at)
        if not self.owner:
            return True
        ticks = self.owner.get("start_ticks")
        return (
            same_process(
                int(self.owner["pid"]), self.owner["create_time"], None if ticks is None else int(ticks)
            )
            is None
        )


class RuntimeBackend:
    """The interface of the local, kubernetes, docker and agentcore backends."""

    backend = "local"
    settings: Settings

    def deploy(
        self,
        model_uri: str | None = None,
        config: dict[str, Any] | None = None,
        purpose: str = "manual",
        name: str | None = None,
        timeout: float = 300.0,
    ) -> Runtime:
        raise NotImplementedError

    def all(self) -> list[Runtime]:
        raise NotImplementedError

    def delete(self, name: str) -> bool:
        raise NotImplementedError

    def gc(self, purposes: tuple[str, ...] = ("gate", "tune")) -> list[str]:
        raise NotImplementedError

    def target(self, runtime: Runtime, api_key: str | None = None) -> Any:
        """An evaluation target that asks this runtime (the Responses API over HTTP)."""
        from flywheel.evaluation import HttpTarget

        return HttpTarget(runtime.url, api_key)
