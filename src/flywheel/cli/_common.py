"""What every command group shares: the console, settings, and how errors are shown."""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from flywheel.config import Settings, load_settings

if TYPE_CHECKING:
    from flywheel.agent import AgentConfig

__all__ = ["agent_config", "console", "err_console", "progress_bar", "quiet_mlflow", "settings"]

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)


def settings() -> Settings:
    return load_settings()


def quiet_mlflow() -> None:
    """MLflow's INFO chatter (run links, flush notices) is noise on a command line."""
    logging.getLogger("mlflow").setLevel(logging.WARNING)


def progress_bar(label: str, eta: bool = False) -> Progress:
    """The bar long commands share: label, bar, done/total, elapsed (and remaining), current item."""
    columns = [TextColumn(f"[bold]{label}[/]"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()]
    if eta:
        columns.append(TimeRemainingColumn())
    return Progress(*columns, TextColumn("{task.description}"), console=console, transient=True)


def agent_config(sets: list[str] | None) -> AgentConfig:
    """An AgentConfig from --set KEY=VALUE options (values parsed as JSON when they are JSON), over
    the default for the settings in effect (the embedded LLM's default policy is ``grounded``)."""
    from pydantic import ValidationError

    from flywheel.agent import default_config
    from flywheel.errors import InputError

    values: dict[str, object] = {}
    for item in sets or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise InputError("set_syntax", item=item)
        try:
            values[key.strip()] = json.loads(value)
        except ValueError:
            values[key.strip()] = value
    try:
        return default_config(settings(), **values)
    except ValidationError as exc:  # a user mistake, not a bug
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"])
        raise InputError("set_value", field=field, detail=err["msg"]) from exc
