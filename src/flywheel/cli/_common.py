"""What every command group shares: the console, settings, and how errors are shown."""

from __future__ import annotations

from rich.console import Console

from flywheel.config import Settings, load_settings

__all__ = ["console", "err_console", "settings"]

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)


def settings() -> Settings:
    return load_settings()
