"""The kubernetes runtime backend: one Deployment + Service per agent version, through the
Kubernetes Python client.

The manifests come from ``deploy/k8s/runtime/agent-runtime.yaml`` (each ``${...}`` filled with a
JSON string, which is valid YAML, so no value can break the document). Runtimes are found again by
the label ``app.kubernetes.io/managed-by=flywheel``; ``flywheel.io/purpose`` says why they exist and
``flywheel.io/expires-at`` when a gate or tune that was killed no longer needs them (``gc``).

Not exercised against a real cluster here (none is reachable on the machines this was built on):
the rendered manifests are validated against the Kubernetes JSON schemas and the API calls are
checked against a recording fake of the client in the tests. See docs/runtimes.md.
"""

from __future__ import annotations

import json
import string
import time
from pathlib import Path
from typing import Any

import yaml

from flywheel.config import Settings
from flywheel.errors import InputError, ServiceStartError
from flywheel.runtime._base import Runtime, RuntimeBackend, runtime_name

__all__ = ["KubernetesRuntimes", "render_runtime"]

TEMPLATE = Path(__file__).resolve().parents[3] / "deploy" / "k8s" / "runtime" / "agent-runtime.yaml"
MANAGED = "app.kubernetes.io/managed-by=flywheel"
PORT = 5005


def render_runtime(
    name: str,
    *,
    image: str,
    model_uri: str | None,
    config: dict[str, Any] | None,
    purpose: str,
    profile: str | None,
    ttl_s: float = 7200,
    template: Path = TEMPLATE,
    now: float | None = None,
) -> list[dict[str, Any]]:
    """The Deployment and Service of one runtime, as dicts."""
    now = time.time() if now is None else now
    values = {
        "name": name,
        "image": image,
        "model_uri": model_uri or "",
        "agent_config": json.dumps(config or {}),
        "purpose": purpose,
        "profile": profile or "",
        "expires_at": str(int(now + ttl_s)),
        "created": str(int(now)),
    }
    text = string.Template(template.read_text(encoding="utf-8")).substitute(
        {k: json.dumps(v) for k, v in values.items()}
    )
    return [doc for doc in yaml.safe_load_all(text) if doc]


class KubernetesRuntimes(RuntimeBackend):
    """Agent versions as Deployments in ``namespace``. ``apps``/``core``: AppsV1Api/CoreV1Api
    (None: from the in-cluster config or ~/.kube/config)."""

    backend = "kubernetes"

    def __init__(
        self,
        settings: Settings,
        namespace: str = "flywheel",
        image: str = "ghcr.io/flywheel/agent:latest",
        apps: Any = None,
        core: Any = None,
        ttl_s: float = 7200,
    ) -> None:
        self.settings, self.namespace, self.image, self.ttl_s = settings, namespace, image, ttl_s
        if apps is None or core is None:
            from kubernetes import client, config

            try:
                config.load_incluster_config()
            except config.ConfigException:
                try:
                    config.load_kube_config()
                except (config.ConfigException, OSError) as exc:
                    raise InputError(
                        "backend_unavailable",
                        backend="kubernetes",
                        detail=str(exc)[:200],
                        needs="a kubeconfig (~/.kube/config or KUBECONFIG) or running inside a cluster",
                    ) from exc
            apps, core = client.AppsV1Api(), client.CoreV1Api()
        self.apps, self.core = apps, core

    def _runtime(self, dep: Any) -> Runtime:
        meta = dep["metadata"] if isinstance(dep, dict) else dep.metadata.to_dict()
        status = (
            dep.get("status", {}) if isinstance(dep, dict) else (dep.status.to_dict() if dep.status else {})
        )
        ann, labels = meta.get("annotations") or {}, meta.get("labels") or {}
        name = meta["name"]
        env = {}
        spec = dep["spec"] if isinstance(dep, dict) else dep.spec.to_dict()
        for e in spec["template"]["spec"]["containers"][0].get("env") or []:
            env[e["name"]] = e.get("value")
        return Runtime(
            name=name,
            url=f"http://{name}.{self.namespace}.svc.cluster.local:{PORT}",
            purpose=labels.get("flywheel.io/purpose", "manual"),
            model_uri=ann.get("flywheel.io/model-uri") or None,
            config=json.loads(env.get("FLYWHEEL_SERVE_AGENT_CONFIG") or "{}"),
            record={
                "backend": self.backend,
                "namespace": self.namespace,
                "ready_replicas": (status or {}).get("ready_replicas") or 0,
                "expires_at": float(ann.get("flywheel.io/expires-at") or 0),
            },
            created=float(ann.get("flywheel.io/created") or 0),
        )

    def deploy(
        self,
        model_uri: str | None = None,
        config: dict[str, Any] | None = None,
        purpose: str = "manual",
        name: str | None = None,
        timeout: float = 600.0,
    ) -> Runtime:
        name = runtime_name(self.settings, name, purpose)
        deployment, service = render_runtime(
            name,
            image=self.image,
            model_uri=model_uri,
            config=config,
            purpose=purpose,
            profile=self.settings.profile,
            ttl_s=self.ttl_s,
        )
        self.apps.create_namespaced_deployment(self.namespace, deployment)
        self.core.create_namespaced_service(self.namespace, service)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            dep = self.apps.read_namespaced_deployment_status(name, self.namespace)
            runtime = self._runtime(dep)
            if runtime.record["ready_replicas"] >= 1:
                return runtime
            time.sleep(2)
        self.delete(name)
        raise ServiceStartError(service=f"runtime {name}", timeout=timeout, log=Path("kubectl"), detail="")

    def update(self, name: str, model_uri: str | None = None, config: dict[str, Any] | None = None) -> None:
        """Point a runtime at another version or config: a rolling update of its Deployment."""
        env = [
            {"name": "FLYWHEEL_SERVE_MODEL", "value": model_uri or ""},
            {"name": "FLYWHEEL_SERVE_AGENT_CONFIG", "value": json.dumps(config or {})},
        ]
        patch = {
            "metadata": {"annotations": {"flywheel.io/model-uri": model_uri or ""}},
            "spec": {"template": {"spec": {"containers": [{"name": "agent", "env": env}]}}},
        }
        self.apps.patch_namespaced_deployment(name, self.namespace, patch)

    def get(self, name: str) -> Runtime | None:
        try:
            return self._runtime(self.apps.read_namespaced_deployment(name, self.namespace))
        except Exception as exc:
            if getattr(exc, "status", None) == 404:
                return None
            raise

    def all(self) -> list[Runtime]:
        deps = self.apps.list_namespaced_deployment(self.namespace, label_selector=MANAGED)
        items = deps["items"] if isinstance(deps, dict) else deps.items
        return [self._runtime(d) for d in items]

    def delete(self, name: str) -> bool:
        found = False
        for call in (self.apps.delete_namespaced_deployment, self.core.delete_namespaced_service):
            try:
                call(name, self.namespace, propagation_policy="Foreground")
                found = True
            except Exception as exc:
                if getattr(exc, "status", None) != 404:
                    raise
        return found

    def gc(self, purposes: tuple[str, ...] = ("gate", "tune"), now: float | None = None) -> list[str]:
        """Delete gate/tune runtimes past their ``flywheel.io/expires-at`` (their owner was killed)."""
        now = time.time() if now is None else now
        removed = []
        for rt in self.all():
            if rt.purpose in purposes and rt.record["expires_at"] and rt.record["expires_at"] < now:
                self.delete(rt.name)
                removed.append(rt.name)
        return removed
