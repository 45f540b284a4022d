"""User-facing errors render what/why/fix in English and Japanese; the locale picks."""

from __future__ import annotations

import pytest

from flywheel.errors import FlywheelError, PortInUseError
from flywheel.i18n import MESSAGES, current_lang


def test_every_message_has_both_languages_and_three_parts() -> None:
    for key, entry in MESSAGES.items():
        assert set(entry) == {"en", "ja"}, key
        assert all(len(entry[lang]) == 3 for lang in entry), key


def test_render_in_both_languages() -> None:
    err = PortInUseError(
        service="mlflow",
        host="127.0.0.1",
        port=5000,
        holder="PID 42 (x)",
        pid=42,
        env_key="FLYWHEEL_MLFLOW_PORT",
    )
    en = err.render("en")
    ja = err.render("ja")
    assert "port 5000" in en and "Why:" in en and "Fix:" in en and "FLYWHEEL_MLFLOW_PORT" in en
    assert "ポート 5000" in ja and "原因:" in ja and "対処:" in ja and "kill 42" in ja


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"FLYWHEEL_LANG": "ja"}, "ja"),
        ({"FLYWHEEL_LANG": "en", "LANG": "ja_JP.UTF-8"}, "en"),
        ({"LANG": "ja_JP.UTF-8"}, "ja"),
        ({"LANG": "C.UTF-8"}, "en"),
        ({}, "en"),
    ],
)
def test_language_selection(monkeypatch: pytest.MonkeyPatch, env: dict[str, str], expected: str) -> None:
    for key in ("FLYWHEEL_LANG", "LANG", "LC_ALL", "LC_MESSAGES"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert current_lang() == expected


def test_cli_prints_no_traceback_for_user_mistakes(monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from flywheel.cli.main import app

    monkeypatch.setenv("FLYWHEEL_MLFLOW_PORT", "nope")
    result = CliRunner().invoke(app, ["status"])
    assert isinstance(result.exception, FlywheelError)  # run() turns this into a message, exit 2


def test_run_renders_the_error_and_exits_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from flywheel.cli import main

    monkeypatch.setenv("FLYWHEEL_MLFLOW_PORT", "nope")
    monkeypatch.setattr("sys.argv", ["flywheel", "status"])
    with pytest.raises(SystemExit) as info:
        main.run()
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "mlflow_port" in err and "Traceback" not in err


def test_every_error_raised_in_the_code_is_in_the_catalogue_and_fully_translated() -> None:
    """No error writes its text inline: each names a catalogue key that has English and Japanese
    with the same placeholders, and the Japanese cause and fix are not English."""
    import re
    import string
    from pathlib import Path

    src = Path(__file__).resolve().parents[1] / "src" / "flywheel"
    code = "\n".join(p.read_text(encoding="utf-8") for p in src.rglob("*.py"))
    assert not re.search(r"Error\(\s*(what|detail|why)=", code), "an error writes its text inline"
    classes = (
        r"(?:Input|Config|Flywheel|Security|Service|ServiceUnavailable|MissingDependency|ServiceStart)Error"
    )
    used = set(re.findall(classes + r"\(\s*\"([a-z_]+)\"", code))
    assert len(used) > 20
    missing = used - set(MESSAGES)
    assert not missing, missing
    for key, entry in MESSAGES.items():
        fields = [
            {f for _, f, _, _ in string.Formatter().parse(part) if f} for part in (*entry["en"], *entry["ja"])
        ]
        en = set().union(*fields[:3])
        ja = set().union(*fields[3:])
        assert en == ja, (key, en ^ ja)
        for part in entry["ja"][1:]:
            words = re.sub(r"\{[^}]*\}|`[^`]*`|[A-Z_]{3,}\S*|\S+\.\S+", "", part)
            assert not re.search(r"\b(the|is|and|with|not)\b", words), (key, part)
