"""Profiles and secrets: per-environment names, AWS SSM Parameter Store (botocore's Stubber), and
log lines that never show a secret value."""

from __future__ import annotations

import logging

import boto3
import pytest
from botocore.stub import Stubber

from flywheel.config import install_redaction, load_settings, load_ssm_secrets, secret_values
from flywheel.config._secrets import RedactingFilter


def test_profiles_separate_experiments_aliases_and_runtime_names(monkeypatch: pytest.MonkeyPatch) -> None:
    plain = load_settings()
    assert (plain.experiment, plain.alias("champion"), plain.runtime_name("gate-1")) == (
        "flywheel",
        "champion",
        "gate-1",
    )
    monkeypatch.setenv("FLYWHEEL_PROFILE", "tst")
    tst = load_settings()
    assert (tst.experiment, tst.alias("champion"), tst.runtime_name("gate-1")) == (
        "flywheel-tst",
        "tst-champion",
        "tst-gate-1",
    )
    assert tst.to_env()["FLYWHEEL_PROFILE"] == "tst"
    monkeypatch.setenv("FLYWHEEL_PROFILE", "prd")
    assert load_settings().alias("champion") == "champion"  # production keeps the plain names
    monkeypatch.setenv("FLYWHEEL_EXPERIMENT", "team-exp")
    assert load_settings().experiment == "team-exp"  # an explicit name wins


def _ssm(responses: list[tuple[list[str], dict[str, str]]]) -> tuple[object, Stubber]:
    client = boto3.client("ssm", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="y")
    stub = Stubber(client)
    for names, values in responses:
        stub.add_response(
            "get_parameters",
            {
                "Parameters": [
                    {"Name": n, "Type": "SecureString", "Value": v, "Version": 1} for n, v in values.items()
                ],
                "InvalidParameters": [n for n in names if n not in values],
            },
            {"Names": names, "WithDecryption": True},
        )
    stub.activate()
    return client, stub


def test_ssm_fills_only_the_secrets_left_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-the-environment")
    monkeypatch.setenv("FLYWHEEL_PROFILE", "prd")
    monkeypatch.setenv("FLYWHEEL_SECRETS_SSM_PATHS", '{"LANGFUSE_SECRET_KEY": "/langfuse/secret_key"}')
    from flywheel.config import Settings

    settings = Settings(secrets_ssm_prefix="/flywheel/{profile}/")
    names = [
        "/langfuse/secret_key",
        "/flywheel/prd/EXA_API_KEY",
        "/flywheel/prd/MILVUS_TOKEN",
        "/flywheel/prd/FLYWHEEL_API_KEY",
        "/flywheel/prd/FLYWHEEL_JUDGE_API_KEY",
        "/flywheel/prd/LANGFUSE_PUBLIC_KEY",
    ]
    client, stub = _ssm(
        [(names, {"/langfuse/secret_key": "lf-secret-123456", "/flywheel/prd/EXA_API_KEY": "exa-7890abcd"})]
    )
    found = load_ssm_secrets(settings, client)
    stub.assert_no_pending_responses()
    assert {k: v.get_secret_value() for k, v in found.items()} == {
        "langfuse_secret_key": "lf-secret-123456",
        "exa_api_key": "exa-7890abcd",
    }
    assert "lf-secret" not in repr(found) and "lf-secret" not in str(found)  # SecretStr all the way
    # the environment's OPENAI_API_KEY was never asked for
    assert settings.openai_api_key and settings.openai_api_key.get_secret_value() == "sk-from-the-environment"


def test_an_unreachable_ssm_is_a_clear_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from flywheel.errors import ConfigError

    monkeypatch.setenv("FLYWHEEL_SECRETS_SSM_PATHS", '{"EXA_API_KEY": "/x/exa"}')
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "y")
    monkeypatch.setenv("AWS_ENDPOINT_URL_SSM", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    with pytest.raises(ConfigError) as err:
        load_settings()
    assert "SSM" in err.value.render()


def test_log_lines_never_show_a_secret_value(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-planted-abcdef123456")
    settings = load_settings()
    flt = RedactingFilter(secret_values(settings))
    caplog.handler.addFilter(flt)
    logging.getLogger("some.library").warning(
        "request failed: Authorization: Bearer %s", "sk-planted-abcdef123456"
    )
    assert "sk-planted" not in caplog.text and "[redacted]" in caplog.text
    install_redaction(["short"])  # values under 6 characters are not redacted (they would mangle text)
    logging.getLogger("x").warning("a short word")
    assert "a short word" in caplog.text
