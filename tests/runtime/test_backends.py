"""The kubernetes, docker and agentcore runtime backends without a cluster, an engine or an AWS
account: manifests against the Kubernetes JSON schemas, boto3 calls against botocore's service model
(Stubber), Docker SDK calls against a recording fake serving a real /ready."""

from __future__ import annotations

import http.server
import io
import json
import re
import threading
import time
from pathlib import Path
from typing import Any

import boto3
import kubernetes_validate
import pytest
import yaml
from botocore.stub import ANY, Stubber

from flywheel.config import Settings, load_settings
from flywheel.runtime import AgentCoreRuntimes, DockerRuntimes, KubernetesRuntimes, render_runtime

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
K8S_VERSION = "1.37.0"


def _resources() -> list[tuple[str, dict[str, Any]]]:
    docs = []
    for path in sorted(K8S.rglob("*.yaml")):
        if path.name == "kustomization.yaml" or path.parent.name == "runtime":
            continue
        docs += [
            (str(path.relative_to(ROOT)), d)
            for d in yaml.safe_load_all(path.read_text())
            if d and "kind" in d
        ]
    return docs


@pytest.mark.parametrize("where,doc", _resources(), ids=lambda v: v if isinstance(v, str) else "")
def test_every_manifest_is_valid_against_the_kubernetes_schema(where: str, doc: dict[str, Any]) -> None:
    kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_the_schema_check_can_fail() -> None:
    bad = yaml.safe_load((K8S / "base" / "agent-deployment.yaml").read_text())
    bad["spec"]["replica"] = 2  # a typo
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, K8S_VERSION, strict=True)


def test_the_manifests_name_only_ports_paths_and_variables_the_servers_use(tmp_path: Path) -> None:
    """Agent and gateway manifests (base, overlays, the runtime template): every FLYWHEEL_/provider
    variable is a setting, every probe path a route, every container port a server's port."""
    from flywheel.agent import DocsAgent
    from flywheel.knowledge import KnowledgeBase
    from flywheel.serving import LoadedAgent, build_app
    from tests.fakes import HashEmbedder, fake_chat

    settings = load_settings(data_dir=tmp_path / "data", collection="k8s_test")
    fields = set(Settings.model_fields)
    aliases = {
        str(a).upper()
        for f in Settings.model_fields.values()
        if f.validation_alias is not None
        for a in getattr(f.validation_alias, "choices", [])
    }
    known = {f"FLYWHEEL_{f.upper()}" for f in fields} | aliases
    agent = DocsAgent(settings, kb=KnowledgeBase(settings, embedder=HashEmbedder()), llm=fake_chat("x"))
    routes = {getattr(r, "path", "") for r in build_app(settings, LoadedAgent(agent)).routes} | {
        "/health",
        "/stats",
    }
    files = [
        p for p in K8S.rglob("*.yaml") if p.parent.name != "tracking"
    ]  # MLflow/PostgreSQL: their own images
    texts = [p.read_text() for p in files]
    variables = set()
    for text in texts:
        variables |= set(re.findall(r"^\s+(FLYWHEEL_[A-Z_]+|[A-Z]+_[A-Z_]+):", text, re.M))
        variables |= set(re.findall(r"name: ((?:FLYWHEEL|MLFLOW|LLM|MILVUS|OPENAI|EXA)_[A-Z_]+)", text))
        variables |= set(re.findall(r"- ((?:FLYWHEEL)_[A-Z_]+)=", text))
    assert variables and variables <= known, variables - known
    paths = set()
    for text in texts:
        paths |= set(re.findall(r"httpGet: \{path: (/[a-z]*)", text))
    assert paths and paths <= routes, paths - routes
    ports = {int(p) for text in texts for p in re.findall(r"containerPort: (\d+)", text)}
    assert ports == {settings.agent_port, settings.gateway_port}


def test_the_clusters_gateway_yaml_is_a_valid_gateway_config() -> None:
    from flywheel.gateway import load_gateway_config

    cfg = load_gateway_config(K8S / "base" / "gateway.yaml")
    assert cfg.gateway.api_keys == ["$FLYWHEEL_API_KEY"]  # keys stay references


def test_the_dockerfile_is_multi_stage_non_root_with_healthchecks_and_real_entry_points() -> None:
    import importlib.util

    text = (ROOT / "deploy" / "Dockerfile").read_text()
    stages = re.findall(r"^FROM \S+(?: AS (\w+))?", text, re.M)
    assert len(stages) >= 3 and stages[-1] == "agent"  # the default target is the agent server
    assert "USER 10001:10001" in text and "useradd" in text
    assert (
        "build-essential" not in text.split("FROM python:${PYTHON}-slim AS base", 1)[1]
    )  # no compilers at run time
    settings = load_settings()
    exposed = {int(p) for p in re.findall(r"^EXPOSE (\d+)", text, re.M)}
    assert exposed == {settings.agent_port, settings.gateway_port, 8080}  # 8080: the AgentCore contract
    assert text.count("HEALTHCHECK") == len(exposed)
    for module in re.findall(r'ENTRYPOINT \["python", "-m", "([\w.]+)"', text):
        assert importlib.util.find_spec(module) is not None, module
    for src in re.findall(r"^COPY (?!--from)(\S+)", text, re.M):
        assert (ROOT / src.rstrip("/")).exists(), src
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".venv", "data/", ".env", ".git"} <= set(ignored)  # no venv, data or secrets in the image


def test_a_rendered_runtime_is_valid_and_carries_any_config_safely() -> None:
    config = {"system_prompt": 'It\'s "quoted": {yes} ${NOT_A_VAR}\nline two', "top_k": 3}
    deployment, service = render_runtime(
        "gate-abc", image="img:1", model_uri=None, config=config, purpose="gate", profile="tst", now=1000
    )
    for doc in (deployment, service):
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
    env = {e["name"]: e["value"] for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert json.loads(env["FLYWHEEL_SERVE_AGENT_CONFIG"]) == config
    assert env["FLYWHEEL_PROFILE"] == "tst" and env["FLYWHEEL_SERVE_MODEL"] == ""
    assert deployment["metadata"]["labels"]["flywheel.io/purpose"] == "gate"
    assert deployment["metadata"]["annotations"]["flywheel.io/expires-at"] == str(1000 + 7200)


class _Obj(dict):  # the client returns objects; dicts with the same shape are enough here
    pass


class FakeK8s:
    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.deployments: dict[str, dict[str, Any]] = {}

    # AppsV1Api
    def create_namespaced_deployment(self, ns: str, body: dict[str, Any]) -> None:
        self.calls.append(("create_deployment", ns))
        body = json.loads(json.dumps(body))
        body["status"] = {"ready_replicas": 1}
        self.deployments[body["metadata"]["name"]] = body

    def read_namespaced_deployment_status(self, name: str, ns: str) -> dict[str, Any]:
        return self.deployments[name]

    read_namespaced_deployment = read_namespaced_deployment_status

    def list_namespaced_deployment(self, ns: str, label_selector: str) -> dict[str, Any]:
        assert label_selector == "app.kubernetes.io/managed-by=flywheel"
        return {"items": list(self.deployments.values())}

    def patch_namespaced_deployment(self, name: str, ns: str, patch: dict[str, Any]) -> None:
        self.calls.append(("patch_deployment", patch))

    def delete_namespaced_deployment(self, name: str, ns: str, propagation_policy: str) -> None:
        self.calls.append(("delete_deployment", name))
        self.deployments.pop(name)

    # CoreV1Api
    def create_namespaced_service(self, ns: str, body: dict[str, Any]) -> None:
        self.calls.append(("create_service", body["metadata"]["name"]))

    def delete_namespaced_service(self, name: str, ns: str, propagation_policy: str) -> None:
        self.calls.append(("delete_service", name))


def test_kubernetes_runtimes_deploy_list_update_and_gc() -> None:
    fake = FakeK8s()
    rts = KubernetesRuntimes(load_settings(), namespace="ci", image="img:1", apps=fake, core=fake, ttl_s=60)
    rt = rts.deploy(config={"policy": "grounded"}, purpose="gate", name="gate-1")
    assert rt.url == "http://gate-1.ci.svc.cluster.local:5005" and rt.alive()
    assert [c[0] for c in fake.calls] == ["create_deployment", "create_service"]
    assert [r.name for r in rts.all()] == ["gate-1"] and rts.all()[0].config == {"policy": "grounded"}
    rts.update("gate-1", model_uri="models:/a/2")
    assert fake.calls[-1][0] == "patch_deployment"
    assert rts.gc(now=time.time()) == []  # not expired yet
    assert rts.gc(now=time.time() + 120) == ["gate-1"]
    assert fake.calls[-2:] == [("delete_deployment", "gate-1"), ("delete_service", "gate-1")]


ARN = "arn:aws:bedrock-agentcore:us-east-1:123456789012:runtime/gate_1-abcdefghij"


def _agentcore() -> tuple[AgentCoreRuntimes, Stubber, Stubber]:
    kw = {"region_name": "us-east-1", "aws_access_key_id": "x", "aws_secret_access_key": "y"}
    control = boto3.client("bedrock-agentcore-control", **kw)
    data = boto3.client("bedrock-agentcore", **kw)
    cs, ds = Stubber(control), Stubber(data)
    rts = AgentCoreRuntimes(
        load_settings(),
        image="123456789012.dkr.ecr.us-east-1.amazonaws.com/flywheel:1",
        role_arn="arn:aws:iam::123456789012:role/flywheel",
        control=control,
        data=data,
        poll_s=0,
    )
    return rts, cs, ds


def test_agentcore_deploy_update_pin_invoke_and_gc() -> None:
    rts, cs, ds = _agentcore()
    now = "2026-11-30T00:00:00Z"
    cs.add_response(
        "create_agent_runtime",
        {
            "agentRuntimeArn": ARN,
            "agentRuntimeId": "gate_1-abcdefghij",
            "agentRuntimeVersion": "1",
            "createdAt": now,
            "status": "CREATING",
            "workloadIdentityDetails": {"workloadIdentityArn": "arn:aws:x"},
        },
        {
            "agentRuntimeName": "gate_1",
            "agentRuntimeArtifact": {"containerConfiguration": {"containerUri": ANY}},
            "roleArn": ANY,
            "networkConfiguration": {"networkMode": "PUBLIC"},
            "protocolConfiguration": {"serverProtocol": "HTTP"},
            "environmentVariables": ANY,
            "clientToken": ANY,
            "tags": ANY,
        },
    )
    base = {
        "agentRuntimeArn": ARN,
        "agentRuntimeName": "gate_1",
        "agentRuntimeId": "gate_1-abcdefghij",
        "agentRuntimeVersion": "1",
        "createdAt": now,
        "lastUpdatedAt": now,
        "roleArn": "arn:aws:iam::123456789012:role/flywheel",
        "networkConfiguration": {"networkMode": "PUBLIC"},
        "lifecycleConfiguration": {"idleRuntimeSessionTimeout": 900, "maxLifetime": 28800},
    }
    cs.add_response(
        "get_agent_runtime",
        {**base, "status": "CREATING"},
        {"agentRuntimeId": ANY, "agentRuntimeVersion": "1"},
    )
    cs.add_response(
        "get_agent_runtime", {**base, "status": "READY"}, {"agentRuntimeId": ANY, "agentRuntimeVersion": "1"}
    )
    cs.add_response(
        "update_agent_runtime",
        {
            "agentRuntimeArn": ARN,
            "agentRuntimeId": "gate_1-abcdefghij",
            "agentRuntimeVersion": "2",
            "createdAt": now,
            "lastUpdatedAt": now,
            "status": "UPDATING",
            "workloadIdentityDetails": {"workloadIdentityArn": "arn:aws:x"},
        },
        {
            "agentRuntimeId": "gate_1-abcdefghij",
            "agentRuntimeArtifact": ANY,
            "roleArn": ANY,
            "networkConfiguration": ANY,
            "environmentVariables": ANY,
        },
    )
    cs.add_client_error("update_agent_runtime_endpoint", "ResourceNotFoundException", http_status_code=404)
    cs.add_response(
        "create_agent_runtime_endpoint",
        {
            "targetVersion": "2",
            "agentRuntimeEndpointArn": ARN + "/runtime-endpoint/champion",
            "agentRuntimeArn": ARN,
            "endpointName": "champion",
            "status": "CREATING",
            "createdAt": now,
        },
        {"agentRuntimeId": "gate_1-abcdefghij", "name": "champion", "agentRuntimeVersion": "2"},
    )
    cs.activate()
    rt = rts.deploy(config={"policy": "grounded"}, purpose="gate", name="gate-1")
    assert rt.url == ARN and rt.record["version"] == "1"
    assert rts.update(rt, model_uri="models:/docs-qa-agent/7") == "2"
    rts.pin(rt, "champion", "2")
    cs.assert_no_pending_responses()

    body = json.dumps({"output": [{"type": "message", "content": [{"type": "output_text", "text": "hi"}]}]})
    ds.add_response(
        "invoke_agent_runtime",
        {"response": io.BytesIO(body.encode()), "contentType": "application/json", "statusCode": 200},
        {
            "agentRuntimeArn": ARN,
            "runtimeSessionId": "s" * 33,
            "qualifier": "champion",
            "contentType": "application/json",
            "accept": "application/json",
            "payload": ANY,
        },
    )
    ds.activate()
    out = rts.invoke(rt, "What is flywheel?", "s" * 33, endpoint="champion")
    assert out["output"][0]["content"][0]["text"] == "hi"
    ds.add_response(
        "invoke_agent_runtime",
        {"response": io.BytesIO(body.encode()), "contentType": "application/json", "statusCode": 200},
        {
            "agentRuntimeArn": ARN,
            "runtimeSessionId": ANY,
            "qualifier": "DEFAULT",
            "contentType": "application/json",
            "accept": "application/json",
            "payload": ANY,
        },
    )
    assert rts.target(rt).run("What is flywheel?").answer == "hi"  # how gate and tune evaluate it
    with pytest.raises(ValueError):
        rts.invoke(rt, "q", "short")


def test_agentcore_gc_removes_only_expired_gate_and_tune_runtimes() -> None:
    rts, cs, _ = _agentcore()
    summary = {
        "agentRuntimeVersion": "1",
        "description": "flywheel runtime",
        "lastUpdatedAt": "2026-11-30T00:00:00Z",
        "status": "READY",
    }
    cs.add_response(
        "list_agent_runtimes",
        {
            "agentRuntimes": [
                {**summary, "agentRuntimeArn": ARN, "agentRuntimeId": "old", "agentRuntimeName": "gate_old"},
                {
                    **summary,
                    "agentRuntimeArn": ARN + "2",
                    "agentRuntimeId": "prod",
                    "agentRuntimeName": "prod",
                },
            ]
        },
        {},
    )
    cs.add_response(
        "list_tags_for_resource",
        {"tags": {"flywheel:purpose": "gate", "flywheel:expires-at": "10"}},
        {"resourceArn": ARN},
    )
    cs.add_response(
        "list_tags_for_resource", {"tags": {"flywheel:purpose": "manual"}}, {"resourceArn": ARN + "2"}
    )
    cs.add_response(
        "delete_agent_runtime", {"status": "DELETING", "agentRuntimeId": "old"}, {"agentRuntimeId": "old"}
    )
    cs.activate()
    assert rts.gc(now=100) == ["gate_old"]
    cs.assert_no_pending_responses()


class _Ready(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/ready" else 404)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


class FakeContainer:
    def __init__(self, name: str, port: int, labels: dict[str, str]) -> None:
        self.name, self.id, self.labels, self.status = name, "c0ffee", labels, "running"
        self.attrs = {
            "NetworkSettings": {"Ports": {"5005/tcp": [{"HostIp": "127.0.0.1", "HostPort": str(port)}]}}
        }
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", port), _Ready)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.removed = False

    def reload(self) -> None:
        pass

    def remove(self, force: bool) -> None:
        self.removed = True
        self.server.shutdown()
        self.server.server_close()


class FakeDocker:
    def __init__(self) -> None:
        self.run_kwargs: dict[str, Any] = {}
        self.made: dict[str, FakeContainer] = {}
        self.containers = self

    def run(self, image: str, **kw: Any) -> FakeContainer:
        self.run_kwargs = {"image": image, **kw}
        _host, port = kw["ports"]["5005/tcp"]
        self.made[kw["name"]] = FakeContainer(kw["name"], port, kw["labels"])
        return self.made[kw["name"]]

    def get(self, name: str) -> FakeContainer:
        import docker.errors

        if name not in self.made or self.made[name].removed:
            raise docker.errors.NotFound(name)
        return self.made[name]

    def list(self, all: bool, filters: dict[str, str]) -> list[FakeContainer]:
        assert filters == {"label": "app.kubernetes.io/managed-by=flywheel"}
        return [c for c in self.made.values() if not c.removed]


def test_docker_runtimes_build_safe_containers_and_clean_up() -> None:
    fake = FakeDocker()
    rts = DockerRuntimes(load_settings(), image="flywheel-agent:1", client=fake, ttl_s=60)
    rt = rts.deploy(model_uri="models:/docs-qa-agent/3", purpose="tune", name="tune-1")
    kw = fake.run_kwargs
    assert kw["ports"]["5005/tcp"][0] == "127.0.0.1"  # never published beyond this machine
    assert kw["read_only"] and kw["cap_drop"] == ["ALL"] and "no-new-privileges" in kw["security_opt"]
    assert kw["environment"]["FLYWHEEL_SERVE_MODEL"] == "models:/docs-qa-agent/3"
    assert not any(
        "KEY" in k or "TOKEN" in k for k in kw["environment"]
    )  # secrets never in a container's config
    assert rt.url.startswith("http://127.0.0.1:") and rt.purpose == "tune"
    assert [r.name for r in rts.all()] == ["tune-1"]
    assert rts.gc(now=time.time()) == []
    assert rts.gc(now=time.time() + 120) == ["tune-1"] and fake.made["tune-1"].removed
