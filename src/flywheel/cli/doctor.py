"""`flywheel doctor`: configuration and reachability at a glance."""

from __future__ import annotations

from rich.table import Table

from flywheel.cli._common import console, settings
from flywheel.stack import run_checks

_ICON = {"ok": "[green]✓[/]", "warn": "[yellow]![/]", "off": "[dim]–[/]", "fail": "[red]✗[/]"}


def doctor() -> None:
    """Report what is configured, what is reachable, and what is disabled and why.

    Secrets are never printed, only whether they are set.

    Example: flywheel doctor
    """
    table = Table(box=None, pad_edge=False)
    for col in ("", "area", "value", "note"):
        table.add_column(col)
    for c in run_checks(settings()):
        table.add_row(_ICON[c.state], c.area, c.value, c.note)
    console.print(table)
