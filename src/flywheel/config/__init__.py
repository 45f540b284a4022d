"""Settings (environment, .env, flywheel.toml), with the defaults in one place."""

from flywheel.config._settings import DEFAULT_HOST, Settings, load_settings, secret_values

__all__ = ["DEFAULT_HOST", "Settings", "load_settings", "secret_values"]
