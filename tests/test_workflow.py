"""The CI workflow: valid YAML, pull requests never promote, clean-up always runs, and every
flywheel command it calls exists with the options it passes."""

from __future__ import annotations

import shlex
from pathlib import Path

import yaml
from typer.testing import CliRunner

from flywheel.cli.main import app

WORKFLOW = Path(__file__).resolve().parents[1] / ".github" / "workflows" / "flywheel.yml"


def _steps() -> list[dict]:
    doc = yaml.safe_load(WORKFLOW.read_text())
    assert {"push", "pull_request"} <= set(doc[True] if True in doc else doc["on"])  # YAML 1.1: on → True
    return doc["jobs"]["gate"]["steps"]


def test_pull_requests_never_promote_and_clean_up_always_runs() -> None:
    steps = _steps()
    gates = [s for s in steps if "flywheel gate" in s.get("run", "")]
    assert len(gates) == 2
    for step in gates:
        if "pull_request" in step["if"]:
            assert "--no-promote" in step["run"] and "--promote " not in step["run"] + " "
        else:
            assert "push" in step["if"] and "--promote" in step["run"]
    cleanup = [s for s in steps if "flywheel down" in s.get("run", "")]
    assert cleanup and cleanup[-1]["if"] == "always()"
    assert any(
        s.get("uses", "").startswith("actions/upload-artifact") and s["if"] == "always()" for s in steps
    )


def test_every_flywheel_command_in_the_workflow_exists() -> None:
    runner = CliRunner()
    for step in _steps():
        for line in step.get("run", "").replace("\\\n", " ").replace(">\n", " ").splitlines():
            if ".venv/bin/flywheel" not in line:
                continue
            words = shlex.split(line.split(".venv/bin/flywheel", 1)[1].split("||")[0])
            args = [w for w in words if not w.startswith("${{")]
            sub = [w for w in args if not w.startswith("-")][:2]
            result = runner.invoke(
                app, [*sub[:1], *(sub[1:2] if sub[:1] in (["runtime"],) else []), "--help"]
            )
            assert result.exit_code == 0, (line, result.output)
            options = {w.split("=")[0] for w in args if w.startswith("--")}
            for opt in options:
                assert opt in result.output, (line, opt)
