"""Settings (environment, .env, flywheel.toml), with the defaults in one place."""

from flywheel.config._files import read_json_file
from flywheel.config._secrets import install_redaction, load_ssm_secrets, redact
from flywheel.config._settings import DEFAULT_HOST, Settings, load_settings, secret_values

__all__ = [
    "DEFAULT_HOST",
    "Settings",
    "install_redaction",
    "load_settings",
    "load_ssm_secrets",
    "read_json_file",
    "redact",
    "secret_values",
]
