"""Settings precedence: init > environment > .env > flywheel.toml > defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from flywheel.config import load_settings
from flywheel.errors import ConfigError


def test_defaults_are_the_embedded_stack() -> None:
    s = load_settings()
    assert (s.mlflow_port, s.agent_port, s.gateway_port) == (5000, 5005, 5010)
    assert s.tracking_uri == "http://127.0.0.1:5000"
    assert s.llm_url == "http://127.0.0.1:8080/v1"
    assert s.embedded_llm and s.embedded_mlflow
    assert s.index_uri.endswith("data/milvus.db")


def test_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "flywheel.toml").write_text(
        "mlflow_port = 6001\nllm_port = 6002\nagent_port = 6003\ngateway_port = 6004\n"
    )
    assert load_settings().gateway_port == 6004  # toml beats default
    (tmp_path / ".env").write_text(
        "FLYWHEEL_LLM_PORT=7002\nFLYWHEEL_AGENT_PORT=7003\nFLYWHEEL_MLFLOW_PORT=7001\n"
    )
    monkeypatch.setenv("FLYWHEEL_AGENT_PORT", "8003")
    monkeypatch.setenv("FLYWHEEL_MLFLOW_PORT", "8001")
    s = load_settings(mlflow_port=9001)
    assert s.mlflow_port == 9001  # init beats env
    assert s.agent_port == 8003  # env beats .env
    assert s.llm_port == 7002  # .env beats toml
    assert s.gateway_port == 6004  # toml beats default


def test_ecosystem_names_and_prefixed_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.internal:5000")
    monkeypatch.setenv("LLM_BASE_URL", "https://api.openai.com/v1")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-123")
    monkeypatch.setenv("FLYWHEEL_OPEN_URL_ALLOW_HOSTS", "Docs.Internal, wiki.local")
    s = load_settings()
    assert s.tracking_uri == "http://mlflow.internal:5000" and not s.embedded_mlflow
    assert not s.embedded_llm
    assert s.openai_api_key and s.openai_api_key.get_secret_value() == "sk-test-123"
    assert "sk-test-123" not in repr(s)  # secrets never printed
    assert s.open_url_allow_hosts == ["docs.internal", "wiki.local"]


def test_bad_value_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLYWHEEL_MLFLOW_PORT", "not-a-port")
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert "mlflow_port" in str(info.value)


def test_broken_toml_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "flywheel.toml").write_text("mlflow_port = = 1\n")
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert "flywheel.toml" in info.value.render("en")


def test_to_env_hands_the_settings_in_effect_to_a_child(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = load_settings(data_dir=tmp_path / "d", mlflow_port=6123, openai_api_key="sk-secret").to_env()
    assert env["FLYWHEEL_MLFLOW_PORT"] == "6123" and env["FLYWHEEL_DATA_DIR"] == str(
        (tmp_path / "d").resolve()
    )
    assert "sk-secret" not in str(env)  # secrets are not copied
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert load_settings().mlflow_port == 6123
