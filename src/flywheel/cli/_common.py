"""What every command group shares: the console, settings, and how errors are shown."""

from __future__ import annotations

import contextlib
import json
import logging
from pathlib import Path
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
    """The settings in effect; from here on, no log line of this process shows a secret value."""
    from flywheel.config import install_redaction, secret_values

    cfg = load_settings()
    install_redaction(secret_values(cfg))
    return cfg


_THIRD_PARTY = (
    "mlflow",
    "urllib3",
    "httpx",
    "httpcore",
    "alembic",
    "sqlalchemy",
    "sentence_transformers",
    "transformers",
    "pymilvus",
    "milvus_lite",
    "opentelemetry",
    "langchain",
    "langgraph",
    "openai",
    "py.warnings",
)


def quiet_terminal(verbose: bool = False, log_file: Path | None = None) -> None:
    """Only flywheel's own lines on the terminal: third-party logging (MLflow's run links and flush
    notices, urllib3 retries, library warnings) goes to ``log_file`` instead, or everywhere with -v."""
    import os
    import warnings

    logging.captureWarnings(True)
    if verbose:
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
        return
    # MLflow installs its own stderr handler when imported (later, lazily): ask it not to
    os.environ.setdefault("MLFLOW_CONFIGURE_LOGGING", "false")
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")  # "🏃 View run …" lines
    handlers: list[logging.Handler] = []
    if log_file is not None:
        with contextlib.suppress(OSError):
            log_file.parent.mkdir(parents=True, exist_ok=True)
            fh = logging.FileHandler(log_file, encoding="utf-8")
            fh.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
            handlers.append(fh)
    for name in _THIRD_PARTY:
        lg = logging.getLogger(name)
        lg.handlers = list(handlers)
        lg.propagate = False
        lg.setLevel(logging.INFO if handlers else logging.CRITICAL)
    warnings.filterwarnings("ignore", module="mlflow")


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
