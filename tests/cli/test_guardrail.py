"""`flywheel guardrail check`: false refusals on questions mined from a team's own docs."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from flywheel.cli.main import app
from flywheel.errors import FlywheelError


def test_check_mines_a_corpus_and_reports_each_profile(tmp_path: Path) -> None:
    docs = tmp_path / "my-docs"
    docs.mkdir()
    (docs / "keys.md").write_text(
        "# API keys\n\nTo rotate the API key, run `tool keys rotate`. "
        "You can override the default system prompt with `--prompt`. "
        "To delete old traces, call `purge` with a cutoff.\n"
    )
    result = CliRunner().invoke(app, ["guardrail", "check", "--corpus", str(docs), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["questions"] >= 3 and report["documents"] == 1
    assert set(report["refused"]) == {"full", "extractive"} and report["rates"]["full"] == 0


def test_without_a_corpus_it_needs_an_ingest_first() -> None:
    result = CliRunner().invoke(app, ["guardrail", "check"])
    assert isinstance(result.exception, FlywheelError) and "ingest" in result.exception.render("en")


def test_a_missing_corpus_folder_is_a_clear_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["guardrail", "check", "--corpus", str(tmp_path / "nope")])
    assert isinstance(result.exception, FlywheelError)


def test_doctor_shows_the_saved_check(tmp_path: Path) -> None:
    from flywheel.config import load_settings
    from flywheel.safety import GuardrailCheck
    from flywheel.stack._doctor import _guardrail_check

    settings = load_settings(data_dir=tmp_path / "data")
    assert _guardrail_check(settings).state == "off"
    GuardrailCheck(questions=200, documents=20, refused={"full": 10, "extractive": 8}).save(
        settings.data_path
    )
    check = _guardrail_check(settings)
    assert check.state == "warn" and "5.0% of 200" in check.value
