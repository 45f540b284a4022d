"""`flywheel datasets generate|status|refresh` and `eval --only` as a user runs them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from flywheel.cli.main import app
from flywheel.errors import FlywheelError, InputError

PAGE = """# Relay

## Settings

| key | default | meaning |
|---|---|---|
| `RELAY_PORT` | `7070` | port of the relay server |
| `RELAY_WORKERS` | `4` | worker threads of the relay |

## Retries

To retry a failed delivery, run `relay retry` with the message id.
A dead-letter queue is a queue that holds messages the relay could not deliver.
"""


@pytest.fixture
def docs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("FLYWHEEL_DATA_DIR", str(tmp_path / "data"))
    folder = tmp_path / "my-docs"
    folder.mkdir()
    (folder / "relay.md").write_text(PAGE)
    (folder / "queues.md").write_text(
        "# Queues\n\n## Purging\n\nIf you purge a queue, its messages are deleted and cannot be recovered.\n"
    )
    return folder


def test_generate_status_refresh_as_a_user_runs_them(docs: Path, tmp_path: Path) -> None:
    out = tmp_path / "gen.json"
    runner = CliRunner()
    result = runner.invoke(
        app, ["datasets", "generate", str(docs), "--out", str(out), "--n", "8", "--no-register"]
    )
    assert result.exit_code == 0, result.output
    assert "filters" in result.output and "wrote" in result.output and out.exists()
    items = json.loads(out.read_text())
    assert {i["metadata"]["kind"] for i in items} >= {"happy_path", "out_of_scope", "adversarial"}

    status = runner.invoke(app, ["datasets", "status", str(out), "--json"])
    assert status.exit_code == 0, status.output
    assert json.loads(status.output)["counts"]["stale"] == 0

    (docs / "relay.md").write_text(PAGE.replace("`7070`", "`8080`"))
    assert runner.invoke(app, ["ingest", str(docs)]).exit_code == 0
    status = json.loads(runner.invoke(app, ["datasets", "status", str(out), "--json"]).output)
    assert status["counts"]["stale"] >= 1

    refreshed = runner.invoke(app, ["datasets", "refresh", str(out), "--no-register"])
    assert refreshed.exit_code == 0, refreshed.output
    assert "updated" in refreshed.output and (tmp_path / "gen.changelog.jsonl").exists()
    assert "8080" in out.read_text() and "defaults to 7070" not in out.read_text()
    status = json.loads(runner.invoke(app, ["datasets", "status", str(out), "--json"]).output)
    assert status["counts"]["stale"] == 0


def test_an_empty_folder_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLYWHEEL_DATA_DIR", str(tmp_path / "data"))
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.bin").write_bytes(b"\0")
    result = CliRunner().invoke(app, ["datasets", "generate", str(empty), "--out", str(tmp_path / "x.json")])
    assert isinstance(result.exception, FlywheelError) and result.exception.key == "datagen_empty"


def test_only_names_a_state(docs: Path, tmp_path: Path) -> None:
    out = tmp_path / "gen.json"
    runner = CliRunner()
    assert (
        runner.invoke(
            app, ["datasets", "generate", str(docs), "--out", str(out), "--n", "6", "--no-register"]
        ).exit_code
        == 0
    )
    result = runner.invoke(app, ["eval", "--dataset", str(out), "--only", "stale,bogus"])
    assert isinstance(result.exception, InputError) and result.exception.key == "eval_only"
    result = runner.invoke(app, ["eval", "--dataset", str(out), "--only", "stale"])
    assert isinstance(result.exception, InputError) and result.exception.key == "eval_only_empty"
