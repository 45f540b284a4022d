"""The `flywheel` command: one sub-module per command group; each validates input and calls the library."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from flywheel import __version__
from flywheel.cli import agent as agent_cmd
from flywheel.cli import datasets as datasets_cmd
from flywheel.cli import demo as demo_cmd
from flywheel.cli import doctor as doctor_cmd
from flywheel.cli import evaluation as eval_cmd
from flywheel.cli import gate as gate_cmd
from flywheel.cli import gateway as gateway_cmd
from flywheel.cli import guardrail as guardrail_cmd
from flywheel.cli import knowledge as knowledge_cmd
from flywheel.cli import monitoring as monitor_cmd
from flywheel.cli import redteam as redteam_cmd
from flywheel.cli import registry as registry_cmd
from flywheel.cli import serving as serving_cmd
from flywheel.cli import simulation as sim_cmd
from flywheel.cli import stack as stack_cmd
from flywheel.cli import tuning as tune_cmd
from flywheel.cli._common import err_console
from flywheel.errors import FlywheelError

app = typer.Typer(
    name="flywheel",
    help=(
        "Ship documentation-QA agents to production and keep them improving.\n\n"
        'Start here:  flywheel up  →  flywheel ingest docs/  →  flywheel ask "…"  →  flywheel down.\n'
        "Everything runs offline on embedded defaults (MLflow on SQLite, a local LLM, Milvus Lite);\n"
        "set OPENAI_API_KEY / LLM_BASE_URL / MLFLOW_TRACKING_URI / MILVUS_URI to use your own."
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.registered_commands += stack_cmd.app.registered_commands
app.command()(doctor_cmd.doctor)
app.registered_commands += knowledge_cmd.app.registered_commands
app.registered_commands += agent_cmd.app.registered_commands
app.registered_commands += registry_cmd.app.registered_commands
app.add_typer(registry_cmd.prompts_app, name="prompts")
app.registered_commands += serving_cmd.app.registered_commands
app.add_typer(eval_cmd.app, name="eval")
app.add_typer(datasets_cmd.app, name="datasets")
app.registered_commands += sim_cmd.app.registered_commands
app.add_typer(monitor_cmd.app, name="monitor")
app.registered_commands += gate_cmd.app.registered_commands
app.registered_commands += tune_cmd.app.registered_commands
app.add_typer(gate_cmd.runtime_app, name="runtime")
app.add_typer(gateway_cmd.app, name="gateway")
app.add_typer(guardrail_cmd.app, name="guardrail")
app.registered_commands += redteam_cmd.app.registered_commands
app.command()(demo_cmd.demo)


def _version(value: bool) -> None:
    if value:
        print(f"flywheel {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version."
    ),
    verbose: bool = typer.Option(
        False, "--verbose", "-v", help="Also show the libraries' log lines (MLflow, HTTP clients…)."
    ),
) -> None:
    """Ship documentation-QA agents to production and keep them improving."""
    import os

    from flywheel.cli._common import quiet_terminal

    data = Path(os.environ.get("FLYWHEEL_DATA_DIR", "data"))
    quiet_terminal(verbose, None if verbose else data / "logs" / "cli.log")


def run() -> None:
    """Console entry point: user mistakes print what/why/fix (no traceback); bugs keep theirs."""
    try:
        app()
    except FlywheelError as exc:
        from rich.markup import escape  # a message may contain [brackets]: they are text, not markup

        err_console.print(f"[bold red]error:[/] {escape(exc.render())}", markup=True, highlight=False)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        err_console.print("interrupted")
        sys.exit(130)


if __name__ == "__main__":
    run()
