"""Traces exported over OTLP to a real receiver — Arize Phoenix, run on 127.0.0.1 from its own venv
(scripts/ensure-phoenix.sh) — read back from Phoenix's REST API with their attributes; alongside
MLflow, which keeps every trace. With the endpoint down, serving and evaluation go on and the drop
counter rises."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from flywheel.config import Settings
from flywheel.tracking import _export, export_stats, flush_traces, setup_tracing
from tests.conftest import free_port

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def phoenix(tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config) -> Iterator[str]:
    subprocess.run(["bash", "scripts/ensure-phoenix.sh"], cwd=ROOT, check=True)
    port, grpc = free_port(), free_port()
    work = tmp_path_factory.mktemp("phoenix")
    env = {
        **os.environ,
        "PHOENIX_WORKING_DIR": str(work),
        "PHOENIX_HOST": "127.0.0.1",
        "PHOENIX_PORT": str(port),
        "PHOENIX_GRPC_PORT": str(grpc),
        "PHOENIX_TELEMETRY_ENABLED": "false",
    }
    log = (work / "phoenix.log").open("w")
    proc = subprocess.Popen(
        [str(ROOT / ".venvs/phoenix/bin/phoenix"), "serve"],
        env=env,
        stdout=log,
        stderr=log,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(180):
            try:
                if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None, (work / "phoenix.log").read_text()[-2000:]
            time.sleep(0.5)
        yield url
    finally:
        if proc.poll() is not None:
            # Phoenix left before the teardown (seen once in CI, after its test had passed): say so
            # with its log on the terminal (warnings are errors here), instead of failing a
            # teardown that has nothing left to stop
            tail = (work / "phoenix.log").read_text()[-1500:]
            capture = pytestconfig.pluginmanager.get_plugin("capturemanager")  # what capsys.disabled() uses
            with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
                print(
                    f"\nPhoenix exited early with code {proc.returncode}; its log ends:\n{tail}", flush=True
                )
        else:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
        log.close()


@pytest.fixture
def exporting(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A fresh claim of the OTEL_* variables, and no extra processor left behind for other tests."""
    monkeypatch.setattr(_export, "_CLAIMED", {})
    monkeypatch.setattr(_export, "_CLAIM", {"done": False})
    from flywheel.tracking import _tracing

    _tracing._STATE["uri"] = None  # set tracing up again, with the export
    yield
    _export.uninstall_export()
    _tracing._STATE["uri"] = None  # and again for the next test: its experiment is not ours


def _spans(phoenix: str, trace_id: str, want: int) -> list[dict]:
    hex_id = trace_id.removeprefix("tr-")
    spans: list[dict] = []
    for _ in range(60):
        resp = httpx.get(f"{phoenix}/v1/projects/default/spans", params={"limit": 1000}, timeout=10)
        resp.raise_for_status()
        spans = [s for s in resp.json()["data"] if s["context"]["trace_id"] == hex_id]
        if len(spans) >= want:
            break
        time.sleep(0.5)
    return spans


def test_agent_traces_reach_phoenix_with_genai_attributes_and_mlflow_keeps_them(
    stack: Settings, phoenix: str, exporting: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlflow

    from flywheel.agent import AgentConfig, DocsAgent

    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", phoenix)
    settings = stack.model_copy(update={"experiment": "export-phoenix"})
    assert setup_tracing(settings, export="otlp")
    before = export_stats()["exported_spans_total"]
    agent = DocsAgent(settings, AgentConfig(policy="retrieve_first", max_tokens=24))
    answer = agent.ask("How do I start the embedded stack, and what does it run?", user_id="ada")
    assert answer.trace_id and not answer.refused and not answer.abstained
    flush_traces(20)
    assert export_stats()["exported_spans_total"] > before

    spans = _spans(phoenix, answer.trace_id, 4)
    by_name = {s["name"]: s for s in spans}
    assert {"docs_qa_agent", "guardrail", "doc_search", "llm"} <= set(by_name), sorted(by_name)
    root, llm = by_name["docs_qa_agent"], by_name["llm"]
    assert root["parent_id"] is None and root["span_kind"] == "AGENT"
    assert root["attributes"]["gen_ai.operation.name"] == "invoke_agent"
    assert root["attributes"]["user.id"] == "ada"  # plain values, not MLflow's JSON-encoded ones
    assert "embedded stack" in root["attributes"]["input.value"]
    assert llm["span_kind"] == "LLM"
    assert llm["attributes"]["gen_ai.operation.name"] == "chat"
    assert llm["attributes"]["gen_ai.request.model"] == settings.llm_model
    assert llm["attributes"]["gen_ai.usage.input_tokens"] > 0
    assert llm["attributes"]["llm.token_count.prompt"] == llm["attributes"]["gen_ai.usage.input_tokens"]
    assert by_name["doc_search"]["span_kind"] == "RETRIEVER"

    mlflow.set_tracking_uri(settings.tracking_uri)
    trace = mlflow.get_trace(answer.trace_id)  # MLflow keeps its own record of the same trace
    assert trace is not None and {s.name for s in trace.data.spans} >= {"docs_qa_agent", "llm"}


def test_with_the_endpoint_down_serving_and_evaluation_go_on_and_drops_are_counted(
    stack: Settings, exporting: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from flywheel.agent import default_config
    from flywheel.evaluation import (
        DEFAULT_SCORERS,
        AgentTarget,
        EvalOptions,
        load_dataset,
        make_scorer,
        run_evaluation,
    )
    from flywheel.registry import LoadedAgent
    from flywheel.serving import build_app
    from tests.serving.conftest import running

    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{free_port()}")  # nothing listens
    settings = stack.model_copy(update={"experiment": "export-down"})
    assert setup_tracing(settings, export="otlp")
    dropped = export_stats()["dropped_spans_total"]

    from flywheel.agent import DocsAgent

    agent = DocsAgent(settings, default_config(settings))
    with running(build_app(settings, LoadedAgent(agent, {"model_uri": "test"}, "test"))) as url:
        resp = httpx.post(
            url + "/responses", json={"input": "How do I start the embedded stack?"}, timeout=60
        )
        assert resp.status_code == 200 and resp.json()["output"][0]["content"][0]["text"]
        flush_traces(20)
        metrics = httpx.get(url + "/metrics", timeout=10).text
    after_serving = export_stats()["dropped_spans_total"]
    assert after_serving > dropped
    line = next(x for x in metrics.splitlines() if x.startswith("flywheel_trace_export_dropped_spans_total"))
    assert float(line.split()[-1]) > 0

    ds = load_dataset(ROOT / "datasets" / "flywheel-docs-golden.json").take({"happy_path": 2})
    result = run_evaluation(
        settings,
        EvalOptions(
            ds,
            AgentTarget(settings, default_config(settings)),
            [make_scorer(n) for n in DEFAULT_SCORERS],
            results_dir=tmp_path / "results",
        ),
    )
    assert result.metrics["items"] == 2 and result.metrics["errors"] == 0
    flush_traces(20)
    assert export_stats()["dropped_spans_total"] > after_serving  # the evaluation's traces too
