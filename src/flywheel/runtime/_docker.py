"""The docker runtime backend: one container of the agent image per agent version, through the
Docker SDK (docker-py).

The container publishes the agent server's port on 127.0.0.1 only, runs as the image's non-root
user with a read-only root filesystem, and carries labels (``app.kubernetes.io/managed-by=flywheel``,
``flywheel.io/purpose``, ``flywheel.io/expires-at``) by which ``all`` and ``gc`` find it again.

Not exercised against a Docker engine here (none runs on the machines this was built on): the tests
check the SDK calls against a recording fake. See docs/runtimes.md.
"""

from __future__ import annotations

import json
import time
from typing import Any

import httpx

from flywheel.config import Settings
from flywheel.errors import InputError, ServiceStartError
from flywheel.runtime._base import Runtime, RuntimeBackend, runtime_name
from flywheel.stack import free_port

__all__ = ["DockerRuntimes"]

MANAGED = {"app.kubernetes.io/managed-by": "flywheel"}
PORT = 5005


class DockerRuntimes(RuntimeBackend):
    backend = "docker"

    def __init__(
        self,
        settings: Settings,
        image: str = "flywheel-agent:latest",
        client: Any = None,
        network: str | None = None,
        ttl_s: float = 7200,
    ) -> None:
        """``client``: a ``docker.DockerClient`` (None: ``docker.from_env()``); ``network``: a user
        network where the tracking server, the LLM/gateway and Milvus are reachable by name."""
        if client is None:
            import docker

            try:
                client = docker.from_env()
            except docker.errors.DockerException as exc:
                raise InputError(
                    "backend_unavailable",
                    backend="docker",
                    detail=str(exc)[:200],
                    needs="a running Docker engine (DOCKER_HOST or /var/run/docker.sock)",
                ) from exc
        self.settings, self.image, self.client, self.network, self.ttl_s = (
            settings,
            image,
            client,
            network,
            ttl_s,
        )

    def _runtime(self, c: Any) -> Runtime:
        labels = c.labels
        ports = (c.attrs.get("NetworkSettings") or {}).get("Ports") or {}
        bound = (ports.get(f"{PORT}/tcp") or [{}])[0]
        return Runtime(
            name=c.name,
            url=f"http://127.0.0.1:{bound.get('HostPort', '0')}",
            purpose=labels.get("flywheel.io/purpose", "manual"),
            model_uri=labels.get("flywheel.io/model-uri") or None,
            config=json.loads(labels.get("flywheel.io/agent-config") or "{}"),
            record={
                "backend": self.backend,
                "id": c.id,
                "status": c.status,
                "ready_replicas": 1 if c.status == "running" else 0,
                "expires_at": float(labels.get("flywheel.io/expires-at") or 0),
            },
            created=float(labels.get("flywheel.io/created") or 0),
        )

    def deploy(
        self,
        model_uri: str | None = None,
        config: dict[str, Any] | None = None,
        purpose: str = "manual",
        name: str | None = None,
        timeout: float = 300.0,
    ) -> Runtime:
        name = runtime_name(self.settings, name, purpose)
        port = free_port(self.settings.host)
        env = {
            "FLYWHEEL_HOST": "0.0.0.0",  # inside the container; published on 127.0.0.1 only
            "FLYWHEEL_AGENT_PORT": str(PORT),
            "FLYWHEEL_SERVE_AGENT_CONFIG": json.dumps(config or {}),
            **({"FLYWHEEL_SERVE_MODEL": model_uri} if model_uri else {}),
            **({"FLYWHEEL_PROFILE": self.settings.profile} if self.settings.profile else {}),
            **(
                {"MLFLOW_TRACKING_URI": self.settings.mlflow_tracking_uri}
                if self.settings.mlflow_tracking_uri
                else {}
            ),
        }
        now = time.time()
        container = self.client.containers.run(
            self.image,
            name=name,
            detach=True,
            environment=env,
            ports={f"{PORT}/tcp": ("127.0.0.1", port)},
            labels={
                **MANAGED,
                "flywheel.io/purpose": purpose,
                "flywheel.io/model-uri": model_uri or "",
                "flywheel.io/agent-config": json.dumps(config or {}),
                "flywheel.io/expires-at": str(int(now + self.ttl_s)),
                "flywheel.io/created": str(int(now)),
            },
            read_only=True,
            tmpfs={"/tmp": "size=256m", "/var/lib/flywheel": "size=1g"},
            security_opt=["no-new-privileges"],
            cap_drop=["ALL"],
            mem_limit="3g",
            network=self.network,
        )
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            container.reload()
            if container.status in ("exited", "dead"):
                logs = container.logs(tail=8).decode(errors="replace")
                self.delete(name)
                raise ServiceStartError(service=f"runtime {name}", timeout=0, log="docker logs", detail=logs)
            try:
                if httpx.get(url + "/ready", timeout=3).status_code == 200:
                    return self._runtime(container)
            except httpx.HTTPError:
                pass
            time.sleep(1)
        self.delete(name)
        raise ServiceStartError(service=f"runtime {name}", timeout=timeout, log="docker logs", detail="")

    def get(self, name: str) -> Runtime | None:
        import docker.errors

        try:
            return self._runtime(self.client.containers.get(name))
        except docker.errors.NotFound:
            return None

    def all(self) -> list[Runtime]:
        found = self.client.containers.list(
            all=True, filters={"label": "app.kubernetes.io/managed-by=flywheel"}
        )
        return [self._runtime(c) for c in found]

    def delete(self, name: str) -> bool:
        import docker.errors

        try:
            self.client.containers.get(name).remove(force=True)
            return True
        except docker.errors.NotFound:
            return False

    def gc(self, purposes: tuple[str, ...] = ("gate", "tune"), now: float | None = None) -> list[str]:
        now = time.time() if now is None else now
        removed = []
        for rt in self.all():
            expired = rt.record["expires_at"] and rt.record["expires_at"] < now
            if rt.purpose in purposes and (expired or rt.record["status"] in ("exited", "dead")):
                self.delete(rt.name)
                removed.append(rt.name)
        return removed
