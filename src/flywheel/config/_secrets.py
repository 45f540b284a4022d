"""Secrets: from the environment or ``.env`` (pydantic-settings reads both), or AWS SSM Parameter
Store — and never printed, logged or traced.

SSM is used when ``FLYWHEEL_SECRETS_SSM_PREFIX`` is set (e.g. ``/flywheel/prd/``; ``{profile}`` is
replaced by the profile) or ``FLYWHEEL_SECRETS_SSM_PATHS`` maps variables to parameter paths (e.g.
``{"LANGFUSE_SECRET_KEY": "/langfuse/secret_key"}``, the other seed's layout). Only secrets not
already set are fetched (the environment wins), in one batched ``GetParameters`` call with
decryption. A value read from SSM is a ``SecretStr`` like any other: its repr is ``**********``.

``RedactingFilter`` is installed on the log handlers of every flywheel process (CLI, agent server):
any configured secret value in a log line becomes ``[redacted]`` — a last line of defence behind
``SecretStr``, for a value a library logs from a header or a URL.
"""

from __future__ import annotations

import logging
from typing import Any

from pydantic import SecretStr

__all__ = ["SECRET_VARS", "RedactingFilter", "install_redaction", "load_ssm_secrets", "redact"]

# the Settings field of each secret, by the environment variable users know it as
SECRET_VARS = {
    "OPENAI_API_KEY": "openai_api_key",
    "EXA_API_KEY": "exa_api_key",
    "MILVUS_TOKEN": "milvus_token",
    "FLYWHEEL_API_KEY": "api_key",
    "FLYWHEEL_JUDGE_API_KEY": "judge_api_key",
    "LANGFUSE_PUBLIC_KEY": "langfuse_public_key",
    "LANGFUSE_SECRET_KEY": "langfuse_secret_key",
}


def load_ssm_secrets(settings: Any, client: Any = None) -> dict[str, SecretStr]:
    """The secrets still unset, read from SSM Parameter Store: ``{settings field: SecretStr}``.
    ``client``: a boto3 SSM client (tests pass one wired to botocore's Stubber)."""
    prefix = settings.secrets_ssm_prefix
    paths: dict[str, str] = dict(settings.secrets_ssm_paths)
    if prefix:
        prefix = prefix.replace("{profile}", settings.profile or "dev")
        for var in SECRET_VARS:
            paths.setdefault(var, prefix.rstrip("/") + "/" + var)
    wanted = {
        var: path
        for var, path in paths.items()
        if var in SECRET_VARS and getattr(settings, SECRET_VARS[var], None) is None
    }
    if not wanted:
        return {}
    if client is None:
        import boto3

        client = boto3.client("ssm", region_name=settings.aws_region)
    by_path = {path: var for var, path in wanted.items()}
    found: dict[str, SecretStr] = {}
    names = list(by_path)
    for i in range(0, len(names), 10):  # GetParameters takes at most 10 names
        resp = client.get_parameters(Names=names[i : i + 10], WithDecryption=True)
        for param in resp.get("Parameters", []):
            found[SECRET_VARS[by_path[param["Name"]]]] = SecretStr(param["Value"])
    return found


def redact(text: str, secrets: list[str]) -> str:
    for value in secrets:
        if len(value) >= 6:
            text = text.replace(value, "[redacted]")
    return text


class RedactingFilter(logging.Filter):
    """Replaces configured secret values in every record's final message."""

    def __init__(self, secrets: list[str]) -> None:
        super().__init__()
        self.secrets = [s for s in secrets if len(s) >= 6]

    def filter(self, record: logging.LogRecord) -> bool:
        if self.secrets:
            msg = record.getMessage()
            clean = redact(msg, self.secrets)
            if clean != msg:
                record.msg, record.args = clean, None
        return True


def install_redaction(secrets: list[str]) -> None:
    """Add the filter to every handler of the root logger (and to the root logger's future records)."""
    root = logging.getLogger()
    flt = RedactingFilter(secrets)
    for handler in root.handlers:
        handler.addFilter(flt)
    root.addFilter(flt)
