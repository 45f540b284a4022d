"""Trace export to a second destination (OTLP endpoint, Langfuse): configuration and attributes."""

from __future__ import annotations

import base64

import pytest

from flywheel.config import load_settings
from flywheel.errors import ConfigError
from flywheel.tracking import _export


@pytest.fixture(autouse=True)
def fresh_claim(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_export, "_CLAIMED", {})
    monkeypatch.setattr(_export, "_CLAIM", {"done": False})


def test_nothing_configured_means_no_export() -> None:
    _export.claim_env()
    assert _export.export_target(load_settings()) is None


def test_otel_variables_are_taken_from_mlflow_and_become_the_extra_destination(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import os

    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:6006/")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "api_key=a%3Db,x-team=docs")
    _export.claim_env()
    # MLflow would otherwise send every trace there instead of to the tracking server
    assert "OTEL_EXPORTER_OTLP_ENDPOINT" not in os.environ
    target = _export.export_target(load_settings())
    assert target is not None
    assert target.endpoint == "http://127.0.0.1:6006/v1/traces"
    assert target.headers == {"api_key": "a=b", "x-team": "docs"}


def test_a_traces_endpoint_is_used_as_is(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://collector:4318/custom/traces")
    _export.claim_env()
    target = _export.export_target(load_settings())
    assert target is not None and target.endpoint == "http://collector:4318/custom/traces"


def test_the_tracking_servers_own_endpoint_inherited_from_a_parent_is_not_a_destination(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    own = "http://127.0.0.1:5000/v1/traces"
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", own)
    monkeypatch.setenv(_export.OWN_ENDPOINT_ENV, own)
    _export.claim_env()
    assert _export.export_target(load_settings()) is None


def test_langfuse_preset_authenticates_with_the_key_pair(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LANGFUSE_PUBLIC_KEY", "pk-lf-1")
    monkeypatch.setenv("LANGFUSE_SECRET_KEY", "sk-lf-2")
    monkeypatch.setenv("LANGFUSE_HOST", "http://127.0.0.1:3000/")
    target = _export.export_target(load_settings(trace_export="langfuse"))
    assert target is not None
    assert target.endpoint == "http://127.0.0.1:3000/api/public/otel/v1/traces"
    assert base64.b64decode(target.headers["Authorization"].removeprefix("Basic ")) == b"pk-lf-1:sk-lf-2"
    assert "sk-lf-2" not in target.redacted()


def test_langfuse_without_keys_is_a_clear_error() -> None:
    with pytest.raises(ConfigError) as err:
        _export.export_target(load_settings(trace_export="langfuse"))
    assert "LANGFUSE_PUBLIC_KEY" in err.value.render("en") and "LANGFUSE_PUBLIC_KEY" in err.value.render("ja")


def test_otlp_required_without_endpoint_is_a_clear_error() -> None:
    _export.claim_env()
    with pytest.raises(ConfigError) as err:
        _export.export_target(load_settings(trace_export="otlp"))
    assert "OTEL_EXPORTER_OTLP_ENDPOINT" in err.value.render("en")


def test_semantic_attributes_follow_genai_and_openinference() -> None:
    llm = _export.semantic_attributes(
        {
            "mlflow.spanType": '"CHAT_MODEL"',
            "mlflow.spanInputs": '{"messages": []}',
            "mlflow.spanOutputs": '{"content": "port 5010"}',
            "model": "smollm2",
            "input_tokens": 12,
            "output_tokens": 3,
        }
    )
    assert llm["gen_ai.operation.name"] == "chat"
    assert llm["openinference.span.kind"] == "LLM"
    assert llm["gen_ai.request.model"] == llm["llm.model_name"] == "smollm2"
    assert llm["gen_ai.usage.input_tokens"] == llm["llm.token_count.prompt"] == 12
    assert llm["gen_ai.usage.output_tokens"] == 3
    assert llm["output.value"] == '{"content": "port 5010"}'
    retriever = _export.semantic_attributes({"mlflow.spanType": '"RETRIEVER"'})
    assert retriever["openinference.span.kind"] == "RETRIEVER"
    agent = _export.semantic_attributes({"mlflow.spanType": '"AGENT"'})
    assert agent["gen_ai.operation.name"] == "invoke_agent"
    guard = _export.semantic_attributes({"mlflow.spanType": '"GUARDRAIL"'})
    assert "gen_ai.operation.name" not in guard and guard["openinference.span.kind"] == "GUARDRAIL"
