"""The agentcore runtime backend: Amazon Bedrock AgentCore Runtime through boto3.

An AgentCore agent runtime runs our container image (built with the AgentCore contract: port 8080,
``POST /invocations``, ``GET /ping`` — see deploy/Dockerfile) with the agent version in its
environment. ``update`` creates a new immutable runtime version; named endpoints (e.g. ``champion``)
stay pinned to the version they name until moved with ``pin``. Invocations carry a session id
(``runtimeSessionId``, at least 33 characters), so one conversation stays on one microVM.

Runtimes made by a gate or tune carry the tags ``flywheel:purpose`` and ``flywheel:expires-at``;
``gc`` deletes those past their expiry.

Not exercised against AWS here (no account is reachable from the machines this was built on):
every call is checked against botocore's service model with its Stubber in the tests.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from flywheel.config import Settings
from flywheel.errors import ServiceStartError
from flywheel.runtime._base import Runtime, RuntimeBackend, runtime_name

__all__ = ["AgentCoreRuntimes"]


class AgentCoreRuntimes(RuntimeBackend):
    backend = "agentcore"

    def __init__(
        self,
        settings: Settings,
        *,
        image: str,
        role_arn: str,
        control: Any = None,
        data: Any = None,
        ttl_s: float = 7200,
        poll_s: float = 5.0,
    ) -> None:
        """``image``: the ECR URI of the AgentCore image; ``role_arn``: the execution role.
        ``control``/``data``: boto3 clients for bedrock-agentcore-control / bedrock-agentcore."""
        import boto3

        self.settings, self.image, self.role_arn, self.ttl_s, self.poll_s = (
            settings,
            image,
            role_arn,
            ttl_s,
            poll_s,
        )
        region = settings.aws_region
        self.control = control or boto3.client("bedrock-agentcore-control", region_name=region)
        self.data = data or boto3.client("bedrock-agentcore", region_name=region)
        self._ids: dict[str, str] = {}  # runtime name → id (AgentCore's API takes ids)

    def _env(self, model_uri: str | None, config: dict[str, Any] | None) -> dict[str, str]:
        env = {
            "FLYWHEEL_SERVE_AGENT_CONFIG": json.dumps(config or {}),
            "FLYWHEEL_HOST": "0.0.0.0",
            "FLYWHEEL_AGENT_PORT": "8080",
        }
        if model_uri:
            env["FLYWHEEL_SERVE_MODEL"] = model_uri
        if self.settings.profile:
            env["FLYWHEEL_PROFILE"] = self.settings.profile
        if self.settings.mlflow_tracking_uri:
            env["MLFLOW_TRACKING_URI"] = self.settings.mlflow_tracking_uri
        return env  # secrets come from SSM inside the runtime (FLYWHEEL_SECRETS_SSM_PREFIX), never here

    def _wait(self, runtime_id: str, version: str | None, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            kwargs = {"agentRuntimeId": runtime_id, **({"agentRuntimeVersion": version} if version else {})}
            got = self.control.get_agent_runtime(**kwargs)
            if got["status"] == "READY":
                return dict(got)
            if got["status"].endswith("FAILED") or time.monotonic() > deadline:
                raise ServiceStartError(
                    service=f"AgentCore runtime {runtime_id}",
                    timeout=timeout,
                    log="AWS console / CloudWatch",
                    detail=got.get("failureReason", got["status"]),
                )
            time.sleep(self.poll_s)

    def deploy(
        self,
        model_uri: str | None = None,
        config: dict[str, Any] | None = None,
        purpose: str = "manual",
        name: str | None = None,
        timeout: float = 900.0,
    ) -> Runtime:
        # AgentCore names: letters, digits and underscores, starting with a letter
        name = runtime_name(self.settings, name, purpose).replace("-", "_")
        created = self.control.create_agent_runtime(
            agentRuntimeName=name,
            agentRuntimeArtifact={"containerConfiguration": {"containerUri": self.image}},
            roleArn=self.role_arn,
            networkConfiguration={"networkMode": "PUBLIC"},
            protocolConfiguration={"serverProtocol": "HTTP"},
            environmentVariables=self._env(model_uri, config),
            clientToken=uuid.uuid4().hex + uuid.uuid4().hex[:8],
            tags={
                "flywheel:purpose": purpose,
                "flywheel:expires-at": str(int(time.time() + self.ttl_s)),
                "flywheel:model-uri": model_uri or "config",
            },
        )
        try:
            self._wait(created["agentRuntimeId"], created.get("agentRuntimeVersion"), timeout)
        except Exception:
            self.control.delete_agent_runtime(agentRuntimeId=created["agentRuntimeId"])
            raise
        self._ids[name] = created["agentRuntimeId"]
        return Runtime(
            name=name,
            url=created["agentRuntimeArn"],
            purpose=purpose,
            model_uri=model_uri,
            config=config or {},
            record={
                "backend": self.backend,
                "id": created["agentRuntimeId"],
                "version": created.get("agentRuntimeVersion"),
                "ready_replicas": 1,
            },
            created=time.time(),
        )

    def update(
        self, runtime: Runtime, model_uri: str | None = None, config: dict[str, Any] | None = None
    ) -> str:
        """A new immutable version of the runtime; endpoints keep serving the version they pin."""
        out = self.control.update_agent_runtime(
            agentRuntimeId=runtime.record["id"],
            agentRuntimeArtifact={"containerConfiguration": {"containerUri": self.image}},
            roleArn=self.role_arn,
            networkConfiguration={"networkMode": "PUBLIC"},
            environmentVariables=self._env(model_uri, config),
        )
        return str(out["agentRuntimeVersion"])

    def pin(self, runtime: Runtime, endpoint: str, version: str) -> None:
        """Point the named endpoint (created if missing) at ``version``."""
        try:
            self.control.update_agent_runtime_endpoint(
                agentRuntimeId=runtime.record["id"], endpointName=endpoint, agentRuntimeVersion=version
            )
        except self.control.exceptions.ResourceNotFoundException:
            self.control.create_agent_runtime_endpoint(
                agentRuntimeId=runtime.record["id"], name=endpoint, agentRuntimeVersion=version
            )

    def target(self, runtime: Runtime, api_key: str | None = None) -> Any:
        """Evaluation goes through ``invoke`` (AgentCore's data plane), each question its own session."""
        from flywheel.evaluation import HttpTarget

        runtimes = self

        class InvokeTarget(HttpTarget):
            def __init__(self) -> None:  # no HTTP client: the boto3 client is the transport
                self.spec = runtime.url
                self.identity = {"endpoint": runtime.url}

            def run(self, question: str) -> Any:
                t0 = time.perf_counter()
                session = uuid.uuid4().hex + uuid.uuid4().hex[:8]
                data = runtimes.invoke(runtime, question, session_id=session)
                return self.output(data, question, (time.perf_counter() - t0) * 1000)

        return InvokeTarget()

    def invoke(
        self, runtime: Runtime, question: str, session_id: str, endpoint: str = "DEFAULT"
    ) -> dict[str, Any]:
        """One Responses API call through AgentCore (the payload our /invocations takes)."""
        if len(session_id) < 33:
            raise ValueError("AgentCore session ids have at least 33 characters")
        out = self.data.invoke_agent_runtime(
            agentRuntimeArn=runtime.url,
            runtimeSessionId=session_id,
            qualifier=endpoint,
            contentType="application/json",
            accept="application/json",
            payload=json.dumps({"input": question}).encode(),
        )
        body = out["response"]
        raw = body.read() if hasattr(body, "read") else body
        return dict(json.loads(raw))

    def all(self) -> list[Runtime]:
        """Every agent runtime of the account and region, with its flywheel tags."""
        items: list[dict[str, Any]] = []
        token = None
        while True:
            page = self.control.list_agent_runtimes(**({"nextToken": token} if token else {}))
            items.extend(page.get("agentRuntimes", []))
            token = page.get("nextToken")
            if not token:
                break
        out = []
        for item in items:
            tags = self.control.list_tags_for_resource(resourceArn=item["agentRuntimeArn"]).get("tags") or {}
            self._ids[item["agentRuntimeName"]] = item["agentRuntimeId"]
            out.append(
                Runtime(
                    name=item["agentRuntimeName"],
                    url=item["agentRuntimeArn"],
                    purpose=tags.get("flywheel:purpose", "unknown"),
                    model_uri=tags.get("flywheel:model-uri"),
                    config={},
                    record={
                        "backend": self.backend,
                        "id": item["agentRuntimeId"],
                        "version": item["agentRuntimeVersion"],
                        "ready_replicas": 1 if item["status"] == "READY" else 0,
                        "expires_at": float(tags.get("flywheel:expires-at") or 0),
                    },
                    created=0.0,
                )
            )
        return out

    def delete(self, name: str) -> bool:
        """Delete a runtime by name (or by its AgentCore id)."""
        runtime_id = self._ids.pop(name, name)
        try:
            self.control.delete_agent_runtime(agentRuntimeId=runtime_id)
            return True
        except self.control.exceptions.ResourceNotFoundException:
            return False

    def gc(self, purposes: tuple[str, ...] = ("gate", "tune"), now: float | None = None) -> list[str]:
        """Delete gate/tune runtimes past their ``flywheel:expires-at`` tag (their owner was killed)."""
        now = time.time() if now is None else now
        removed = []
        for rt in self.all():
            expires = rt.record["expires_at"]
            if rt.purpose in purposes and expires and expires < now and self.delete(rt.name):
                removed.append(rt.name)
        return removed
